"""Endpoints of the "Look inside" panel: what a trained run makes of one image.

    GET  /api/explore/runs         the runs, with what the page needs to pick one (model, data set, accuracy, input)
    POST /api/explore/look         probabilities and every layer's output from ONE forward pass; the input as seen
    GET  /api/explore/methods      the heat-map methods the panel offers (cnnlab.inspect.methods.EXPLORER)
    POST /api/explore/attribution  a heat map of what counts for a class (Grad-CAM, saliency, ...) on the input
    GET  /api/explore/random       a test image of the run's data set with its true label
    POST /api/explore/attack       the image changed by at most eps to fool the model, and what it says then

Thin on purpose: `Predictor` prepares images and scores them, `cnnlab.inspect.attribute` makes the heat maps,
the run's own preprocessing turns a drawing into what its model takes (for MNIST-style runs a digit made as MNIST's
were: `cnnlab.images.digit_like_mnist`). What is here is only what the web needs:
recording every layer in one pass, and shaping arrays for the page.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from cnnlab.errors import CnnlabError
from cnnlab.inspect.methods import EXPLORER, METHODS, offered
from cnnlab.models.capture import Capture, copied
from cnnlab.models.layers import default_layer, every_layer_output
from cnnlab.plots.base import to_display
from cnnlab.plots.inspection import heat_overlay
from cnnlab.serve.payloads import ImageInput, channel_maps, decode_image, pixels_data_url, png_data_url
from cnnlab.serve.store import RunStore, get_store

router = APIRouter(prefix="/explore", tags=["explore"])

MAX_CHANNELS = 32  # thumbnails per layer unless the page asks for more: a row the eye can take in
MAX_SIDE = 56  # larger feature maps are averaged down to this: a thumbnail cannot show more


# --- the runs ---------------------------------------------------------------------------------------------------


class RunSummary(BaseModel):
    name: str = Field(description="the run's folder under RUNS_DIR: how every other endpoint names it")
    model: str | None = None
    dataset: str | None = None
    test_accuracy: float | None = Field(None, description="0..1; null before the run's test")
    input_shape: list[int] | None = Field(None, description="C, H, W the model takes")
    classes: list[str] = []
    drawable: bool = Field(
        False, description="the run says how a drawing becomes its input: the page offers the canvas"
    )
    problem: str | None = Field(
        None,
        description="why the run cannot be opened (its run.json is unreadable, or "
        "its own network's code was not given)",
    )
    code: str | None = Field(None, description="a learner's own network: whose code opens it (--trust, a notebook)")


@router.get("/runs", response_model=list[RunSummary])
def runs(store: RunStore = Depends(get_store)) -> list[RunSummary]:
    """Every run under RUNS_DIR, newest first, with its model, data set, test accuracy and input shape; those that
    cannot be opened after them, with the reason."""
    found = [RunSummary(**store.pretrained_summary(name)) for name in store.pretrained]  # `serve --model`
    broken = []
    for name in store.names():
        try:
            record = store.record(name)
        except CnnlabError as error:  # one broken run.json must not hide the other runs
            broken.append(RunSummary(name=name, problem=str(error)))
            continue
        preprocess = record.preprocess
        code, problem = store.code_note(record)
        found.append(
            RunSummary(
                name=name,
                model=record.model.name,
                dataset=record.data.name,
                test_accuracy=record.test.accuracy if record.test else None,
                input_shape=list(preprocess.shape),
                classes=record.classes,
                drawable=bool(preprocess.drawing),
                code=code,
                problem=problem,
            )
        )
    return found + broken  # the first is the newest run that can be opened


@router.get("/methods")
def attribution_methods() -> list[dict]:
    """The attribution methods the panel offers: name, how the page labels it, what its map shows, and whether the
    map is signed (negative = evidence against the class)."""
    return [
        {
            "name": name,
            "label": METHODS[name].label or name,
            "description": METHODS[name].heading or METHODS[name].shows,
            "signed": METHODS[name].signed,
        }
        for name in EXPLORER
    ]


# --- one image through the model ----------------------------------------------------------------------------------


class RunImage(ImageInput):
    run: str = Field(description="run folder name, as /api/explore/runs lists it")
    drawing: bool = Field(False, description="the image is a drawing: converted as the run says (MNIST-style digits)")


class LookRequest(RunImage):
    max_channels: int = Field(MAX_CHANNELS, ge=1, le=1024, description="feature-map thumbnails sent per layer")


@router.post("/look")
def look(request: LookRequest, store: RunStore = Depends(get_store)) -> dict:
    """One forward pass of the run's model on the image: the class scores (probabilities, or capsule lengths),
    every layer's output (conv layers as feature maps, linear ones as vectors), the input as the model sees it and
    what was changed to get it there."""
    image = decode_image(request.image)
    with store.predictor(request.run) as predictor:
        pixels, notes = model_input(predictor, image, request.drawing)
        with every_layer_output(predictor.model) as outputs:
            scores = predictor.probabilities(pixels)[0]
        methods = offered(default_layer(predictor.model) is not None)
        classes, score_name = predictor.classes, predictor.score_name
    return {  # encoded outside the lock: the copies in `outputs` are this request's own
        **prediction(request.run, classes, scores, score_name),
        "input": pixels_data_url(pixels[0]),
        "notes": notes,
        "methods": methods,
        "layers": layer_payloads(outputs, request.max_channels),
        "label_smoothing": store.label_smoothing(request.run),
    }  # why it looks less sure


def prediction(run: str, classes: list[str], scores: torch.Tensor, score_name: str) -> dict:
    """What the page shows of one answer of the model: every class's score and the predicted one."""
    return {
        "run": run,
        "classes": classes,
        "scores": scores.tolist(),
        "score_name": score_name,
        "predicted": int(scores.argmax()),
    }


