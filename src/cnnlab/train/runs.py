"""Using a finished run: read its run.json, rebuild its model with the best weights, evaluate, predict."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.errors import CnnlabError


def read_info(folder) -> dict:
    """run.json of a run folder, or a one-line error saying the folder is not a run."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        raise CnnlabError(f"{folder}: not a cnnlab run folder (no run.json); train one with `cnnlab train MODEL`")
    try:
        info = json.loads(path.read_text())
        info["model"]["name"], info["data"]["shape"]
        return info
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CnnlabError(f"{path}: corrupt run.json ({e.__class__.__name__}: {e})") from None


@dataclass
class TrainedModel:
    """A model in eval() mode with what it needs to take raw images: its input shape and normalization."""
    model: torch.nn.Module
    info: dict
    folder: Path

    @property
    def classes(self) -> list[str]:
        return self.info["data"]["classes"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.info["data"]["shape"])

    @property
    def outputs(self) -> str:
        return self.info["model"].get("outputs", "logits")

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.info["data"]["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.info["data"]["std"]).view(1, -1, 1, 1)
        return (images_uint8.float() / 255 - mean) / std

    @torch.no_grad()
    def probabilities(self, images_uint8: torch.Tensor) -> torch.Tensor:
        scores = self.model(self.normalize(images_uint8)).float()
        return scores if self.outputs == "probabilities" else scores.softmax(1)


def load_run(folder, weights: str = "best") -> TrainedModel:
    """`load_run("runs/mlp-mnist")`: the model of a run with its best (or last) weights, in eval() mode."""
    from cnnlab.models import create_model
    from cnnlab.train.checkpoint import load_weights

    folder = Path(folder)
    info = read_info(folder)
    path = folder / f"{weights}.safetensors"
    if not path.is_file():
        raise CnnlabError(f"{folder}: the run has no {path.name} (it stopped before its first epoch ended?)")
    model = create_model(info["model"]["name"], **info["model"]["args"])
    load_weights(path, model)
    return TrainedModel(model.eval(), info, folder)


def prepare_image(image, trained: TrainedModel) -> tuple[torch.Tensor, list[str]]:
    """Any PIL image -> uint8 [C, H, W] the model expects, with a note for each change made."""
    from cnnlab.data.formats import resize_center_crop, to_mode

    c, h, w = trained.input_shape
    notes = []
    wanted = "RGB" if c == 3 else "L"
    if image.mode != wanted:
        notes.append(f"converted {image.mode} to {wanted}")
    image = to_mode(image, c)
    if image.size != (w, h):
        notes.append(f"resized {image.size[0]}x{image.size[1]} to {w}x{h} (shorter side, centre crop)")
        image = resize_center_crop(image, h)
    array = np.asarray(image, dtype=np.uint8).reshape(h, w, c).transpose(2, 0, 1)
    if trained.info["data"]["name"] in ("mnist", "fashion-mnist"):
        border = np.concatenate([array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1]], axis=None)
        if border.mean() > 127:
            array = 255 - array
            notes.append("inverted (the model was trained on light objects on a dark background)")
    return torch.from_numpy(array.copy()), notes


def predict_files(trained: TrainedModel, paths, top_k: int = 3) -> list[dict]:
    """Top-k classes for each image file: [{"path", "notes", "top": [(class, probability), ...]}]."""
    from cnnlab.data.formats import read_image

    prepared = [prepare_image(read_image(p), trained) for p in paths]
    probs = trained.probabilities(torch.stack([x for x, _ in prepared]))
    k = min(top_k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    return [{"path": str(p), "notes": notes,
             "top": [(trained.classes[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())]}
            for p, (_, notes), vs, ix in zip(paths, prepared, values, indices)]


def evaluate_run(folder, split_name: str = "test", data_root=None, weights: str = "best", perturb: str = "",
                 seed: int = 0):
    """Re-evaluate a run on its data set's test (or validation) split: returns (Evaluation, TrainedModel).

    `perturb`, e.g. "rotate=30,translate=0.1", moves every image by a seeded random transform first: how robust
    is the model to what it did not see in training?
    """
    from cnnlab.data import Batches, load_dataset, split
    from cnnlab.train.loop import make_augment
    from cnnlab.train.metrics import evaluate

    trained = load_run(folder, weights)
    config = trained.info["config"]
    data = load_dataset(config["dataset"], data_root=data_root or config.get("data_root"),
                        image_size=config.get("image_size"))
    part = data.test if split_name == "test" else split(data.train, config["valid_fraction"], config["seed"])[1]
    mean, std = trained.info["data"]["mean"], trained.info["data"]["std"]
    batches = Batches(part, 1024, mean, std, augment=make_augment(perturb, mean, std), seed=seed)
    return evaluate(trained.model, batches, len(trained.classes)), trained
