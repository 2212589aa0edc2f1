"""Load torchvision's published `.pth` weights into our AlexNet, VGG and ResNet (same key names, same shapes).

The file is read with `weights_only=True`: tensors and plain containers only, never arbitrary pickled objects, so a
downloaded file cannot run code. When only the last layer differs in size (1000 ImageNet classes in the file, 10 in
the model) everything else is loaded and the last layer keeps its fresh weights: that is fine-tuning.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError


def load_torchvision_weights(model: nn.Module, path) -> str:
    """Copy the weights in `path` into `model`; return a one-line message saying what was loaded."""
    state = read_state_dict(path)
    own = model.state_dict()
    # torchvision's older files have no num_batches_tracked counters; batch norm fills them in itself
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        problems = [_keys(what, keys) for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CnnlabError(f"{path} does not fit this model: {'; '.join(problems)} (weights of another architecture?)")
    mismatched = [k for k in state if state[k].shape != own[k].shape]
    head = _last_linear(model)
    if (
        mismatched
        and set(mismatched) <= {f"{head}.weight", f"{head}.bias"}
        and state[f"{head}.weight"].shape[1:] == own[f"{head}.weight"].shape[1:]
    ):
        file_classes, model_classes = len(state[f"{head}.weight"]), len(own[f"{head}.weight"])
        state = {k: v for k, v in state.items() if k not in (f"{head}.weight", f"{head}.bias")}
        model.load_state_dict(state, strict=False)
        return (
            f"loaded {path} except the last layer {head!r} ({file_classes} classes in the file, {model_classes} "
            "in the model): it keeps its random weights, ready for fine-tuning"
        )
    if mismatched:
        shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model" for k in mismatched]
        raise CnnlabError(
            f"{path} does not fit this model: shapes differ for {'; '.join(shapes[:3])}"
            f"{' ...' if len(shapes) > 3 else ''} (check the input channels and the architecture)"
        )
    model.load_state_dict(state, strict=False)  # keys checked above; num_batches_tracked may be absent
    return f"loaded {len(state)} tensors from {path}"


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """A state_dict from a `.pth` file: bare, or under "state_dict" / "model"; a "module." prefix (DataParallel)
    is removed."""
    path = Path(path)
    if path.suffix not in (".pth", ".pt"):
        raise CnnlabError(f"{path}: expected a PyTorch .pth weights file (as torchvision publishes)")
    if not path.is_file():
        raise CnnlabError(f"{path}: no such file")
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise CnnlabError(
            f"{path}: cannot read it as PyTorch weights: it is corrupt, or holds Python objects "
            "besides tensors, which cnnlab never unpickles"
        ) from None
    except Exception:
        raise CnnlabError(f"{path}: cannot read it as PyTorch weights: corrupt or truncated (download again)") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CnnlabError(f"{path}: holds no state_dict (a dict of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in data.items()}


def _last_linear(model: nn.Module) -> str:
    """The name of the model's last nn.Linear: the classifier whose size follows the number of classes."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else ""


def _keys(what: str, keys: list[str]) -> str:
    return f"{len(keys)} {what} keys ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
