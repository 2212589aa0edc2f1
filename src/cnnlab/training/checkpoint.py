"""Checkpoints as safetensors (tensors only, so loading never runs code) with JSON beside them.

`best.safetensors` holds the weights of the lowest validation loss. `last.safetensors` holds everything needed
to resume after the last finished epoch: weights, optimizer tensors, random-number-generator state; the
optimizer's plain settings travel as JSON in the file's metadata.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_path


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"cnnlab": json.dumps(metadata or {})})


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{path}: no such checkpoint")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = json.loads((f.metadata() or {}).get("cnnlab", "{}"))
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as e:
        raise CnnlabError(f"{path}: not a readable safetensors checkpoint ({e}); train again or restore it") from None


def save_weights(path, model: torch.nn.Module) -> None:
    _save(Path(path), model.state_dict())


def load_weights(path, model: torch.nn.Module) -> None:
    tensors, _ = _load(path)
    _load_state(model, {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "rng."))}, path)


def _load_state(model, state, path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0:2]
        raise CnnlabError(f"{path}: weights do not fit this model ({' '.join(first)})") from None


def save_training_state(path, model, optimizer, epoch: int) -> None:
    """Weights + optimizer + RNG after `epoch` finished: enough for --resume to continue bit for bit."""
    tensors = dict(model.state_dict())
    opt = optimizer.state_dict()
    plain_state = {}
    for pid, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{key}"] = value
            else:
                plain_state.setdefault(str(pid), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    _save(Path(path), tensors, {"epoch": epoch, "param_groups": opt["param_groups"], "plain_state": plain_state})


def load_training_state(path, model, optimizer) -> int:
    """Restore what save_training_state wrote; returns the number of the last finished epoch."""
    tensors, meta = _load(path)
    _load_state(model, {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "rng."))}, path)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, plain in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(plain)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return int(meta["epoch"])
