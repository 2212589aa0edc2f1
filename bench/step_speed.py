"""The training step against this machine's own limit: images/s and achieved GFLOP/s of each model's step (forward,
backward, optimizer, at its default recipe's batch size), beside the peak the same machine reaches on a big matmul
and a big convolution timed in the same run; then what each variant changes, as a ratio to the step cnnlab takes
(channels_last for conv models; bf16 autocast on CPUs with bf16 hardware, fp32 elsewhere; a fused optimizer): plain
NCHW memory layout, the other precision, torch.compile, torch's default (unfused) optimizer step, torch's own
dropout instead of cnnlab's (models with dropout). The step's GFLOP/s are set against the peak of its own precision.

FLOPs are counted by torch.utils.flop_counter on one step (matmuls and convolutions, forward and backward: what a
peak figure is made of), so GFLOP/s here means "of the arithmetic that matters", the usual MFU convention.

    .venv/bin/python bench/step_speed.py [--models mlp,lesson-cnn,mnist-cnn,cifar-fast] [--seconds 4]
"""

from __future__ import annotations

import argparse
import inspect
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.models import create_model, get_spec
from cnnlab.models.dropout import Dropout, set_dropout
from cnnlab.training.metrics import loss_and_scores, resolve_precision
from cnnlab.training.network import has_conv
from cnnlab.training.optimizer import make_optimizer


def timed(step, seconds: float) -> float:
    """Seconds per call of `step`: after warm-up, the fastest of three stretches of about `seconds` / 3 each
    (the fastest, because other work on a shared machine only ever slows a stretch down)."""
    for _ in range(3):
        step()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 9:
        step()
        calls += 1
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def flops_of(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def peaks(seconds: float) -> dict[str, dict[str, float]]:
    """GFLOP/s of a 2048x2048 matmul and of a 3x3 convolution (128 -> 128 channels on 32x32 maps, channels_last),
    in fp32 and in bf16: {precision: {what: GFLOP/s}}."""
    out = {}
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(64, 128, 32, 32).to(memory_format=torch.channels_last)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out[precision] = {
                "matmul": 2 * 2048**3 / timed(lambda: a @ b, seconds) / 1e9,
                "conv": flops_of(lambda: conv(x)) / timed(lambda: conv(x), seconds) / 1e9,
            }
    return out


def training_step(
    name: str,
    *,
    channels_last: bool,
    bf16: bool = False,
    compiled: bool = False,
    unfused: bool = False,
    torch_dropout: bool = False,
):
    """One training step of `name` at its default recipe, as cnnlab's loop takes it; and the images per step."""
    spec = get_spec(name)
    recipe = spec.recipe(None, None)
    c, h, _ = spec.default_input
    torch.manual_seed(0)
    model = create_model(name, in_channels=c, num_classes=10, image_size=h).train()
    if recipe.dropout is not None:
        set_dropout(model, recipe.dropout)
    if torch_dropout:
        for module in model.modules():
            if isinstance(module, Dropout):
                module.__class__ = torch.nn.Dropout
    x, y = torch.randn(recipe.batch_size, c, h, h), torch.randint(0, 10, (recipe.batch_size,))
    if channels_last and has_conv(model):  # as the loop does: only conv models take channels_last
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(recipe, model)
    if unfused:  # the same groups and settings, stepped tensor by tensor as torch does by default on a CPU
        accepted = inspect.signature(type(optimizer)).parameters
        settings = {k: v for k, v in optimizer.defaults.items() if k in accepted}
        groups = [{k: v for k, v in group.items() if k != "fused"} for group in optimizer.param_groups]
        optimizer = type(optimizer)(groups, **{**settings, "fused": None})
    forward = torch.compile(model) if compiled else model

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = loss_and_scores(forward, x, y, recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, recipe.batch_size, has_conv(model), any(isinstance(m, Dropout) and m.p > 0 for m in model.modules())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lesson-cnn,mnist-cnn,cifar-fast")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per measurement (default 4)")
    args = parser.parse_args()
    precision = resolve_precision("auto", "cpu")
    bf16, other = precision == "bf16", "fp32" if precision == "bf16" else "bf16"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; cnnlab trains here in {precision}")
    peak = peaks(args.seconds)
    for p, measured in peak.items():
        print("peak  " + ", ".join(f"{what} {p} {gflops:.1f}" for what, gflops in measured.items()) + " GFLOP/s")
    top = max(peak[precision].values())
    for name in args.models.split(","):
        step, batch, conv, dropout = training_step(name, channels_last=True, bf16=bf16)
        base_seconds, flops = timed(step, args.seconds), flops_of(step)
        print(f"\n{name}: batch {batch}, {flops / batch / 1e6:.1f} MFLOP per image per step (fwd+bwd)")
        print(
            f"  cnnlab's step ({precision}{', channels_last' if conv else ''}): {batch / base_seconds:8.0f} "
            f"images/s, {flops / base_seconds / 1e9:6.1f} GFLOP/s = {100 * flops / base_seconds / 1e9 / top:.0f}% "
            f"of the {precision} peak"
        )
        variants = {
            "unfused optimizer": dict(channels_last=conv, bf16=bf16, unfused=True),
            f"{other} instead": dict(channels_last=conv, bf16=not bf16),
            "torch.compile": dict(channels_last=conv, bf16=bf16, compiled=True),
        }
        if conv:
            variants["NCHW (no channels_last)"] = dict(channels_last=False, bf16=bf16)
        if dropout:
            variants["torch's own dropout"] = dict(channels_last=conv, bf16=bf16, torch_dropout=True)
        for label, options in variants.items():
            try:
                variant, *_ = training_step(name, **options)
                seconds = timed(variant, args.seconds)
            except Exception as error:  # e.g. torch.compile without a working C compiler
                print(f"  {label:<24} failed: {str(error).splitlines()[0][:100]}")
                continue
            print(f"  {label:<24} {batch / seconds:8.0f} images/s: {base_seconds / seconds:5.2f}x cnnlab's step")


if __name__ == "__main__":
    main()
