"""`cnnlab layers` and `cnnlab explain`: what a trained network looks at, as pictures. A thin shell over
`cnnlab.inspect`; torch is imported inside the handlers only."""
from __future__ import annotations

from pathlib import Path

from cnnlab.cli.base import add_command, output_path, save_array
from cnnlab.cli.training import DATASET_NAMES
from cnnlab.errors import CnnlabError

# the same names as cnnlab.inspect.attributions.METHODS (a test checks), repeated so --help needs no torch
ATTRIBUTIONS = ("saliency", "smoothgrad", "integrated-gradients", "occlusion", "gradcam", "guided-gradcam")
METHODS = ("filters", "activations", *ATTRIBUTIONS, "top-patches", "maximize", "deepdream", "capsule-dims")
WITHOUT_IMAGES = ("filters", "top-patches", "maximize")


def register(sub) -> None:
    p = add_command(sub, "layers", "the layers of a trained run that --layer can name, with output shapes", """
        cnnlab layers runs/lesson-cnn-cifar10""", _layers, description="""
        Every module the model's forward pass uses, in order, with the shape it outputs for one image. These are
        the names `cnnlab explain --layer` takes; the default (the last convolutional layer) is marked.""")
    p.add_argument("run", help="run folder made by `cnnlab train`")
    p.add_argument("--weights", choices=["best", "last"], default="best")

    p = add_command(sub, "explain", "see inside a trained CNN: filters, feature maps, heat maps, patches, dreams", """
        cnnlab explain runs/lesson-cnn-cifar10 cat.png --method gradcam
        cnnlab explain runs/lesson-cnn-cifar10 cat.png dog.png --method smoothgrad --target cat
        cnnlab explain runs/lesson-cnn-cifar10 --method filters
        cnnlab explain runs/lesson-cnn-cifar10 cat.png --method activations --layer conv2
        cnnlab explain runs/lesson-cnn-cifar10 --method top-patches --layer conv2 --channels 8
        cnnlab explain runs/lesson-cnn-cifar10 --method maximize --layer conv3 --channel 5
        cnnlab explain runs/lesson-cnn-cifar10 cat.png --method deepdream --layer conv2 --octaves 3""", _explain,
        description="""
        Methods, and what the picture shows:
          filters               the first conv layer's weights (an MLP: its first layer's rows as images)
          activations           the feature maps of a layer for each image
          saliency              |gradient| of the class score with respect to each pixel
          smoothgrad            the same, averaged over noisy copies: less speckle
          integrated-gradients  gradients summed along the way from a black image (red for, blue against)
          occlusion             how much the score drops when a patch of the image is covered
          gradcam               where a conv layer's class evidence is (coarse, class-specific)
          guided-gradcam        Grad-CAM times guided backpropagation: fine detail where Grad-CAM points
          top-patches           per channel, the 9 data set patches that excite it most (Zeiler & Fergus)
          maximize              the picture that drives a channel (--channel) or a class (--target) up
          deepdream             the image with what a layer sees in it amplified, at several scales
          capsule-dims          CapsNet: each dimension of the image's capsule nudged by -0.25..0.25, decoded
        Heat maps are for --target (default: each image's predicted class) and are computed on the normalized
        input the model sees, then drawn over the image. Images are converted to the model's channels and size,
        and each change is reported.""")
    p.add_argument("run", help="run folder made by `cnnlab train`")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (not needed by filters, top-patches, "
                                                              "maximize)")
    p.add_argument("--method", required=True, choices=METHODS, metavar="METHOD", help="one of the methods above")
    p.add_argument("--layer", help="layer name from `cnnlab layers RUN` (default: the last conv layer)")
    p.add_argument("--target", help="class index or name (default: the predicted class)")
    p.add_argument("--out", help="PNG to write (default: IMAGE-METHOD.png, or RUN-METHOD.png)")
    p.add_argument("--save-array", metavar="FILE.npy", help="also save the raw numbers (maps, activations, ...)")
    p.add_argument("--weights", choices=["best", "last"], default="best")
    p.add_argument("--channels", type=int, metavar="N",
                   help="channels shown: activations (default 16), top-patches (8), filters (64)")
    p.add_argument("--steps", type=int, metavar="N", help="integrated-gradients: points on the path (default 32); "
                                                          "maximize: steps (200); deepdream: steps per octave (10)")
    p.add_argument("--samples", type=int, default=25, metavar="N", help="smoothgrad: noisy copies (default: 25)")
    p.add_argument("--window", type=int, metavar="PIXELS",
                   help="occlusion: side of the covered square (default: an eighth of the image)")
    group = p.add_argument_group("top-patches")
    group.add_argument("--dataset", choices=DATASET_NAMES, help="data set to search (default: the run's own)")
    group.add_argument("--data-root", help="where the data set is (default: where the run found it)")
    group.add_argument("--limit", type=int, default=2000, metavar="N",
                       help="search the first N test images (default: 2000)")
    group = p.add_argument_group("maximize and deepdream")
    group.add_argument("--channel", type=int, metavar="K", help="maximize: the channel of --layer to maximize")
    group.add_argument("--octaves", type=int, default=3, metavar="N",
                       help="deepdream: scales, each 1.4x the last (default: 3)")


