"""What every inspection takes: a trained run or a bare model, and images as arrays.

The one rule for images: uint8 arrays are pixels, and are normalized the way the run was trained (a bare model
gets pixels / 255); float arrays are taken as the model's input, already normalized. A single [C, H, W] image is
a batch of one. Results always come back as NumPy arrays with the batch first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError


@dataclass
class Subject:
    """A model in eval mode with what turns pixels into its input and back."""
    model: nn.Module
    mean: torch.Tensor                  # [1, C, 1, 1]
    std: torch.Tensor                   # [1, C, 1, 1]
    classes: list[str] | None = None
    input_shape: tuple[int, int, int] | None = None

    def inputs(self, images) -> torch.Tensor:
        """Pixels (uint8) or model inputs (float), [N, C, H, W] or [C, H, W] -> float input [N, C, H, W]."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4:
            raise CnnlabError(f"images must be [N, C, H, W] or [C, H, W]; got shape {list(x.shape)}")
        if x.dtype == torch.uint8:
            return ((x.float() / 255 - self.mean) / self.std).contiguous()
        return x.float().contiguous()

    def pixels(self, x: torch.Tensor) -> np.ndarray:
        """Model input -> uint8 pixels [N, C, H, W], for showing what an optimization made."""
        x = (x.detach() * self.std + self.mean).clamp(0, 1)
        return (x * 255).round().to(torch.uint8).numpy()

    def pixel_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The model inputs of black and of white: optimized images are kept between them."""
        return (0 - self.mean) / self.std, (1 - self.mean) / self.std


def as_subject(model_or_run) -> Subject:
    """A TrainedModel (from `load_run`) or any nn.Module; the model is put in eval mode (dropout off, batch norm
    on its running statistics): explanations must not change from one call to the next."""
    from cnnlab.train.runs import TrainedModel

    if isinstance(model_or_run, Subject):
        return model_or_run
    if isinstance(model_or_run, TrainedModel):
        data = model_or_run.info["data"]
        return Subject(model_or_run.model.eval(), torch.tensor(data["mean"]).view(1, -1, 1, 1),
                       torch.tensor(data["std"]).view(1, -1, 1, 1), model_or_run.classes,
                       model_or_run.input_shape)
    if isinstance(model_or_run, nn.Module):
        return Subject(model_or_run.eval(), torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    raise TypeError(f"expected a TrainedModel or an nn.Module, got {type(model_or_run).__name__}")
