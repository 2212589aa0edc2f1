"""`cnnlab serve`: the explorer in the browser (cnnlab.serve)."""

from __future__ import annotations

import argparse

from cnnlab.cli.base import add_command
from cnnlab.cli.pretrained import PUBLISHED
from cnnlab.cli.user_code import add_trust, trusted_classes
from cnnlab.errors import CnnlabError


def register(sub) -> None:
    p = add_command(
        sub,
        "serve",
        "the explorer in your browser: draw, upload or film an image and watch a model think",
        """
        cnnlab serve                      # the runs under ./runs, at http://127.0.0.1:8000/
        cnnlab serve my-runs --port 8080
        cnnlab serve runs --trust nets.py   # also the runs of your own network, class Net in nets.py
        cnnlab serve --model resnet18 --weights imagenet   # also ResNet-18 as ImageNet trained it""",
        _serve,
        description="""
        A local web page over your trained runs: pick a run, draw a digit, upload or film a picture, and see the
        class probabilities, every layer's feature maps and where the model looked (Grad-CAM, saliency,
        occlusion). Also: a kernel playground, convolution arithmetic, the training monitor (live while a run
        trains) and the data sets with their augmentation. Works offline; every action is a JSON endpoint too,
        listed at /docs.""",
    )
    p.add_argument(
        "runs",
        nargs="?",
        default=None,
        metavar="RUNS_DIR",
        help="the folder holding run folders (default: ./runs; it need not exist yet)",
    )
    p.add_argument(
        "--port", type=port_number, default=8000, help="port to listen on, 1 to 65535 (default: %(default)s)"
    )
    add_trust(p)
    p.add_argument(
        "--model",
        metavar="NAME",
        help="also offer a famous network with published weights, with --weights imagenet "
        "(alexnet, vgg*, resnet18/34/50); it needs no run",
    )
    p.add_argument("--weights", choices=PUBLISHED, help="imagenet: the published weights of --model")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 opens it to your network)",
    )


def port_number(text: str) -> int:
    """--port: a whole number from 1 to 65535 (argparse prints the refusal as one line)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; choose a port from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port; choose one from 1 to 65535")
    return port


def _serve(args) -> None:
    from cnnlab.serve import serve

    models = trusted_classes(args.trust)
    pretrained = []
    if args.model or args.weights:  # fetched before the server starts: a failed download is said at once
        if not (args.model and args.weights):
            raise CnnlabError(
                "--model NAME and --weights imagenet go together (e.g. --model resnet18 --weights imagenet)"
            )
        from cnnlab.predict import PretrainedPredictor

        pretrained.append(PretrainedPredictor.imagenet(args.model))
    serve(
        args.runs,
        host=args.host,
        port=args.port,
        models=models,
        models_from=", ".join(args.trust),
        pretrained=pretrained,
    )