def _layers(args) -> int:
    from cnnlab.inspect import default_layer, layer_table
    from cnnlab.train.runs import load_run

    trained = load_run(args.run, args.weights)
    rows = layer_table(trained.model, trained.input_shape)
    default = default_layer(trained.model)
    width = max(8, *(len(r.name) for r in rows))
    kind_width = max(6, *(len(r.kind) for r in rows))
    print(f"{trained.info['model']['name']} from {args.run}, input {'x'.join(map(str, trained.input_shape))}")
    print(f"{'layer':<{width}}  {'type':<{kind_width}}  output shape")
    for r in rows:
        notes = [f"used {r.calls} times: --layer {r.name} means its first use"] if r.calls > 1 else []
        notes += ["<- the default --layer (the last conv layer)"] if r.name == default else []
        print(f"{r.name:<{width}}  {r.kind:<{kind_width}}  {'x'.join(map(str, r.output_shape)):<14}  "
              f"{'; '.join(notes)}".rstrip())
    if default is None:
        print("no conv layer: gradcam, top-patches and deepdream need one; --layer can name any layer above for "
              "activations and maximize")
    return 0


def _read_images(paths: list[str], trained):
    """uint8 [N, C, H, W] as the model takes them, saying what was changed in each."""
    import torch

    from cnnlab.data.formats import read_image
    from cnnlab.train.runs import prepare_image

    prepared = []
    for path in paths:
        pixels, notes = prepare_image(read_image(path), trained)
        if notes:
            print(f"{path}: {'; '.join(notes)}")
        prepared.append(pixels)
    return torch.stack(prepared)


def _run_name(args) -> str:
    return Path(args.run).resolve().name


def _explain(args) -> int:
    from cnnlab.train.runs import load_run

    if args.method in WITHOUT_IMAGES and args.images:
        raise CnnlabError(f"--method {args.method} takes no IMAGE; give just the run folder")
    if args.method not in WITHOUT_IMAGES and not args.images:
        raise CnnlabError(f"--method {args.method} needs at least one IMAGE file")
    stem = Path(args.images[0]).stem if args.images else _run_name(args)
    out = output_path(args.out, f"{stem}-{args.method}.png", ".png", "--out")
    array_path = output_path(args.save_array, "", ".npy", "--save-array") if args.save_array else None
    trained = load_run(args.run, args.weights)
    handler = {"filters": _filters, "activations": _activations, "top-patches": _top_patches,
               "maximize": _maximize, "deepdream": _deepdream,
               "capsule-dims": _capsule_dims}.get(args.method, _attribution)
    array = handler(args, trained, out)
    print(f"wrote {out}")
    if array_path:
        save_array(array_path, array)
        print(f"wrote {array_path} ({array.dtype}, shape {list(array.shape)})")
    return 0


