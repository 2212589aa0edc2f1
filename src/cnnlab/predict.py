"""The one way cnnlab runs a trained model on images: `Predictor`.

    predictor = Predictor.from_run("runs/lesson-cnn-cifar10")
    predictor.top_k(["cat.png"])                   # [[("cat", 0.81), ("dog", 0.12), ("frog", 0.03)]]
    predictor.probabilities(pixels)                # uint8 [N, C, H, W] -> [N, classes]
    predictor.activations(pixels, "conv2")         # a layer's feature maps

Images come in any of these forms, and every consumer (`cnnlab predict`, `evaluate`, every explanation, the web
explorer) takes them the same way:
- file paths or PIL images, of any size or mode: converted to what the model was trained on, with a note per change;
- uint8 arrays or tensors [N, C, H, W] or [C, H, W]: pixels, normalized as the model was trained;
- float arrays or tensors: taken as the model's input, already normalized.

What a user hands to `cnnlab.load(...).predict` goes through `user_images` first, which is stricter: an array
whose meaning is not clear (negative or over 255, bool, complex, NaN, floats outside 0..1) is refused in one line
rather than answered with confidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data import ImageSet, Preprocess, load_dataset, split
from cnnlab.data.augment import augment_for
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.models.contract import rebuild
from cnnlab.models.layers import layer_output, resolve_layer
from cnnlab.training.checkpoint import load_weights
from cnnlab.training.metrics import Evaluation, evaluate_images
from cnnlab.training.record import RunRecord

TEST_PREFIX = "test:"  # test:N, the run's test image N, wherever an image file is taken


class Predictor:
    """A model in eval() mode with its input contract: the image shape, the normalization and the class names."""

    def __init__(
        self,
        model: nn.Module,
        preprocess: Preprocess | None = None,
        classes: list[str] | None = None,
        outputs: str = "logits",
        record: RunRecord | None = None,
        folder: Path | None = None,
    ):
        # eval mode: dropout off, batch norm on its running statistics, so answers do not change between calls
        self.model = model.eval()
        self.preprocess = preprocess or Preprocess.identity()
        self.classes, self.outputs, self.record, self.folder = classes, outputs, record, folder
        self._test: ImageSet | None = None  # the test split, read on the first `test:N`

    @classmethod
    def from_run(cls, folder, weights: str = "best", model=None) -> Predictor:
        """The model of a run folder with its best (or last) weights. A run of the learner's own network needs
        `model`, its nn.Module class or an instance: a run folder's record is never imported."""
        folder = Path(folder)
        record = RunRecord.load(folder)
        if record.model.own:  # before any file is read further: say what to pass
            model = rebuild(model, record.model.own, folder)
        path = folder / f"{weights}.safetensors"
        if not path.is_file():
            raise CnnlabError(f"{folder}: the run has no {path.name} (it stopped before its first epoch ended?)")
        if not record.model.own:
            model = create_model(record.model.name, **record.model.args)
        load_weights(path, model)
        return cls(model, record.preprocess, record.classes, record.contract.outputs, record, folder)

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        return self.preprocess.shape

    @property
    def capsules(self) -> bool:
        return self.outputs == "capsules"

    @property
    def score_name(self) -> str:
        return "capsule length" if self.capsules else "probability"

    @property
    def name(self) -> str:
        return self.folder.resolve().name if self.folder else type(self.model).__name__

    def prepare(self, images) -> tuple[torch.Tensor, list[list[str]]]:
        """Files or PIL images -> uint8 [N, C, H, W] as the model takes them, and the changes made to each."""
        if self.input_shape is None:
            raise CnnlabError("a bare model has no input contract: give it arrays, not image files")
        prepared = [self.preprocess.prepare(self.picture(i) if isinstance(i, (str, Path)) else i) for i in images]
        return torch.stack([pixels for pixels, _ in prepared]), [notes for _, notes in prepared]

    def picture(self, source):
        """A PIL image from an image file, `sample:NAME` (a picture drawn by code, `cnnlab samples`) or `test:N`
        (image N of the run's test split), so that every example runs without a file of one's own."""
        from PIL import Image

        from cnnlab.filters.samples import SAMPLE_PREFIX, sample_image
        from cnnlab.images import open_image

        text = str(source)
        if text.startswith(SAMPLE_PREFIX):
            return Image.fromarray(sample_image(text[len(SAMPLE_PREFIX) :]))
        if text.startswith(TEST_PREFIX):
            index = self.test_index(text)
            if self._test is None:
                self._test = self.split("test")
            pixels = self._test.pixels(index)[0].numpy()  # [C, H, W]
            return Image.fromarray(pixels.transpose(1, 2, 0) if pixels.shape[0] == 3 else pixels[0])
        return open_image(source)

    def test_index(self, source: str) -> slice:
        """`test:N` -> the slice [N:N+1] of the test split, checked against its size before the data is read."""
        if self.record is None:
            raise CnnlabError(f"{source}: a test image needs a trained run (its data set); give an image file")
        number, size = source[len(TEST_PREFIX) :], self.record.data.test_size
        if not number.isdigit() or int(number) >= size:
            raise CnnlabError(
                f"{source}: the run's test split has {size} images: write test:N with N from 0 to {size - 1}"
            )
        index = int(number)
        return slice(index, index + 1)

    def inputs(self, images) -> torch.Tensor:
        """Any accepted form of images -> the float model input [N, C, H, W]."""
        if are_pictures(images):
            images = self.prepare(images)[0]
        elif isinstance(images, (list, tuple)):  # arrays or tensors, one per image
            images = np.stack([np.asarray(image) for image in images])
        x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4:
            raise CnnlabError(f"images must be [N, C, H, W] or [C, H, W]; got shape {list(x.shape)}")
        if self.input_shape and x.shape[1] != self.input_shape[0]:
            raise CnnlabError(
                f"images have {x.shape[1]} channel(s) but the model takes {self.input_shape[0]}; "
                "give image files or PIL images to have them converted"
            )
        if x.dtype == torch.uint8:
            return self.preprocess.normalize(x).contiguous()
        return x.float().contiguous()

    def pixels(self, x: torch.Tensor) -> np.ndarray:
        """Model input -> uint8 pixels [N, C, H, W], for showing what an optimization made."""
        return self.preprocess.to_pixels(x)

    @torch.no_grad()
    def scores(self, images) -> torch.Tensor:
        """The forward pass: [N, classes] logits, or capsule lengths."""
        return self.model(self.inputs(images)).float()

    def probabilities(self, images) -> torch.Tensor:
        scores = self.scores(images)
        return scores if self.capsules else scores.softmax(1)

    def top_k(self, images, k: int = 3) -> list[list[tuple[str, float]]]:
        """For each image, the k most likely classes with their probabilities (capsule lengths for CapsNet)."""
        if isinstance(k, bool) or not isinstance(k, int):
            raise CnnlabError(f"top-k {k!r}: must be a whole number, at least 1")
        if k < 1:
            raise CnnlabError(f"top-k {k}: must be at least 1")
        probs = self.probabilities(images)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        names = self.classes or [str(i) for i in range(probs.shape[1])]
        return [[(names[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())] for vs, ix in zip(values, indices)]

    def activations(self, images, layer: str | None = None) -> np.ndarray:
        """What a layer outputs: [N, C, h, w] feature maps for a conv layer, [N, F] for a linear one."""
        _, module = resolve_layer(self.model, layer)
        with torch.no_grad():
            return layer_output(self.model, self.inputs(images), module).float().numpy()

    def evaluate(self, split_name: str = "test", data_root=None, perturb: str = "", seed: int = 0) -> Evaluation:
        """Loss and accuracy on the run's test (or validation) split. `perturb`, e.g. "rotate=30,translate=0.1",
        moves every image by a seeded random transform first: how robust is the model to what it did not see?"""
        images = self.split(split_name, data_root)
        record = self.record  # the loss and precision training reported its figures with
        return evaluate_images(
            self.model,
            images,
            self.preprocess,
            len(self.classes),
            record.model.precision,
            record.config.recipe.label_smoothing,
            augment=augment_for(perturb, self.preprocess),
            seed=seed,
        )

    def split(self, split_name: str = "test", data_root=None) -> ImageSet:
        """The run's test split, or the validation split it held out of training (same seed, same images)."""
        if self.record is None:
            raise CnnlabError("this needs a trained run (Predictor.from_run) and its data set")
        if split_name not in ("test", "valid"):
            raise CnnlabError(f"split {split_name!r}: use test or valid")
        config = self.record.config
        data = load_dataset(config.dataset, data_root=data_root or config.data_root, image_size=config.image_size)
        return data.test if split_name == "test" else split(data.train, config.valid_fraction, config.seed)[1]


ACCEPTED = (
    "give image files, PIL images, or pixels: uint8 (or whole numbers 0..255) or floats 0..1, [N, C, H, W] or [C, H, W]"
)


def user_images(images):
    """What a user passed as images, checked at the API's door: files or PIL images as they are (one alone becomes
    a list), arrays and tensors as uint8 pixels. Whole numbers 0..255 of any integer type are pixels; floats must be
    0..1 (images as matplotlib and many libraries hold them) and are scaled by 255. Anything else is refused in one
    line: a model answers garbage with the same confidence as a picture."""
    if is_picture(images):
        return [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise CnnlabError(f"no images given (an empty {type(images).__name__}); {ACCEPTED}")
        pictures = [is_picture(i) for i in images]
        if all(pictures):
            return list(images)
        if any(pictures):
            raise CnnlabError("a list mixes files or PIL images with arrays; give one kind per call")
        arrays = [pixels_of(image, f"image {i}") for i, image in enumerate(images)]
        odd = next((i for i, a in enumerate(arrays) if a.shape != arrays[0].shape), None)
        if odd is not None:
            raise CnnlabError(
                f"image {odd} is {list(arrays[odd].shape)} but image 0 is {list(arrays[0].shape)}; "
                "arrays in one call need one shape (give files or PIL images to have them resized)"
            )
        return torch.from_numpy(np.stack(arrays))
    return torch.from_numpy(pixels_of(images, "images"))


def pixels_of(array, name: str) -> np.ndarray:
    """An array or tensor as uint8 pixels, or a one-line error naming `name`, what it holds and what is taken."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise CnnlabError(f"{name}: got {type(array).__name__}; {ACCEPTED}")
    if array.size == 0:
        raise CnnlabError(f"{name}: an empty array {list(array.shape)}; {ACCEPTED}")
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise CnnlabError(
                f"{name}: {array.dtype} values from {low} to {high}, but pixels are 0..255 "
                "(16-bit images: divide by 257 first); " + ACCEPTED
            )
        return array.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(array).all():
            raise CnnlabError(f"{name}: {array.dtype} holds NaN or infinity; {ACCEPTED}")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise CnnlabError(
                f"{name}: {array.dtype} values from {low:g} to {high:g}, but float images are read "
                "as 0..1; scale them (or give uint8 0..255)"
            )
        return (array * 255).round().astype(np.uint8)
    raise CnnlabError(f"{name}: {array.dtype} is not a pixel type (bool, complex and text are not); {ACCEPTED}")


def are_pictures(images) -> bool:
    """A list of files or PIL images (to be converted to what the model takes), rather than arrays of pixels."""
    return isinstance(images, (list, tuple)) and bool(images) and is_picture(images[0])


def is_picture(item) -> bool:
    """A file name or a PIL image (a tensor has a `.mode` too: the type is checked, not the attribute)."""
    from PIL import Image

    return isinstance(item, (str, Path, Image.Image))


def as_predictor(model_or_run) -> Predictor:
    """A Predictor, anything that has one (a `cnnlab.load` run), or a bare nn.Module (pixels / 255 as input)."""
    found = getattr(model_or_run, "predictor", model_or_run)
    if isinstance(found, Predictor):
        return found
    if isinstance(found, nn.Module):
        return Predictor(found)
    raise TypeError(f"expected a Predictor, a run or an nn.Module, got {type(model_or_run).__name__}")


class PretrainedPredictor(Predictor):
    """A famous network with published weights (`cnnlab predict --model resnet18 --weights imagenet`), no run:
    its classes, normalization and evaluation view (ImageNet: shorter side 256, centre 224) come from the
    weights' description."""

    def __init__(self, model: nn.Module, weights):
        super().__init__(model, Preprocess((3, weights.crop, weights.crop), weights.mean, weights.std), weights.classes)
        self.weights = weights

    @classmethod
    def imagenet(cls, name: str, progress: bool = True, log=print) -> PretrainedPredictor:
        from cnnlab.models.pretrained import imagenet_model

        return cls(*imagenet_model(name, progress, log))

    @property
    def name(self) -> str:
        return f"{self.weights.model} ({self.weights.source} weights)"

    def prepare(self, images) -> tuple[torch.Tensor, list[list[str]]]:
        """Each picture cut as the weights were evaluated (a central square, resized), then made into pixels."""
        from cnnlab.images import open_image, to_mode
        from cnnlab.models.pretrained import evaluation_view

        w = self.weights
        views, notes = [], []
        for image in images:
            image = open_image(image) if isinstance(image, (str, Path)) else image
            changes = [f"converted {image.mode} to RGB"] if image.mode != "RGB" else []
            views.append(evaluation_view(to_mode(image, 3), w.resize, w.crop))
            notes.append(
                changes
                + [
                    f"{image.size[0]}x{image.size[1]}: shorter side to {w.resize}, the central "
                    f"{w.crop}x{w.crop} ({w.source}'s evaluation view)"
                ]
            )
        pixels, _ = super().prepare(views)
        return pixels, notes
