"""Data augmentation as a few tensor operations on the whole batch, on the training device.

The lesson's notebooks flip and rotate one PIL image at a time, which makes an epoch take minutes on a CPU. Here
every random choice is drawn for the whole batch at once (one mask, one vector of angles, one vector of shifts)
and applied with a single tensor operation, so augmenting 512 CIFAR images costs a few milliseconds.

A spec string names the operations, applied in the order given: `"flip,rotate=10,crop=4"`. Presets name common
choices (`"cifar"`, `"mnist"`, `"lesson"`, `"photos"`); `"none"` or `""` means no augmentation.

Pixels that come from outside the image (after a rotation, shift or cutout) get the value `fill`, zero by default.
Batches arrive normalized, where zero is the mean colour; pass `fill=(0 - mean) / std` to get black instead, which
is what torchvision gives when it augments before normalizing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import MAX_SEED, CnnlabError, whole

# ---------------------------------------------------------------- deterministic operations, one call per batch


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the samples where `mask` [N] is True."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Move sample n's content by exactly (dy[n], dx[n]) whole pixels (down, right); uncovered pixels become 0.

    Pad once; every window of the image's size in the padded batch is then a view (unfold), and each sample's own
    window is picked by one index: 4x faster on a CPU than gathering every pixel by its row and column.
    """
    n, _, h, w = x.shape
    p = int(torch.cat([dy, dx]).abs().max())
    windows = F.pad(x, (p, p, p, p)).unfold(2, h, 1).unfold(3, w, 1)  # [N, C, 2p+1, 2p+1, H, W]
    return windows[torch.arange(n, device=x.device), :, p - dy, p - dx]


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate sample n by degrees[n] about the image centre (bilinear), counter-clockwise as seen on screen."""
    _, _, h, w = x.shape
    a = torch.deg2rad(degrees.to(x.dtype))
    cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
    # affine_grid works in [-1, 1] coordinates on both axes; the h/w factors keep non-square images undistorted
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1)
    return _sample(x, theta)


def resized_crop(
    x: torch.Tensor, height: torch.Tensor, width: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor
) -> torch.Tensor:
    """Cut from sample n a window of height[n] x width[n] (fractions of the image's sides) centred at (cy[n], cx[n])
    in [-1, 1] coordinates, and stretch it back to full size (bilinear)."""
    zero = torch.zeros_like(height)
    theta = torch.stack([torch.stack([width, zero, cx], 1), torch.stack([zero, height, cy], 1)], 1)
    return _sample(x, theta.to(x.dtype))


def cutout(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square in each sample, with its top-left corner at (top[n], left[n])."""
    _, _, h, w = x.shape
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ys >= top.view(-1, 1)) & (ys < top.view(-1, 1) + size)  # [N, H]
    in_cols = (xs >= left.view(-1, 1)) & (xs < left.view(-1, 1) + size)  # [N, W]
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0)


def _sample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ---------------------------------------------------------------- random versions: draw parameters, then apply


def _uniform(x, generator, low, high):
    """Floats uniform in [low, high), one per sample."""
    return low + (high - low) * torch.rand(len(x), generator=generator, device=x.device)


def _randint(x, generator, low, high):
    """Integers in [low, high], both included, one per sample."""
    return torch.randint(low, high + 1, (len(x),), generator=generator, device=x.device)


def _random_flip(x, g, _):
    return flip(x, torch.rand(len(x), generator=g, device=x.device) < 0.5)


def _random_rotate(x, g, degrees):
    return rotate(x, _uniform(x, g, -degrees, degrees))


def _random_crop(x, g, pad):
    pad = int(pad)
    return shift(x, _randint(x, g, -pad, pad), _randint(x, g, -pad, pad))


def _random_translate(x, g, fraction):
    h, w = x.shape[-2:]
    dy, dx = round(fraction * h), round(fraction * w)
    return shift(x, _randint(x, g, -dy, dy), _randint(x, g, -dx, dx))