def _filters(args, trained, out):
    from cnnlab.inspect import first_layer_filters
    from cnnlab.inspect.figures import filters_figure

    name, weights = first_layer_filters(trained.model, trained.input_shape)
    o, c, kh, kw = weights.shape
    shown = min(o, args.channels or 64)
    first = f"; the first {shown} shown" if shown < o else ""
    print(f"{name}: {o} filters of {c}x{kh}x{kw}{first}")
    look = "colour, each stretched to its own range" if c == 3 else "red positive, blue negative"
    filters_figure(weights[:shown], f"{_run_name(args)}: {name}, {o} filters {kh}x{kw}{first} ({look})", out)
    return weights


def _activations(args, trained, out):
    from cnnlab.inspect import activations
    from cnnlab.inspect.figures import feature_maps_figure
    from cnnlab.inspect.layers import resolve_layer

    images = _read_images(args.images, trained)
    name, module = resolve_layer(trained.model, args.layer)
    maps = activations(trained, images, name)
    shown = min(maps.shape[1], args.channels or 16) if maps.ndim == 4 else maps.shape[1]
    if maps.ndim == 4:
        print(f"{name} ({type(module).__name__}): {maps.shape[1]} channels of {maps.shape[2]}x{maps.shape[3]}"
              + (f"; the first {shown} shown" if shown < maps.shape[1] else ""))
        means = maps.mean((2, 3))
        for path, row in zip(args.images, means):
            print(f"{path}: most active channel {row.argmax()} (mean {row.max():.3g})")
        heading = f"{_run_name(args)}: feature maps of {name}, one colour scale per image"
    else:
        print(f"{name} ({type(module).__name__}): {maps.shape[1]} outputs per image, no feature maps")
        heading = f"{_run_name(args)}: outputs of {name}"
    feature_maps_figure(images.numpy(), maps[:, :shown], [Path(p).name for p in args.images], heading, out)
    return maps


def _attribution(args, trained, out):
    from cnnlab.inspect import attribute, class_index, default_layer
    from cnnlab.inspect.attributions import METHODS as DESCRIPTIONS
    from cnnlab.inspect.attributions import SIGNED
    from cnnlab.inspect.figures import attribution_figure

    images = _read_images(args.images, trained)
    probabilities = trained.probabilities(images)
    predicted = probabilities.argmax(1).tolist()
    targets = predicted
    if args.target is not None:
        targets = [class_index(args.target, trained.classes, probabilities.shape[1])] * len(images)
    options = {"smoothgrad": {"samples": args.samples}, "integrated-gradients": {"steps": args.steps or 32},
               "occlusion": {"window": args.window}}.get(args.method, {})
    maps = attribute(trained, images, args.method, target=targets, layer=args.layer, **options)
    score = "probability" if trained.outputs == "logits" else "capsule length"
    titles, labels = [], []
    for path, p, t, probs, heat in zip(args.images, predicted, targets, probabilities.tolist(), maps):
        row, col = divmod(int(heat.argmax()), heat.shape[1])
        print(f"{path}: predicted {trained.classes[p]} ({score} {probs[p]:.3f}); map for {trained.classes[t]}, "
              f"strongest at row {row}, column {col}")
        titles.append(f"{Path(path).name}: predicted {trained.classes[p]} ({probs[p]:.2f})")
        labels.append(f"{args.method} for {trained.classes[t]}" + ("" if heat.any() else " (zero everywhere)"))
    where = _run_name(args)
    if "gradcam" in args.method:
        layer = args.layer or default_layer(trained.model)
        where += f", layer {layer}"
        if not maps.any(axis=(1, 2)).all():
            print(f"note: a map that is zero everywhere means no channel of {layer} holds positive evidence for "
                  "the class; try an earlier conv layer with --layer (for CapsNet: conv1, since the capsule "
                  "layer's channels are vector components, not features)")
    attribution_figure(images.numpy(), maps, titles, labels, f"{where}: {DESCRIPTIONS[args.method]}",
                       args.method in SIGNED, out)
    return maps


