"""What to try after a training: the commands that use the new run, written with its real folder so they can be
pasted as they are."""

from __future__ import annotations

import shlex


def next_commands(run) -> list[str]:
    """`cnnlab evaluate / predict / explain / serve` for this run: a digit sample for a grey model, the car for a
    colour one; Grad-CAM where there is a conv layer, saliency for a network without one (an MLP)."""
    from cnnlab.inspect.methods import offered
    from cnnlab.models.layers import default_layer

    folder = shlex.quote(str(run.folder))
    predictor = run.predictor
    sample = "sample:digit7" if predictor.input_shape and predictor.input_shape[0] == 1 else "sample:car"
    method = offered(default_layer(predictor.model) is not None)[0]
    return [
        f"cnnlab evaluate {folder}                        # per-class test accuracy",
        f"cnnlab predict {folder} test:0 {sample}         # a test image and a picture drawn by code",
        f"cnnlab explain {folder} test:0 --method {method}  # what the prediction rests on",
        f"cnnlab explain {folder} --method filters        # what the first layer learned",
        f"cnnlab serve {shlex.quote(str(run.folder.parent))}  # all of it in the browser",
    ]