def model_input(predictor, image, drawing: bool) -> tuple[torch.Tensor, list[str]]:
    """A PIL image -> (uint8 [1, C, H, W] as the model takes it, what was changed). A drawing is converted as the
    run's record says (`Preprocess.prepare_drawing`: an MNIST-style digit, or taken as a picture)."""
    if drawing:
        pixels, notes = predictor.preprocess.prepare_drawing(image)
        return pixels[None], notes
    pixels, notes = predictor.prepare([image])
    return pixels, notes[0]


def layer_payloads(outputs, max_channels: int) -> list[dict]:
    """Each recorded output of the first image as the page draws it; a module used several times (the lesson
    CNN's one `pool` after each conv) gives one row per use."""
    uses = Counter()
    rows = []
    for name, module, output in outputs:
        uses[name] += 1
        label = name if uses[name] == 1 else f"{name} (use {uses[name]})"
        values = output[0]
        row = {"name": label, "kind": type(module).__name__, "shape": list(values.shape)}
        if values.ndim == 3:
            shown = thumbnail_maps(values[:max_channels])
            scaled = shown.shape[1:] != values.shape[1:]
            row.update(maps=channel_maps(shown.numpy()), shown=len(shown), scaled=scaled)
        else:
            row["values"] = np.round(values.numpy().astype(np.float64), 4).tolist()
        rows.append(row)
    return rows


def thumbnail_maps(maps: torch.Tensor) -> torch.Tensor:
    """[C, h, w] maps, averaged down so the longer side is at most MAX_SIDE (aspect kept)."""
    h, w = maps.shape[1:]
    if max(h, w) <= MAX_SIDE:
        return maps
    factor = max(h, w) / MAX_SIDE
    return F.adaptive_avg_pool2d(maps, (max(1, round(h / factor)), max(1, round(w / factor))))


# --- what counts for a class --------------------------------------------------------------------------------------


class AttributionRequest(RunImage):
    target: int = Field(ge=0, description="class index whose evidence is shown")
    method: Literal[EXPLORER] = Field(EXPLORER[0], description=", ".join(EXPLORER))