def _top_patches(args, trained, out):
    from cnnlab.data import load_dataset
    from cnnlab.inspect import top_patches
    from cnnlab.inspect.figures import patches_figure

    config = trained.info["config"]
    name = args.dataset or config["dataset"]
    data = load_dataset(name, data_root=args.data_root or config.get("data_root"),
                        image_size=config.get("image_size"))
    if tuple(data.shape) != tuple(trained.input_shape):
        raise CnnlabError(f"{name} images are {'x'.join(map(str, data.shape))} but the model takes "
                          f"{'x'.join(map(str, trained.input_shape))}; use the data set it was trained on")
    images = data.test.images[:args.limit]
    top = top_patches(trained, images, args.layer, channels=args.channels or 8)
    print(f"{top.layer}: searched the first {len(images)} {name} test images; {top.receptive_field}")
    for channel, values, index in zip(top.channels, top.value, top.index):
        print(f"channel {channel}: strongest {values[0]:.3g} (image #{index[0]}), 9th {values[-1]:.3g}")
    patches_figure(top, f"{_run_name(args)}: the {top.index.shape[1]} {name} test patches that excite each "
                        f"channel of {top.layer} most\n({top.receptive_field})", out)
    return top.scores


def _maximize(args, trained, out):
    from cnnlab.inspect import maximize
    from cnnlab.inspect.figures import maximize_figure

    result = maximize(trained, args.layer, args.channel, args.target, steps=args.steps or 200)
    gain = f" ({result.final_value / result.start_value:.1f}x)" if result.start_value > 0 else ""
    print(f"{result.objective}: {result.start_value:.3g} on the starting noise -> {result.final_value:.3g} after "
          f"{len(result.history)} steps{gain}")
    maximize_figure(result, f"{_run_name(args)}: the input that maximizes the {result.objective}\n(jitter and blur "
                            "keep it from becoming adversarial noise)", out)
    return result.image


def _deepdream(args, trained, out):
    from cnnlab.inspect import activations, deepdream
    from cnnlab.inspect.figures import deepdream_figure
    from cnnlab.inspect.layers import resolve_layer

    images = _read_images(args.images, trained)
    name, _ = resolve_layer(trained.model, args.layer)
    dreamed = deepdream(trained, images, name, octaves=args.octaves, steps=args.steps or 10)
    before, after = ((activations(trained, x, name) ** 2).mean() for x in (images, dreamed))
    print(f"{name}: mean squared activation {before:.3g} -> {after:.3g} ({after / before:.1f}x)")
    deepdream_figure(images.numpy(), dreamed, [Path(p).name for p in args.images],
                     f"{_run_name(args)}: deep dream on {name}, {args.octaves} octaves", out)
    return dreamed


def _capsule_dims(args, trained, out):
    from cnnlab.inspect import capsule_dimensions
    from cnnlab.inspect.capsules import STEPS
    from cnnlab.inspect.figures import capsule_dims_figure

    images = _read_images(args.images[:1], trained)
    grid = capsule_dimensions(trained, images[0])
    predicted = trained.classes[int(trained.probabilities(images).argmax())]
    print(f"{args.images[0]}: capsule of {predicted}, {grid.shape[0]} dimensions x {grid.shape[1]} nudges")
    capsule_dims_figure(grid, STEPS.tolist(), f"{_run_name(args)}: what each dimension of the {predicted} capsule "
                                              f"encodes ({Path(args.images[0]).name})", out)
    return grid
