"""Which pixels made the model say "cat"? One heat map per image (Captum where it has the method).

Every map is [N, H, W] and the larger a value, the more that pixel counts for the target class; the methods, what
each shows and its options are declared in `cnnlab.inspect.methods` (METHODS: those whose function is here).

The maps are computed on the normalized input (what the model sees) and are drawn over the raw image. For
CapsNet the score is a capsule's length (the probability of the class); its gradients are just as meaningful.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.inspect.methods import (
    HEAT_MAPS,
    METHODS,
    IntegratedGradientsOptions,
    NoOptions,
    OcclusionOptions,
    SmoothGradOptions,
    method_named,
)
from cnnlab.models.capture import Capture
from cnnlab.models.layers import resolve_layer
from cnnlab.predict import Predictor, as_predictor

GRADCAM_NEEDS_CONV = (
    "Grad-CAM needs a convolutional layer (it weights a conv layer's feature maps by their "
    f"gradients) and this model has none; {', '.join(m for m in HEAT_MAPS if not METHODS[m].layer)} "
    "work on any model"
)


def describe(method: str, channels: int) -> str:
    """What a method's map shows, in words; for colour images, how the three channels became one map."""
    chosen = METHODS[method]
    how = chosen.over_colours if channels > 1 else None
    return (chosen.heading or chosen.shows) + (f" ({how} over colours)" if how else "")


def class_index(target, classes: list[str] | None, n_outputs: int) -> int:
    """A class given by index (3, "3") or name ("cat") -> its index, checked against the model's outputs."""
    if isinstance(target, str) and classes and target in classes:
        return classes.index(target)
    try:
        index = int(target)
    except (TypeError, ValueError):
        known = f"one of {', '.join(classes)}" if classes else "a class index"
        raise CnnlabError(f"unknown target class {target!r}; give {known}") from None
    if not 0 <= index < n_outputs:
        named = f" ({', '.join(f'{i}={c}' for i, c in enumerate(classes))})" if classes else ""
        raise CnnlabError(
            f"target class {index} is out of range: the model has {n_outputs} classes, 0 to {n_outputs - 1}{named}"
        )
    return index


def targets_for(predictor: Predictor, x: torch.Tensor, target=None) -> torch.Tensor:
    """One class per image: the predicted one (target None), or the given one(s), as a long tensor [N]."""
    with torch.no_grad():
        scores = predictor.model(x)
    if target is None:
        return scores.argmax(1)
    wanted = target if isinstance(target, (list, tuple, np.ndarray, torch.Tensor)) else [target] * len(x)
    if len(wanted) != len(x):
        raise CnnlabError(f"{len(wanted)} targets for {len(x)} images: give one per image, or one for all")
    return torch.tensor([class_index(t, predictor.classes, scores.shape[1]) for t in wanted])


def attribute(model_or_run, images, method: str, target=None, layer: str | None = None, **options) -> np.ndarray:
    """Heat maps [N, H, W] of the pixels that count for `target` (default: each image's predicted class).

    `images` are uint8 pixels or float model inputs (see `cnnlab.predict`); `layer` is for the class
    activation maps (default: the last conv layer); `options` tune a method, as its options class in
    `cnnlab.inspect.methods` declares (smoothgrad `samples`, `noise`; occlusion `window`, `stride`; ...).
    """
    chosen = method_named(method, heat_map=True)
    settings = chosen.settings(options, layer)
    predictor = as_predictor(model_or_run)
    x = predictor.inputs(images)
    targets = targets_for(predictor, x, target)
    compute = chosen.compute()
    maps = compute(predictor, x, targets, settings, layer) if chosen.layer else compute(predictor, x, targets, settings)
    return maps.detach().float().numpy()


def saliency(predictor: Predictor, x, targets, options: NoOptions) -> torch.Tensor:
    from captum.attr import Saliency

    return Saliency(predictor.model).attribute(x.requires_grad_(), target=targets, abs=True).amax(1)