@router.post("/attribution")
def attribution(request: AttributionRequest, store: RunStore = Depends(get_store)) -> dict:
    """A heat map of the pixels that count for class `target`, by `cnnlab.inspect.attribute`, drawn over the
    input as the model sees it (as `cnnlab explain` draws it: opacity follows strength; occlusion, which can be
    negative, in red for the class and blue against). The map itself comes too: `heat` as uint8 levels spanning
    `range` (the numbers `cnnlab explain --save-array` saves)."""
    from cnnlab.inspect.attributions import attribute, class_index, describe

    image = decode_image(request.image)
    with store.predictor(request.run) as predictor:
        pixels, _ = model_input(predictor, image, request.drawing)
        target = class_index(request.target, predictor.classes, len(predictor.classes))
        heat = attribute(predictor, pixels, request.method, target=target)[0]
        classes = predictor.classes
    row, col = divmod(int(np.abs(heat).argmax()), heat.shape[1])
    return {
        "run": request.run,
        "method": request.method,
        "target": target,
        "class": classes[target],
        "description": describe(request.method, pixels.shape[1]),
        "strongest": [row, col],
        "signed": METHODS[request.method].signed,
        "strongest_for": position(heat, heat.argmax()) if heat.max() > 0 else None,
        "strongest_against": position(heat, heat.argmin()) if heat.min() < 0 else None,
        "empty": not heat.any(),
        "range": [float(heat.min()), float(heat.max())],
        "heat": channel_maps(heat[None]),
        "overlay": png_data_url(heat_overlay(to_display(pixels[0].numpy())[0], heat, METHODS[request.method].signed)),
    }


def position(heat: np.ndarray, index) -> list[int]:
    """A flat index into a [H, W] map -> [row, column]."""
    return list(divmod(int(index), heat.shape[1]))


# --- the first conv layer, channel by channel -----------------------------------------------------------------------


class FirstConvRequest(RunImage):
    channel: int = Field(0, ge=0, description="the output channel taken apart")


@router.post("/first-conv")
def first_conv(request: FirstConvRequest, store: RunStore = Depends(get_store)) -> dict:
    """One output channel of the run's first conv layer taken apart: its kernel for each input channel, its bias, and
    for this image each input channel's partial map (that channel correlated with its kernel). The partial maps plus
    the bias add up to the channel's output, which comes too, as the layer computed it in the model's forward pass."""
    image = decode_image(request.image)
    with store.predictor(request.run) as predictor:
        conv = next((m for n, m in predictor.model.named_modules() if isinstance(m, torch.nn.Conv2d)), None)
        if conv is None:
            raise CnnlabError(f"run {request.run!r} ({predictor.name}) has no conv layer: choose a CNN's run")
        if request.channel >= conv.out_channels:
            raise CnnlabError(
                f"channel {request.channel} does not exist: the first conv layer has "
                f"{conv.out_channels} channels, 0 to {conv.out_channels - 1}"
            )
        if conv.groups != 1:
            raise CnnlabError("the first conv layer is grouped: each output sees only some input channels")
        pixels, _ = model_input(predictor, image, request.drawing)
        seen, output = layer_input_output(predictor.model, conv, predictor.inputs(pixels))
        layer = next(n for n, m in predictor.model.named_modules() if m is conv)
    weights = conv.weight.detach()[request.channel].double()  # [C_in, k, k]
    bias = float(conv.bias.detach()[request.channel]) if conv.bias is not None else 0.0
    partials = [
        F.conv2d(
            seen[:, c : c + 1].double(),
            weights[c][None, None],
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
        )[0, 0]
        for c in range(seen.shape[1])
    ]
    return {
        "run": request.run,
        "layer": layer,
        "channel": request.channel,
        "channels": conv.out_channels,
        "stride": list(conv.stride),
        "padding": list(conv.padding),
        "dilation": list(conv.dilation),
        "kernels": np.round(weights.numpy(), 4).tolist(),
        "bias": round(bias, 6),
        "inputs": [signed_picture(x) for x in seen[0]],
        "partials": [rounded(p) for p in partials],
        "partial_pictures": [signed_picture(p) for p in partials],
        "output": rounded(output[0, request.channel]),
        "output_picture": signed_picture(output[0, request.channel]),
    }