def _random_cutout(x, g, size):
    size = int(size)
    h, w = x.shape[-2:]
    if size > min(h, w):
        raise CnnlabError(f"augment cutout={size} is larger than the {h}x{w} images; use a size up to {min(h, w)}")
    return cutout(x, _randint(x, g, 0, h - size), _randint(x, g, 0, w - size), size)


def _random_resized_crop(x, g, min_scale):
    scale = _uniform(x, g, min_scale, 1.0)
    ratio = _uniform(x, g, math.log(3 / 4), math.log(4 / 3)).exp()  # log-uniform, as torchvision
    width, height = (scale * ratio).sqrt().clamp(max=1), (scale / ratio).sqrt().clamp(max=1)
    cy, cx = _uniform(x, g, -1, 1) * (1 - height), _uniform(x, g, -1, 1) * (1 - width)  # window stays inside
    return resized_crop(x, height, width, cy, cx)


@dataclass(frozen=True)
class _Kind:
    apply: Callable  # (x, generator, value) -> x
    meaning: str  # for describe(); {v} is the value
    arg: str = ""  # the value's name in the help; "" for an operation that takes none
    rule: str = ""  # what a valid value is, for the error message
    valid: Callable = lambda v: True
    default: float | None = None


def _whole(v: float) -> bool:
    return v >= 1 and v.is_integer()


OPS: dict[str, _Kind] = {
    "flip": _Kind(_random_flip, "horizontal flip of a random half"),
    "rotate": _Kind(
        _random_rotate, "rotation within ±{v:g}°", "DEGREES", "more than 0, at most 180", lambda v: 0 < v <= 180, 10
    ),
    "crop": _Kind(_random_crop, "shift within ±{v:g} px", "PIXELS", "a whole number, 1 or more", _whole, 4),
    "translate": _Kind(
        _random_translate, "shift within ±{v:g} of the size", "FRACTION", "between 0 and 1", lambda v: 0 < v < 1, 0.1
    ),
    "cutout": _Kind(_random_cutout, "a {v:g}x{v:g} square erased", "PIXELS", "a whole number, 1 or more", _whole, 8),
    "resized-crop": _Kind(
        _random_resized_crop,
        "random-resized crop of {v:g} to 1 of the area",
        "MIN_AREA",
        "more than 0, at most 1",
        lambda v: 0 < v <= 1,
        0.35,
    ),
}
PRESETS = {"cifar": "flip,crop=4", "mnist": "crop=2", "lesson": "flip,rotate=10", "photos": "flip,resized-crop=0.35"}


@dataclass(frozen=True)
class Op:
    name: str
    value: float | None = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return OPS[self.name].apply(x, generator, self.value)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value:g}"


@dataclass(frozen=True)
class Augment:
    """A callable `aug(x, generator) -> x` on a float batch [N, C, H, W]; the generator lives on x's device."""

    ops: tuple[Op, ...] = ()
    fill: tuple[float, ...] | None = None  # per channel, for pixels from outside the image; None: zeros

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.ops:
            return x
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if self.fill is not None:  # every op fills with zeros: move `fill` to zero and back
            fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x = x - fill
        for op in self.ops:
            x = op(x, generator)
        if self.fill is not None:
            x = x + fill
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def check(self, height: int, width: int) -> Augment:
        """Refuse a shift or square as large as the images: it would leave nothing of them (and allocate for the
        whole shift first). Called where the image size is known, before any batch is made."""
        side = min(height, width)
        for op in self.ops:
            if op.name in ("crop", "cutout") and op.value >= side + (op.name == "cutout"):
                most = side - 1 if op.name == "crop" else side
                raise CnnlabError(
                    f"augmentation {op} is too large for the {height}x{width} images; use "
                    f"{op.name}={min(most, OPS[op.name].default):g} (at most {most})"
                )
        return self

    def __repr__(self) -> str:
        return f"Augment({self.spec!r})"

    @property
    def spec(self) -> str:
        """The canonical spec string, presets expanded: parse_augment(aug.spec) gives the same operations."""
        return ",".join(map(str, self.ops)) or "none"

    def describe(self) -> str:
        """One line for logs and run summaries, e.g. 'horizontal flip of a random half, shift within ±4 px'."""
        if not self.ops:
            return "no augmentation"
        return ", ".join(OPS[op.name].meaning.format(v=op.value) for op in self.ops)


