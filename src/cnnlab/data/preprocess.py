"""How pixels become what a model sees, and back: the one place where cnnlab normalizes.

A model is trained on (pixels / 255 - mean) / std, with the per-channel mean and std measured on its training split.
Training batches, prediction, every explanation and the web explorer all go through `Preprocess`, so a model always
sees its images the way it was trained on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

LIGHT_ON_DARK = ("mnist", "fashion-mnist")  # white strokes on black: a dark-on-light picture gets inverted
MNIST_DIGIT = "mnist-digit"  # a drawing made the way MNIST's digits were (`images.digit_like_mnist`)
DRAWINGS = {  # each conversion's note, as the explorer shows it
    MNIST_DIGIT: "drawing made MNIST-style: cropped to the ink, scaled into {box}x{box}, centred by its mass in "
    "{side}x{side}"
}


def conventions(name: str, shape) -> tuple[bool, str]:
    """What a new run on data set `name` of image `shape` (C, H, W) records about its inputs: whether pictures are
    light on dark, and how a drawing is made into an input ("": taken as a picture). Old runs keep theirs."""
    drawing = MNIST_DIGIT if tuple(shape) == (1, 28, 28) else ""
    return name in LIGHT_ON_DARK, drawing


def column(values, device=None) -> torch.Tensor:
    """Per-channel numbers as a float32 [1, C, 1, 1] tensor, which broadcasts over a batch [N, C, H, W]."""
    return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def affine(mean, std, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) [1, C, 1, 1] with pixels * scale + shift == (pixels / 255 - mean) / std: one fused op a batch."""
    std, mean = column(std, device), column(mean, device)
    return 1 / (255 * std), -mean / std


def denormalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Model input -> image in [0, 1] units (not clamped); mean and std broadcast as [1, C, 1, 1]."""
    return x * std + mean


@dataclass(frozen=True)
class Preprocess:
    """The input contract of a trained model: the image shape it takes and the normalization it was trained with."""

    shape: tuple[int, int, int] | None  # (C, H, W); None for a bare model that takes any size
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]
    light_on_dark: bool = False  # MNIST-style data: dark-on-light pictures are inverted
    drawing: str = ""  # how a drawing becomes an input: a name in DRAWINGS, or "" (taken as a picture)

    @classmethod
    def identity(cls) -> Preprocess:
        """For a bare model: pixels / 255, any channel count and size."""
        return cls(None, (0.0,), (1.0,))

    def normalizer(self, device="cpu"):
        """A function uint8 [N, C, H, W] -> float model input, its constants made once on `device`."""
        scale, shift = affine(self.mean, self.std, device)
        return lambda pixels: torch.addcmul(shift, pixels.float(), scale)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.normalizer(pixels.device)(pixels)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> [0, 1] image units."""
        return denormalize(x, *self._stats(x.device))

    def to_pixels(self, x: torch.Tensor) -> np.ndarray:
        """Model input -> uint8 pixels [N, C, H, W], for showing what an optimization made."""
        return (self.denormalize(x.detach()).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    def pixel_range(self, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The model inputs of black and of white, [1, C, 1, 1]: optimized images are kept between them."""
        mean, std = self._stats(device)
        return (0 - mean) / std, (1 - mean) / std

    def black(self) -> list[float]:
        """The normalized value of a black pixel, per channel: the fill for pixels an augmentation brings in."""
        return [(0 - m) / s for m, s in zip(self.mean, self.std)]

    def _stats(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        return column(self.mean, device), column(self.std, device)

    def prepare(self, image) -> tuple[torch.Tensor, list[str]]:
        """Any PIL image -> uint8 [C, H, W] as the model takes it, with a note for each change made."""
        from cnnlab.images import resize_center_crop, to_mode

        c, h, w = self.shape
        notes = []
        wanted = "RGB" if c == 3 else "L"
        if image.mode != wanted:
            notes.append(f"converted {image.mode} to {wanted}")
        image = to_mode(image, c)
        if image.size != (w, h):
            notes.append(f"resized {image.size[0]}x{image.size[1]} to {w}x{h} (shorter side, centre crop)")
            image = resize_center_crop(image, h)
        array = np.asarray(image, dtype=np.uint8).reshape(h, w, c).transpose(2, 0, 1)
        if self.light_on_dark:
            border = np.concatenate([array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1]], axis=None)
            if border.mean() > 127:
                array = 255 - array
                notes.append("inverted (the model was trained on light objects on a dark background)")
        return torch.from_numpy(array.copy()), notes

    def prepare_drawing(self, image) -> tuple[torch.Tensor, list[str]]:
        """A drawing (PIL image) -> uint8 [C, H, W]: made into what the model's digits looked like first, where the
        run says how (`drawing`); else taken as a picture, and said so."""
        if not self.drawing:
            pixels, notes = self.prepare(image)
            return pixels, ["the drawing is taken as a picture: this model does not take 28x28 grey digits", *notes]
        from PIL import Image

        from cnnlab.images import digit_like_mnist

        side = self.shape[1]
        box = round(side * 20 / 28)  # MNIST's 20-pixel box in its 28-pixel square
        pixels, notes = self.prepare(Image.fromarray(digit_like_mnist(image, box=box, size=side)))
        return pixels, [DRAWINGS[self.drawing].format(box=box, side=side), *notes]
