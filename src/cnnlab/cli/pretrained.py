"""`--model NAME --weights imagenet` in place of a run folder, for predict, explain and layers: a famous network
with its published weights, no training needed. Kept here so each command adds it in one line."""

from __future__ import annotations

from cnnlab.cli.base import RUN_WEIGHTS
from cnnlab.errors import CnnlabError

PUBLISHED = ["imagenet"]


def add_model_option(p) -> None:
    """--model, and `imagenet` among --weights' choices."""
    p.add_argument(
        "--model",
        metavar="NAME",
        help="use a famous network with published weights instead of a run, "
        "with --weights imagenet (alexnet, vgg*, resnet18/34/50)",
    )
    for action in p._actions:
        if action.dest == "weights":
            action.choices = RUN_WEIGHTS + PUBLISHED
            action.help = "best or last (a run), or imagenet (with --model)"


def images_of(args) -> list[str]:
    """With --model there is no run: the first positional is an image too."""
    if args.model:
        return ([args.run] if args.run else []) + list(args.images)
    return list(args.images)


def load_predictor(args):
    """The run's Predictor (a learner's own network from its --trust file), or with --model the pretrained
    network's (downloaded once into torch's cache)."""
    from cnnlab.cli.user_code import open_predictor
    from cnnlab.predict import PretrainedPredictor

    if args.model:
        if args.weights not in PUBLISHED:
            raise CnnlabError(f"--model {args.model} needs published weights: add --weights imagenet")
        return PretrainedPredictor.imagenet(args.model)
    if args.weights in PUBLISHED:
        raise CnnlabError("--weights imagenet goes with --model NAME (e.g. --model resnet18), not with a run folder")
    if not args.run:
        raise CnnlabError("give a run folder made by `cnnlab train`, or --model NAME --weights imagenet")
    return open_predictor(args)