def parse_augment(spec: str | None, fill=None) -> Augment:
    """Parse `"flip,rotate=10,crop=4"` (operations applied in that order; presets expand in place).

    `fill`: per-channel value for pixels from outside the image, e.g. `(0 - mean) / std` for black (see above).
    """
    if spec is not None and not isinstance(spec, str):
        raise CnnlabError(f"augment {spec!r}: must be text such as 'flip,crop=4' (or 'none'); {_help()}")
    ops: list[Op] = []
    for part in (spec or "").lower().replace(" ", "").split(","):
        if part in ("", "none"):
            continue
        if part in PRESETS:
            ops.extend(parse_augment(PRESETS[part]).ops)
            continue
        name, _, text = part.partition("=")
        if name not in OPS:
            raise CnnlabError(f"unknown augmentation {part!r} in {spec!r}; {_help()}")
        ops.append(Op(name, _value(name, text, spec)))
    names = [op.name for op in ops]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        presets = "; ".join(f"{name} = {ops}" for name, ops in PRESETS.items())
        raise CnnlabError(
            f"augmentation {', '.join(twice)} given more than once in {spec!r} (mind the presets: {presets})"
        )
    if fill is not None:
        fill = tuple(float(v) for v in torch.as_tensor(fill).flatten())
    return Augment(tuple(ops), fill)


def _value(name: str, text: str, spec: str) -> float | None:
    kind = OPS[name]
    if not kind.arg:
        if text:
            raise CnnlabError(f"augmentation {name!r} takes no value (got {name}={text} in {spec!r}); {_help()}")
        return None
    if not text:
        return kind.default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not kind.valid(value):
        raise CnnlabError(
            f"bad value in augmentation {name}={text} (in {spec!r}): {kind.arg} must be {kind.rule}, "
            f"e.g. {name}={kind.default:g}"
        )
    return value


def _help() -> str:
    ops = ", ".join(f"{name}={kind.arg}" if kind.arg else name for name, kind in OPS.items())
    presets = ", ".join(f"{name} ({spec})" for name, spec in PRESETS.items())
    return f"valid operations: {ops}; presets: {presets}; 'none' for no augmentation"


def preview(images, spec: str, seed: int = 0, copies: int = 4, gap: int = 2) -> np.ndarray:
    """A grid to look at: one row per image, the original then `copies` augmented versions, white gaps between.

    `images`: uint8 [N, C, H, W] (tensor or array). Works on [0, 1] floats, so no normalization is needed and the
    fill is black. Returns uint8 [rows, cols] for one channel, [rows, cols, C] otherwise, ready for imshow.
    """
    aug = parse_augment(spec)
    whole(seed, "seed", 0, MAX_SEED)
    whole(copies, "copies", 1, 100)
    x = torch.as_tensor(np.asarray(images)).float() / 255
    n, c, h, w = x.shape
    aug.check(h, w)
    g = torch.Generator().manual_seed(seed)
    columns = [x] + [aug(x, g) for _ in range(copies)]
    tiles = F.pad(torch.stack(columns, 1), (0, gap, 0, gap), value=1.0)  # [N, 1 + copies, C, H+gap, W+gap]
    rows, cols = n * (h + gap), (1 + copies) * (w + gap)
    grid = tiles.permute(2, 0, 3, 1, 4).reshape(c, rows, cols)[:, : rows - gap, : cols - gap]
    grid = (grid.clamp(0, 1) * 255).round().to(torch.uint8)
    return grid[0].numpy() if c == 1 else grid.permute(1, 2, 0).numpy()


def augment_for(spec: str | None, preprocess) -> Augment | None:
    """The augmentation `spec` for batches normalized by `preprocess` (a `Preprocess`); pixels it brings in from
    outside the image are black, as in the lesson. None when the spec augments nothing."""
    augment = parse_augment(spec, fill=preprocess.black())
    if preprocess.shape is not None:
        augment.check(*preprocess.shape[1:])
    return augment or None
