"""Checkpoints as safetensors (tensors only, so loading never runs code) with JSON beside them.

`best.safetensors` holds the weights of the lowest validation loss. `last.safetensors` holds everything needed
to resume after the last finished epoch: weights, optimizer tensors, random-number-generator state, the best
weights so far, and the run record; the optimizer's plain settings and the record travel as JSON in the file's
metadata. Written last of all by an atomic rename, it is the epoch's one commit point: after a crash at any
instant, resume finds either the whole epoch in it or none of it, and rewrites the other files from it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_path


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    try:
        with atomic_path(path) as tmp:
            try:
                save_file(tensors, str(tmp), metadata={"cnnlab": json.dumps(metadata or {})})
            except SafetensorError as error:  # its disk errors are not OSErrors: give them back their errno
                code = re.search(r"os error (\d+)", str(error))
                if code is None:
                    raise
                raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        raise CnnlabError(no_space(path, size)) from None  # the half-written file is gone by now


MARGIN = 1 << 20  # run.json, metrics.csv and the figures written beside the checkpoints


def no_space(path: Path, size: int) -> str:
    """How much to free for the run to go on, not just for this one file: every epoch writes each checkpoint beside
    the old one before replacing it, so the largest of them must fit in the free space, with a little more."""
    others = [p.stat().st_size for p in path.parent.glob("*.safetensors") if p.is_file()]
    needed = max([size, *others]) + MARGIN
    stats = os.statvfs(path.parent)
    to_free = max(needed - stats.f_bavail * stats.f_frsize, 0)
    return (
        f"{path}: no space left on the device for this {size / 1e6:.0f} MB checkpoint; free at least "
        f"{math.ceil(to_free / 1e6)} MB more, then continue with `cnnlab train --resume {path.parent}` (the last "
        "finished epoch is kept)"
    )


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors in memory of their own, not mapped from the file: a mapped checkpoint that training replaces
    would keep its disk space taken until the process ends (a full disk then needs twice the space)."""
    try:
        tensors, meta = load(Path(path).read_bytes()), read_metadata(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CnnlabError(f"{path}: not a readable safetensors checkpoint ({e}); train again or restore it") from None
    _check_epoch(path, meta)
    return tensors, meta


def _check_epoch(path, meta: dict) -> None:
    """The epoch a checkpoint says it was saved after: from 1 to the run's epochs, or the file is damaged."""
    if "epoch" not in meta:
        return
    record = meta.get("record")
    try:
        epochs = record["config"]["recipe"]["epochs"]
    except (TypeError, KeyError):
        epochs = None
    epoch = meta["epoch"]
    if (
        isinstance(epoch, bool)
        or not isinstance(epoch, int)
        or epoch < 1
        or (isinstance(epochs, int) and epoch > epochs)
    ):
        raise CnnlabError(
            f"{path}: its metadata says it was saved after epoch {epoch!r:.20} of "
            f"{epochs if isinstance(epochs, int) else '?'}: impossible, the file is damaged; restore "
            "it, or train the run again"
        )


def read_metadata(path) -> dict:
    """The JSON cnnlab keeps in a checkpoint's header, read without loading a tensor."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("cnnlab", "{}"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CnnlabError(f"{path}: not a readable safetensors checkpoint ({e}); train again or restore it") from None


def save_weights(path, model: torch.nn.Module) -> None:
    save_state(path, model.state_dict())


def save_state(path, state: dict[str, torch.Tensor]) -> None:
    """A state_dict (weights) as a safetensors file, written atomically."""
    _save(Path(path), state)


def read_state(path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (best.safetensors), checked to be a readable safetensors file."""
    return _load(path)[0]


STATE_PREFIXES = ("optimizer.", "rng.", "best.")  # in last.safetensors beside the model's own tensors


def load_weights(path, model: torch.nn.Module) -> None:
    tensors, _ = _load(path)
    _load_state(model, {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIXES)}, path)