def smoothgrad(predictor: Predictor, x, targets, options: SmoothGradOptions, seed: int = 0) -> torch.Tensor:
    """Noise of `options.noise` x the input's value range, as the paper advises (10-20%); seeded, so maps repeat.
    The signed gradients are averaged, as in the paper, so that noise's gradients of either sign cancel; what is
    left where the mean raises the score is the map. (Averaging |gradient| kept the noise: on shapes among
    distractors its strongest pixel fell on the deciding shape for 87% of images, against 97% so.)"""
    from captum.attr import NoiseTunnel, Saliency

    spread = float(x.max() - x.min())
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        maps = NoiseTunnel(Saliency(predictor.model)).attribute(
            x.requires_grad_(),
            nt_type="smoothgrad",
            nt_samples=options.samples,
            nt_samples_batch_size=options.samples,
            stdevs=options.noise * spread,
            target=targets,
            abs=False,
        )
    return maps.amax(1).clamp_min(0)


def integrated_gradients(predictor: Predictor, x, targets, options: IntegratedGradientsOptions) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    black = predictor.inputs(torch.zeros(x.shape, dtype=torch.uint8))
    maps = IntegratedGradients(predictor.model).attribute(
        x, baselines=black, target=targets, n_steps=options.steps, internal_batch_size=256
    )
    return maps.sum(1)


def input_x_gradient(predictor: Predictor, x, targets, options: NoOptions) -> torch.Tensor:
    """Shrikumar et al. 2016: the gradient times the (normalized) input, summed over colours. To first order, what
    each pixel adds to the score against the data set's mean colour (0 of the normalized input); for a linear
    model the map adds up to the score minus the bias exactly."""
    from captum.attr import InputXGradient

    return InputXGradient(predictor.model).attribute(x.requires_grad_(), target=targets).sum(1)


