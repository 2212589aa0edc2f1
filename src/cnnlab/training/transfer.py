"""Transfer learning: start from published weights, then train the new last layer alone (`freeze="features"`) or
every layer with the pretrained ones at a lower rate (`pretrained_lr_scale`). The run's record keeps which file the
weights came from (name, SHA-256) and what was frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, imagenet_weights, load_imagenet_weights, sha256
from cnnlab.models.recipe import Recipe
from cnnlab.models.weights import load_torchvision_weights

IMAGENET = "imagenet"


@dataclass
class TransferInfo:
    """What a run started from: in run.json as "transfer"."""

    weights: str  # the file's name (torchvision's, for --weights imagenet)
    sha256: str
    source: str  # its address, or the path it was read from
    frozen: str  # "" or a line saying which parameters did not train
    trainable: int  # parameters that trained


def check_transfer(model: str, weights: str | None, recipe: Recipe) -> None:
    """Refuse settings that cannot work before any data is read."""
    if weights == IMAGENET:
        imagenet_weights(model)
    if not weights and (recipe.freeze or recipe.pretrained_lr_scale != 1):
        raise CnnlabError(
            "freezing or a lower rate for pretrained layers needs pretrained weights: add --weights "
            "imagenet (or --weights FILE.pth)"
        )


def normalization(weights: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """ImageNet's mean and std for a model that starts from ImageNet weights: what its first layer was trained on."""
    return (IMAGENET_MEAN, IMAGENET_STD) if weights == IMAGENET else None


def head_name(model: nn.Module) -> str:
    """The last nn.Linear: the classifier whose size follows the classes, the layer transfer learning retrains."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise CnnlabError(f"{type(model).__name__} has no linear last layer to retrain; use no --freeze")
    return names[-1]


def take_weights(
    model: nn.Module, name: str, weights: str | None, recipe: Recipe, fresh: bool, progress: bool = True, log=print
) -> tuple[str | None, TransferInfo | None]:
    """--weights: a fresh run loads them and freezes what the recipe says (the log line and the record's entry);
    a resumed one only freezes the same parameters again (its weights come from last.safetensors, not the .pth)."""
    if not weights:
        return None, None
    if fresh:
        return start_from(model, name, weights, recipe, progress, log)
    freeze(model, recipe)
    return None, None


def start_from(
    model: nn.Module, name: str, weights: str, recipe: Recipe, progress: bool = True, log=print
) -> tuple[str, TransferInfo]:
    """Load the weights into `model`, freeze what the recipe says; returns the log line and the record's entry."""
    if weights == IMAGENET:
        loaded = load_imagenet_weights(model, name, progress, log)
        note, file, digest, source = loaded.note, loaded.file, loaded.sha256, loaded.url
    else:
        from pathlib import Path

        note = load_torchvision_weights(model, weights)
        file, digest, source = Path(weights).name, sha256(weights), str(Path(weights).resolve())
    frozen = freeze(model, recipe)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return note + (f"; {frozen}" if frozen else ""), TransferInfo(file, digest, source, frozen, trainable)


def freeze(model: nn.Module, recipe: Recipe) -> str:
    """Stop the gradients of every parameter but the last layer's (recipe.freeze == "features"); says what it did.
    Batch norm's running statistics still follow the new images: only the learned parameters stay."""
    if not recipe.freeze:
        return ""
    head = head_name(model)
    kept = 0
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(head + "."))
        kept += p.numel() if not p.requires_grad else 0
    return f"frozen: every layer but {head!r} ({kept:,} parameters)"


def parameter_groups(recipe: Recipe, model: nn.Module, pretrained: bool) -> list[dict]:
    """Optimizer groups: weight decay on weights only; biases and norm shifts at `bias_lr_scale`; the layers set by
    pretrained weights (all but the last layer) at `pretrained_lr_scale`. Frozen parameters are left out."""
    head = head_name(model) + "." if pretrained and recipe.pretrained_lr_scale != 1 else None
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            slow = head is not None and not name.startswith(head)
            groups.setdefault((p.ndim > 1, slow), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": recipe.weight_decay if decayed else 0.0,
            "lr_scale": (1.0 if decayed else recipe.bias_lr_scale) * (recipe.pretrained_lr_scale if slow else 1.0),
        }
        for (decayed, slow), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))
    ]
