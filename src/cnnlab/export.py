"""A trained model out of cnnlab: ONNX (Netron, onnxruntime, other languages) or TorchScript, with its input contract
written into the file, so whoever runs it knows what to feed it.

    export(Predictor.from_run("runs/lesson-cnn-cifar10"), "lesson-cnn.onnx")

The file takes float32 [N, C, H, W] (any N), already normalized: (pixels / 255 - mean) / std, with the mean, std,
input shape and class names in its metadata (ONNX: `metadata_props`; TorchScript: `cnnlab.json` beside the code).
Any model a Predictor holds is exported, a registry model or a custom nn.Module. ONNX needs the `onnx` package
(`pip install 'cnnlab[export]'`); onnxruntime, when installed, checks the file against PyTorch on a few inputs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.errors import CnnlabError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads FORMATS in a blink
    from cnnlab.predict import Predictor

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17
EXTRA = "pip install 'cnnlab[export]'"


@dataclass
class Exported:
    path: Path
    format: str
    metadata: dict[str, str]
    max_difference: float | None = None  # onnxruntime against PyTorch, when onnxruntime is installed


def metadata(predictor: Predictor) -> dict[str, str]:
    """The input contract as strings: what a program needs to turn an image into the model's input."""
    p = predictor.preprocess
    c, h, w = p.shape
    record = predictor.record
    return {
        "cnnlab.model": record.model.name if record else predictor.name,
        "cnnlab.input_shape": f"{c}x{h}x{w}",
        "cnnlab.input": "float32 [N, C, H, W], RGB or grey, (pixels / 255 - mean) / std per channel",
        "cnnlab.mean": json.dumps(list(p.mean)),
        "cnnlab.std": json.dumps(list(p.std)),
        "cnnlab.classes": json.dumps(predictor.classes or []),
        "cnnlab.outputs": "capsule lengths" if predictor.capsules else "logits (softmax gives probabilities)",
        "cnnlab.light_on_dark": json.dumps(p.light_on_dark),
    }


def export(predictor: Predictor, path, format: str = "onnx", check: bool = True) -> Exported:
    """Write the predictor's model to `path` in `format`; the file appears whole or not at all."""
    import torch

    if format not in FORMATS:
        raise CnnlabError(f"format {format!r}: use one of {', '.join(FORMATS)}")
    if predictor.input_shape is None:
        raise CnnlabError("a bare model has no input shape to export with: wrap it in a Predictor with a Preprocess")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = predictor.model.eval().float().to("cpu", memory_format=torch.contiguous_format)
    example = torch.zeros(2, *predictor.input_shape)  # two images: the batch stays a free dimension
    info = metadata(predictor)
    partial = path.with_name(path.name + ".partial")
    try:
        if format == "onnx":
            write_onnx(model, example, partial, info, info["cnnlab.model"])
        else:
            write_torchscript(model, example, partial, info, info["cnnlab.model"])
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    difference = onnx_difference(model, path, predictor.input_shape) if check and format == "onnx" else None
    return Exported(path, format, info, difference)


def write_onnx(model, example, path: Path, info: dict[str, str], name: str) -> None:
    try:
        import onnx
    except ImportError:
        raise CnnlabError(f"ONNX export needs the onnx package: {EXTRA}") from None
    trace_to_onnx(model, example, path, name)
    proto = onnx.load(str(path))
    for key, value in info.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"{name} exported by cnnlab; input: {info['cnnlab.input']}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise CnnlabError(
            f"{name}: the exported ONNX file does not pass onnx.checker ({str(e).splitlines()[0]})"
        ) from None
    onnx.save(proto, str(path))


def trace_to_onnx(model, example, path: Path, name: str) -> None:
    """The TorchScript-based exporter first (seconds); where it lacks an operator (adaptive pooling to a size that
    does not divide the input, as VGG on small images), the torch.export-based one (slower, needs onnxscript)."""
    import torch

    common = dict(input_names=["image"], output_names=["scores"])
    quiet = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}},
                **common,
            )
        if batch_is_free(path, example):
            return
        # a trace records Python numbers as constants: len(x) in a forward fixes the batch size
        first = "the traced graph fixes the batch size (len(x) or x.shape[0] used as a number in forward)"
    except Exception as e:  # the exporter raises many kinds; each becomes a reason below
        first = reason(e)
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter's dependency)
    except ImportError:
        raise CnnlabError(f"{name} cannot be exported to ONNX: {first}") from None
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                opset_version=max(OPSET, 18),
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
                **common,
            )
    except Exception as e:
        raise CnnlabError(
            f"{name} cannot be exported to ONNX: {first}; the torch.export-based exporter: {reason(e)}"
        ) from None
    if not batch_is_free(path, example):
        raise CnnlabError(
            f"{name} cannot be exported to ONNX with a free batch size: its forward uses the batch "
            "size as a number (len(x)); x.shape[0] or view(-1, ...) keeps it free"
        )


def batch_is_free(path: Path, example) -> bool:
    """Does the file take another batch size than the one it was traced with? (True without onnxruntime.)"""
    try:
        import onnxruntime
    except ImportError:
        return True
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = example[:1].numpy()
    try:
        return session.run(None, {session.get_inputs()[0].name: x})[0].shape[0] == 1
    except Exception:  # onnxruntime's errors for a shape the graph cannot take
        return False


def reason(error: Exception) -> str:
    """An exporter's error in one short line (they carry whole graphs after the first sentence)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text.split(" Please feel free")[0].split("  [Caused by")[0]
    return text[:200]


def write_torchscript(model, example, path: Path, info: dict[str, str], name: str) -> None:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={"cnnlab.json": json.dumps(info)})
    except Exception as e:
        raise CnnlabError(f"{name} cannot be traced to TorchScript: {reason(e)}") from None


def onnx_difference(model, path: Path, shape, batch: int = 2) -> float | None:
    """The largest |onnxruntime - PyTorch| on a few random inputs; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x).float().numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return float(abs(got - expected).max())