def occlusion(predictor: Predictor, x, targets, options: OcclusionOptions) -> torch.Tensor:
    """A window of about an eighth of the image, sliding by half a window. The baseline 0 of the normalized input
    is the data set's mean colour: covering a pixel with it removes what it says while looking ordinary."""
    from captum.attr import Occlusion

    c, h, w = x.shape[1:]
    window = options.window or max(3, round(min(h, w) / 8))
    if window > min(h, w):
        raise CnnlabError(f"occlusion window {window} is larger than the {h}x{w} image; use at most {min(h, w)}")
    stride = options.stride or max(1, window // 2)
    maps = Occlusion(predictor.model).attribute(
        x,
        sliding_window_shapes=(c, window, window),
        strides=(c, stride, stride),
        baselines=0.0,
        target=targets,
        perturbations_per_eval=64,
    )
    return maps.mean(1)


def _layer_evidence(predictor: Predictor, x, targets, layer: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv layer's feature maps A [N, K, h, w] for x, and the gradient of each image's target score with
    respect to them: what every class activation map is made from. A layer the forward pass uses several times
    (the lesson CNN's `pool`) means its first use, as `--layer` does everywhere (cnnlab.models.capture)."""
    name, module = resolve_layer(predictor.model, layer, GRADCAM_NEEDS_CONV)
    with Capture(predictor.model, [module]) as capture:
        scores = predictor.model(x)
    evidence = capture.first(module)
    maps = evidence.output
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4:
        shape = list(maps.shape[1:]) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise CnnlabError(
            f"class activation maps need a layer with feature maps [C, H, W], like a conv layer; "
            f"{name} outputs {shape} per image"
        )
    capture.backward(scores.gather(1, targets.view(-1, 1)).sum())
    return maps.detach(), evidence.grad


def _upsampled(cam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[N, h, w] -> [N, H, W] of the input (bilinear): the map over the image."""
    return F.interpolate(cam[:, None].float(), size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)[:, 0]


def gradcam(predictor: Predictor, x, targets, options: NoOptions, layer: str | None = None) -> torch.Tensor:
    """Selvaraju et al. 2017: each channel weighted by its mean gradient, summed, ReLU, upsampled. The channels are
    the layer's activations, rectified as the paper's are (its conv layers end in a ReLU; the lesson CNN applies
    F.relu after the hooked conv): with the negative parts, strongly negative channels of distractors weighed in,
    and the strongest pixel fell on the deciding shape among distractors for 85% of images, against 91% so."""
    maps, grad = _layer_evidence(predictor, x, targets, layer)
    return _upsampled(F.relu((grad.mean((2, 3), keepdim=True) * F.relu(maps)).sum(1)), x)


def gradcam_plus_plus(predictor: Predictor, x, targets, options: NoOptions, layer: str | None = None) -> torch.Tensor:
    """Chattopadhyay et al. 2018: each location's positive gradient weighted by how much of the channel's evidence
    it carries, so several objects of the class, or a large one, are covered more fully than by Grad-CAM."""
    maps, grad = _layer_evidence(predictor, x, targets, layer)
    g2, g3 = grad**2, grad**3
    denominator = 2 * g2 + maps.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * F.relu(grad)).sum((2, 3), keepdim=True)
    return _upsampled(F.relu((weights * maps).sum(1)), x)


@torch.no_grad()
def scorecam(
    predictor: Predictor, x, targets, options: NoOptions, layer: str | None = None, batch_size: int = 64
) -> torch.Tensor:
    """Wang et al. 2020: no gradients. Each channel's map, upsampled and scaled to [0, 1], masks the image; the
    class score the masked image earns, softmax over the channels, is that channel's weight. (Taking the maps
    after a ReLU points better on the tests' shapes, but then a random network's maps look the same: it fails
    the sanity check, rank correlation 0.79 against 0.25.)"""
    with torch.enable_grad():
        maps, _ = _layer_evidence(predictor, x, targets, layer)
    masks = _upsampled(maps.flatten(0, 1), x).view(*maps.shape[:2], *x.shape[2:])  # [N, K, H, W]
    low, high = masks.amin((2, 3), keepdim=True), masks.amax((2, 3), keepdim=True)
    masks = (masks - low) / (high - low).clamp_min(1e-8)
    cams = []
    for image, mask, target, channels in zip(x, masks, targets, maps):
        masked = image[None] * mask[:, None]  # [K, C, H, W]: 0 is the mean colour
        scores = torch.cat([predictor.model(part) for part in masked.split(batch_size)]).float()
        weights = scores[:, target].softmax(0)
        cams.append(F.relu((weights.view(-1, 1, 1) * channels).sum(0)))
    return _upsampled(torch.stack(cams), x)


def guided_gradcam(predictor: Predictor, x, targets, options: NoOptions, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM times guided backpropagation, max over colours.

    Not Captum's GuidedGradCam: its guided backpropagation hooks nn.ReLU modules only, and a model that calls
    F.relu in its forward (the lesson CNN does) silently gets the plain gradient. `guided_gradients` catches
    every ReLU, module or function.
    """
    return gradcam(predictor, x, targets, options, layer) * guided_gradients(predictor, x, targets).abs().amax(1)


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients, and only where the input was positive."""

    @staticmethod
    def forward(ctx, x):
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0)


class _GuidedMode(torch.overrides.TorchFunctionMode):
    """While active, every relu call in the forward pass (F.relu, torch.relu, nn.ReLU, in place or not) is guided."""

    RELUS = (F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.RELUS:
            return _GuidedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


def guided_gradients(predictor: Predictor, x, targets) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): the gradient with negative signals stopped at every ReLU."""
    x = x.detach().requires_grad_()
    with _GuidedMode():
        scores = predictor.model(x)
    return torch.autograd.grad(scores.gather(1, targets.view(-1, 1)).sum(), x)[0]
