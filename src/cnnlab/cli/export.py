"""`cnnlab export`: a trained run as an ONNX (or TorchScript) file that carries its input contract."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.cli.base import add_command, add_run_weights, output_path
from cnnlab.cli.pretrained import add_model_option, load_predictor
from cnnlab.cli.user_code import add_trust
from cnnlab.export import FORMATS


def register(sub) -> None:
    p = add_command(
        sub,
        "export",
        "a trained run as an ONNX or TorchScript file, for Netron or onnxruntime",
        """
        cnnlab export runs/lesson-cnn-cifar10                       # runs/lesson-cnn-cifar10/model.onnx
        cnnlab export runs/mnist-cnn-mnist --out mnist.onnx
        cnnlab export runs/mnist-cnn-mnist --format torchscript
        cnnlab export --model resnet18 --weights imagenet --out resnet18.onnx""",
        _export,
        description="""
        The file takes float32 images [N, C, H, W] for any N, normalized as in training: (pixels / 255 - mean)
        / std. The input shape, mean, std and class names are in its metadata (ONNX: metadata_props). An ONNX
        file is checked with onnx.checker and, when onnxruntime is installed, against PyTorch on random inputs.
        Needs the export extra: pip install 'cnnlab[export]'.""",
    )
    p.add_argument("run", nargs="?", help="run folder made by `cnnlab train` (none with --model)")
    p.add_argument("--format", choices=list(FORMATS), default="onnx")
    p.add_argument("--out", help="file to write (default: RUN/model.onnx, or MODEL.onnx with --model)")
    add_run_weights(p)
    add_trust(p)
    add_model_option(p)


def _export(args) -> int:
    from cnnlab.export import export

    suffix = FORMATS[args.format]
    default = f"{args.model}{suffix}" if args.model else str(Path(args.run or ".") / f"model{suffix}")
    out = output_path(args.out, default, suffix, "--out")
    predictor = load_predictor(args)
    done = export(predictor, out, args.format)
    meta = done.metadata
    classes = len(json.loads(meta["cnnlab.classes"]))
    mean, std = (", ".join(f"{v:.3f}" for v in json.loads(meta[k])) for k in ("cnnlab.mean", "cnnlab.std"))
    print(
        f"wrote {done.path} ({done.path.stat().st_size / 1e6:.1f} MB, {args.format}): input float32 "
        f"[N, {meta['cnnlab.input_shape'].replace('x', ', ')}] normalized with mean [{mean}] std [{std}], "
        f"{classes} classes (all in its metadata)"
    )
    if done.max_difference is not None:
        print(f"checked with onnxruntime: largest difference from PyTorch {done.max_difference:.1e}")
    return 0