def layer_input_output(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor):
    """(what `layer` took, what it gave) at its first use in a forward pass of `model` on x; the rest of the model
    is not run, so no in-place op after the layer can change what it gave."""
    with torch.no_grad(), Capture(model, [layer], keep=copied, inputs=True, stop_after=layer) as capture:
        model(x)
    call = capture.first(layer)
    return call.input, call.output


def rounded(values: torch.Tensor) -> list:
    return np.round(values.double().numpy(), 6).tolist()


def signed_picture(values: torch.Tensor) -> str:
    """A map as a grey PNG on a scale symmetric about 0: mid-grey is 0, black -max|v|, white +max|v|."""
    values = values.double().numpy()
    top = float(np.abs(values).max()) or 1.0
    return png_data_url(np.round((values / top + 1) * 127.5).astype(np.uint8))


# --- test images --------------------------------------------------------------------------------------------------


@router.get("/random")
def random_test_image(
    run: str = Query(description="run folder name"),
    index: int | None = Query(None, ge=0, description="this test image; random if not given"),
    store: RunStore = Depends(get_store),
) -> dict:
    """A test image of the run's data set (the one at `index`, or a random one), as a PNG data URL with its true
    label."""
    classes = store.record(run).classes
    test = store.split(run, "test")
    if index is None:
        index = random.randrange(len(test))
    elif index >= len(test):
        raise CnnlabError(
            f"test image {index} does not exist: the test split has {len(test)} images, 0 to {len(test) - 1}"
        )
    label = int(test.labels[index])
    return {
        "image": pixels_data_url(test.pixels(index)),
        "label": label,
        "label_name": classes[label],
        "index": index,
        "count": len(test),
    }


# --- fooling the model ----------------------------------------------------------------------------------------------


class AttackRequest(LookRequest):
    method: Literal["fgsm", "pgd", "pgd-l2"] = Field("fgsm", description="fgsm, pgd (L-inf) or pgd-l2")
    eps: float = Field(0.05, ge=0, le=1, description="the attack's size in pixel units 0..1")
    steps: int = Field(10, ge=1, le=200, description="pgd: steps")
    target: int | None = Field(None, ge=0, description="class to push toward; null: the most likely wrong one")


@router.post("/attack")
def attack(request: AttackRequest, store: RunStore = Depends(get_store)) -> dict:
    """The image changed by at most `eps` toward `target` (by `cnnlab.inspect.attack`): the adversarial image, the
    change magnified (grey: none), and what the model now says, with every layer's output, as /look gives them."""
    from cnnlab.inspect.attack import LIKELY_WRONG, adversarial
    from cnnlab.plots.attack import magnified

    image = decode_image(request.image)
    with store.predictor(request.run) as predictor:
        pixels, _ = model_input(predictor, image, request.drawing)
        predicted = predictor.probabilities(pixels).argmax(1)
        target = LIKELY_WRONG if request.target is None else request.target
        fooled = adversarial(predictor, pixels, predicted, request.method, request.eps, request.steps, target=target)
        adv = fooled.images
        with every_layer_output(predictor.model) as outputs:
            scores = predictor.probabilities(predictor.preprocess.normalize(adv * 255))[0]
        classes, score_name = predictor.classes, predictor.score_name
    change = fooled.perturbation[0].numpy()
    return {
        **prediction(request.run, classes, scores, score_name),
        "was": int(predicted[0]),
        "target": int(fooled.target[0]),
        "flipped": int(scores.argmax()) != int(predicted[0]),
        "eps": request.eps,
        "method": request.method,
        "largest_change": float(abs(change).max()),
        "image": pixels_data_url(to_uint8(adv[0])),
        "perturbation": pixels_data_url(magnified(change)),
        "layers": layer_payloads(outputs, request.max_channels),
    }


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    return (pixels * 255).round().clamp(0, 255).to(torch.uint8).numpy()
