"""`cnnlab layers` and `cnnlab explain`: what a trained network looks at, as pictures. A thin shell over
`cnnlab.inspect`; torch is imported inside the handlers only."""

from __future__ import annotations

from pathlib import Path

from cnnlab.cli.base import (
    MODEL_IMAGE_HELP,
    add_command,
    add_data_root,
    add_run_weights,
    default_name,
    output_path,
    save_array,
)
from cnnlab.cli.pretrained import add_model_option, images_of, load_predictor
from cnnlab.cli.user_code import add_trust, open_predictor
from cnnlab.data import DATASETS
from cnnlab.errors import CnnlabError
from cnnlab.inspect.methods import METHODS, WITHOUT_IMAGES, option_fields, option_help, using

# indented as the description around it, which add_command dedents
METHOD_HELP = "\n".join(f"          {name:<22}{m.shows}" for name, m in METHODS.items())
CHOICES = {"dataset": DATASETS}  # options whose values the command line knows


def register(sub) -> None:
    p = add_command(
        sub,
        "layers",
        "the layers of a trained run (or a pretrained network) that --layer can name, with output shapes",
        """
        cnnlab layers runs/lesson-cnn-cifar10
        cnnlab layers --model resnet18 --weights imagenet""",
        _layers,
        description="""
        Every module the model's forward pass uses, in order, with the shape it outputs for one image. These are
        the names `cnnlab explain --layer` takes; the default (the last convolutional layer) is marked.""",
    )
    p.add_argument("run", nargs="?", help="run folder made by `cnnlab train` (none with --model)")
    add_trust(p)
    add_run_weights(p)
    add_model_option(p)

    p = add_command(
        sub,
        "interpret",
        "where a trained run goes wrong: top losses and most confused classes",
        """
        cnnlab interpret runs/lesson-cnn-cifar10
        cnnlab interpret runs/mnist-cnn-mnist --top 24 --split valid""",
        _interpret,
        description="""
        The images the model got most confidently wrong (the highest loss, -log of the probability it gave the
        true class) with what it said, and the pairs of classes it mixes up most (fastai's top losses and most
        confused). The figure goes into the run folder.""",
    )
    p.add_argument("run", help="run folder made by `cnnlab train`")
    add_trust(p)
    p.add_argument("--split", choices=["test", "valid"], default="test")
    p.add_argument("--top", type=int, default=16, metavar="N", help="top losses shown (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=10, metavar="N", help="confused pairs listed (default: %(default)s)")
    add_run_weights(p)
    add_data_root(p)
    p.add_argument("--out", help="PNG to write (default: RUN/top-losses-SPLIT.png)")

    p = add_command(
        sub,
        "explain",
        "see inside a trained CNN: filters, feature maps, heat maps, patches, dreams",
        """
        cnnlab explain runs/lesson-cnn-cifar10 test:3 --method gradcam
        cnnlab explain runs/lesson-cnn-cifar10 sample:car --method occlusion
        cnnlab explain runs/lesson-cnn-cifar10 cat.png --method gradcam
        cnnlab explain runs/lesson-cnn-cifar10 cat.png dog.png --method smoothgrad --target cat
        cnnlab explain runs/lesson-cnn-cifar10 --method filters
        cnnlab explain runs/lesson-cnn-cifar10 cat.png --method activations --layer conv2
        cnnlab explain runs/lesson-cnn-cifar10 --method top-patches --layer conv2 --channels 8
        cnnlab explain runs/lesson-cnn-cifar10 --method maximize --layer conv3 --channel 5
        cnnlab explain runs/lesson-cnn-cifar10 cat.png --method deepdream --layer conv2 --octaves 3
        cnnlab explain --model resnet18 --weights imagenet cat.jpg --method gradcam --layer layer4""",
        _explain,
        description=f"""
        Methods, and what the picture shows:
{METHOD_HELP}
        Heat maps are for --target (default: each image's predicted class) and are computed on the normalized
        input the model sees, then drawn over the image. Images are converted to the model's channels and size,
        and each change is reported.""",
    )
    p.add_argument("run", nargs="?", help="run folder made by `cnnlab train` (none with --model)")
    add_trust(p)
    p.add_argument(
        "images", nargs="*", metavar="IMAGE", help=f"{MODEL_IMAGE_HELP} (not needed by {', '.join(WITHOUT_IMAGES)})"
    )
    p.add_argument("--method", required=True, choices=METHODS, metavar="METHOD", help="one of the methods above")
    p.add_argument(
        "--layer",
        help="layer name from `cnnlab layers RUN` (default: the last conv layer); "
        f"for {', '.join(m for m in METHODS if METHODS[m].layer)}",
    )
    p.add_argument(
        "--target", help=f"class index or name (default: the predicted class); for {', '.join(using('target'))}"
    )
    p.add_argument("--out", help="PNG to write (default: RUN/explanations/IMAGE-METHOD[-LAYER][-TARGET].png)")
    p.add_argument("--save-array", metavar="FILE.npy", help="also save the raw numbers (maps, activations, ...)")
    add_run_weights(p)
    add_model_option(p)
    group = p.add_argument_group("options of the methods (each says which methods take it, and their defaults)")
    for name, uses in option_fields().items():
        rules = uses[0][1].metadata
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=rules["kind"],
            choices=CHOICES.get(name),
            metavar=rules["metavar"],
            help=option_help(uses),
        )


