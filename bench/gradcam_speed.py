"""How fast is Grad-CAM for one 32x32 image on the lesson CNN? An interactive explorer calls it on every stroke,
so the goal is under 50 ms in process.

Times, as the median of many calls after a warm-up (with the 90th percentile, since the machine may be shared):
  - a plain forward + backward to the input of the same model: the floor any gradient method pays;
  - `cnnlab.inspect.attribute(..., "gradcam")`, the API (Captum's LayerGradCam + upsampling), with the class
    given and with the predicted class (one more forward pass to find it);
  - Captum's LayerGradCam called directly, to see what cnnlab adds;
  - a hand-written Grad-CAM with a forward hook, to see what Captum adds.

    python bench/gradcam_speed.py [--calls 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnlab.inspect import attribute
from cnnlab.models import create_model


def timings(fn, calls: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - start))
    return out


def hooked_gradcam(model, layer, x, target: int) -> torch.Tensor:
    """Grad-CAM in a dozen lines: keep the layer's output, take the score's gradient with respect to it."""
    kept = []
    handle = layer.register_forward_hook(lambda _m, _i, output: kept.append(output))
    try:
        score = model(x)[0, target]
    finally:
        handle.remove()
    activation = kept[0]
    (grad,) = torch.autograd.grad(score, activation)
    cam = F.relu((grad.mean((2, 3), keepdim=True) * activation).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear")[:, 0].detach()


def main() -> None:
    from captum.attr import LayerAttribution, LayerGradCam

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("lesson-cnn").eval()
    x = torch.randn(1, 3, 32, 32)
    target = int(model(x).argmax())

    def forward_backward():
        xg = x.clone().requires_grad_()
        torch.autograd.grad(model(xg)[0, target], xg)

    def captum_direct():
        maps = LayerGradCam(model, model.conv3).attribute(x, target=target, relu_attributions=True)
        LayerAttribution.interpolate(maps, (32, 32), "bilinear")

    # the three Grad-CAMs must agree before their speeds mean anything
    api = attribute(model, x, "gradcam", target=target)
    assert torch.allclose(torch.from_numpy(api), hooked_gradcam(model, model.conv3, x, target), atol=1e-5)

    cases = {
        "forward + backward (baseline)": forward_backward,
        "attribute(gradcam), class given": lambda: attribute(model, x, "gradcam", target=target),
        "attribute(gradcam), predicted class": lambda: attribute(model, x, "gradcam"),
        "Captum LayerGradCam, direct": captum_direct,
        "hand-written Grad-CAM (hooks)": lambda: hooked_gradcam(model, model.conv3, x, target),
    }
    print(
        f"lesson-cnn, one 3x32x32 image, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{args.calls} calls each after 20 warm-up calls"
    )
    print(f"{'':38s} {'median ms':>10s} {'p90 ms':>8s} {'x baseline':>11s}")
    baseline = None
    for name, fn in cases.items():
        t = timings(fn, args.calls)
        median, p90 = statistics.median(t), statistics.quantiles(t, n=10)[-1]
        baseline = baseline or median
        print(f"{name:38s} {median:10.2f} {p90:8.2f} {median / baseline:11.1f}")
    print("goal: under 50 ms for attribute(gradcam)")


if __name__ == "__main__":
    main()