def _load_state(model, state, path) -> None:
    _check_tensors(path, state, model.state_dict())
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0:2]
        raise CnnlabError(f"{path}: weights do not fit this model ({' '.join(first)})") from None


def _check_tensors(path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Each tensor of the model's own type, with no inf or nan: anything else is a damaged file, refused on load."""
    for name, tensor in state.items():
        if name in expected and tensor.dtype != expected[name].dtype:
            stored, wanted = (str(t.dtype).removeprefix("torch.") for t in (tensor, expected[name]))
            raise CnnlabError(
                f"{path}: tensor {prefix}{name} is stored as {stored}, the model's is {wanted}: the "
                "file is damaged; restore it, or train the run again"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CnnlabError(
                f"{path}: tensor {prefix}{name} holds inf or nan values: the file is damaged (or "
                "saved from a run that diverged); restore it, or train the run again"
            )


def save_training_state(
    path, model, optimizer, epoch: int, best: dict[str, torch.Tensor] | None = None, record: dict | None = None
) -> None:
    """Weights + optimizer + RNG after `epoch` finished, with the best weights so far and the run record: enough
    for --resume to continue bit for bit and to rewrite every other file of the run."""
    tensors = dict(model.state_dict())
    tensors.update({f"best.{k}": v for k, v in (best or {}).items()})
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
    held = sorted(k for k in tensors if k.startswith("optimizer."))  # resume checks that none went missing
    _save(
        Path(path),
        tensors,
        {
            "epoch": epoch,
            "param_groups": opt["param_groups"],
            "plain_state": plain_state,
            "record": record,
            "optimizer_tensors": held,
        },
    )


def load_training_state(path, model, optimizer) -> tuple[int, dict[str, torch.Tensor] | None, dict | None]:
    """Restore what save_training_state wrote; returns (the last finished epoch, the best weights so far, the
    record), the last two None in a checkpoint written before they were kept there."""
    tensors, meta = _load(path)
    _load_state(model, {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIXES)}, path)
    _check_optimizer_tensors(path, optimizer, tensors, meta)
    try:  # the metadata is the file's word: anything in it may be damaged
        _load_optimizer(optimizer, tensors, meta)
        torch.set_rng_state(tensors["rng.torch"])
        epoch = int(meta["epoch"])
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as error:
        raise CnnlabError(
            f"{path}: damaged training state ({error.__class__.__name__}: {str(error)[:80]}); "
            "restore the file, or start the run again"
        ) from None
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    best = {k.removeprefix("best."): v for k, v in tensors.items() if k.startswith("best.")}
    _check_tensors(path, best, model.state_dict(), "best.")
    return epoch, best or None, meta.get("record")


def _check_optimizer_tensors(path, optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Refuse a checkpoint whose optimizer state is not all there: loading what is left would quietly restart the
    missing moments from zero, and the resumed run would no longer end as the uninterrupted one."""
    listed = meta.get("optimizer_tensors")
    if isinstance(listed, list):
        missing = [k for k in listed if k not in tensors]
    else:  # written before the list was kept: a stateful optimizer with no state
        group = optimizer.param_groups[0]
        stateful = not isinstance(optimizer, torch.optim.SGD) or group.get("momentum", 0) > 0
        missing = ["optimizer.*"] if stateful and not any(k.startswith("optimizer.") for k in tensors) else []
    if missing:
        raise CnnlabError(
            f"{path}: {len(missing)} optimizer tensor(s) missing (e.g. {missing[0]}): resuming would "
            "restart the optimizer and not continue the run; restore the file, or start the run again"
        )


def _load_optimizer(optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """The optimizer's state from its tensors (in the file) and its plain values and settings (in the metadata)."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, plain in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(plain)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    # a fused step walks a parameter and its state as flat memory: each buffer must be laid out as its parameter is
    # (channels_last conv weights), and a file gives them back contiguous
    for param, param_state in optimizer.state.items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                param_state[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)