def _interpret(args) -> int:
    from cnnlab.errors import whole
    from cnnlab.inspect.interpret import interpret
    from cnnlab.plots import save, top_losses_figure

    whole(args.pairs, "pairs", 0)
    out = output_path(args.out, str(Path(args.run) / f"top-losses-{args.split}.png"), ".png", "--out")
    predictor = open_predictor(args)
    found = interpret(predictor, args.split, args.data_root, top=args.top)
    print(f"most confused ({args.split} images, true -> predicted):")
    for actual, predicted, count in found.confused[: args.pairs]:
        print(f"  {actual:>16s} -> {predicted:<16s} {count:6d}")
    if not found.confused:
        print("  none: every image is right")
    print(f"\nthe {len(found.index)} images with the highest loss (most confidently wrong first):")
    for i, index in enumerate(found.index):
        print(
            f"  #{index:<6d} {found.classes[found.actual[i]]:>16s} "
            f"predicted as {found.classes[found.predicted[i]]:<16s}"
            f" loss {found.loss[i]:6.2f}  {predictor.score_name} {found.probability[i]:.3f}"
        )
    heading = (
        f"{predictor.name}: top losses on the {args.split} split\n(predicted / actual, loss / "
        f"{predictor.score_name} of the prediction)"
    )
    print(f"wrote {save(top_losses_figure(found, heading), out)}")
    return 0


def _layers(args) -> int:
    from cnnlab.models.layers import default_layer, layer_table

    if args.model and args.run:
        raise CnnlabError(f"layers --model {args.model} takes no run folder or image; drop {args.run!r}")
    predictor = load_predictor(args)
    rows = layer_table(predictor.model, predictor.input_shape)
    default = default_layer(predictor.model)
    why_default = default_reason(predictor.model)
    width = max(8, *(len(r.name) for r in rows))
    kind_width = max(6, *(len(r.kind) for r in rows))
    source = predictor.name if args.model else f"{predictor.record.model.name} from {args.run}"
    print(f"{source}, input {'x'.join(map(str, predictor.input_shape))}")
    print(f"{'layer':<{width}}  {'type':<{kind_width}}  output shape")
    for r in rows:
        notes = [f"used {r.calls} times: --layer {r.name} means its first use"] if r.calls > 1 else []
        notes += [f"<- the default --layer ({why_default})"] if r.name == default else []
        print(
            f"{r.name:<{width}}  {r.kind:<{kind_width}}  {'x'.join(map(str, r.output_shape)):<14}  "
            f"{'; '.join(notes)}".rstrip()
        )
    if default is None:
        print(
            f"no conv layer: {', '.join(using('layer', 'conv'))} need one; --layer can name any layer above for "
            f"{', '.join(using('layer', 'any'))}"
        )
    return 0


def _explain(args) -> int:
    from cnnlab.inspect import explain
    from cnnlab.plots import save

    # beside the run, named by what shaped the picture: nothing is written into the current folder unasked
    images = images_of(args)
    name = default_name(
        images_name(images), args.method, args.layer, args.channel is not None and f"channel{args.channel}", args.target
    )
    folder = Path(args.run or ".") if not args.model else Path("explanations") / args.model  # no run: one here
    out = output_path(
        args.out, str(folder / ("explanations" if not args.model else "") / f"{name}.png"), ".png", "--out"
    )
    array_path = output_path(args.save_array, "", ".npy", "--save-array") if args.save_array else None
    options = {name: getattr(args, name) for name in option_fields() if getattr(args, name) is not None}
    METHODS[args.method].settings(options, args.layer, args.target)  # refused before a model is loaded
    predictor = load_predictor(args)
    result = explain(predictor, args.method, images, layer=args.layer, target=args.target, **options)
    print("\n".join(result.lines))
    print(f"wrote {save(result.figure, out)}")
    if array_path:
        save_array(array_path, result.array)
        print(f"wrote {array_path} ({result.array.dtype}, shape {list(result.array.shape)})")
    return 0


def images_name(images: list[str]) -> str:
    """What a figure of these images is named after: every stem up to three (cat+dog+frog), else the first and a
    count (cat-and-4-more); two commands on different images never write one file."""
    stems = [Path(image).stem for image in images]
    return "+".join(stems) if len(stems) <= 3 else f"{stems[0]}-and-{len(stems) - 1}-more"


def default_reason(model) -> str:
    """Why the default --layer is the one it is. CapsNet names its own (conv1, before the primary capsules' conv):
    "the last conv layer" would be wrong there."""
    if getattr(model, "inspect_layer", None):
        return "the layer this model names for explanations, not its last conv layer"
    return "the last conv layer"
