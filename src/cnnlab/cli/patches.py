"""`cnnlab patches`: Zeiler & Fergus's figure across depth, for a run or a pretrained network (torch is imported
inside the handler only)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.cli.base import add_command, add_run_weights, output_path
from cnnlab.cli.pretrained import add_model_option, load_predictor
from cnnlab.cli.user_code import add_trust
from cnnlab.data import DATASETS
from cnnlab.errors import CnnlabError


def register(sub) -> None:
    p = add_command(
        sub,
        "patches",
        "the image patches that excite a network most, layer after layer: edges, textures, parts",
        """
        cnnlab patches --model resnet18 --weights imagenet --data-root photos
        cnnlab patches runs/lesson-cnn-cifar10
        cnnlab patches runs/lesson-cnn-cifar10 --layers conv1,conv3 --channels 6""",
        _patches,
        description="""
        For several layers from shallow to deep (by default the last conv layer at each feature-map size), a few
        channels each, the patches of the searched images that excite each channel most: one block of rows per
        layer (Zeiler & Fergus 2014, figure 2). A run searches its data set's test images; a network with published
        weights (--model NAME --weights imagenet) searches the photos under --data-root, sub-folders included.""",
    )
    p.add_argument("run", nargs="?", help="run folder made by `cnnlab train` (none with --model)")
    add_trust(p)
    add_run_weights(p)
    add_model_option(p)
    p.add_argument("--layers", metavar="A,B,...", help="the layers, shallow to deep (default: one per map size)")
    p.add_argument("--channels", type=int, default=4, metavar="N", help="channels per layer (default: %(default)s)")
    p.add_argument("--patches", type=int, default=9, metavar="N", help="patches per channel (default: %(default)s)")
    p.add_argument("--dataset", choices=DATASETS, help="a run: data set to search (default: its own)")
    p.add_argument("--data-root", help="a run: where its data set is; --model: the folder of photos to search")
    p.add_argument("--limit", type=int, default=2000, metavar="N", help="search the first N images (default: 2000)")
    p.add_argument("--out", help="PNG to write (default: RUN/explanations/patches-by-depth.png)")


def _patches(args) -> int:
    from cnnlab.errors import whole
    from cnnlab.inspect.patches import images_to_search, top_patches_by_depth
    from cnnlab.plots import depth_patches_figure, save

    whole(args.channels, "channels", 1, 1024)
    whole(args.patches, "patches", 1, 100)
    whole(args.limit, "limit", 1, 10**9)
    if args.model and args.run:
        raise CnnlabError(f"patches --model {args.model} takes no run folder; the photos go in --data-root")
    folder = Path("explanations") / args.model if args.model else Path(args.run or ".") / "explanations"
    out = output_path(args.out, str(folder / "patches-by-depth.png"), ".png", "--out")
    predictor = load_predictor(args)
    images, searched, files = images_to_search(predictor, args.dataset, args.data_root, args.limit)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    tops = top_patches_by_depth(predictor, images, layers, args.channels, args.patches)
    titles = []
    for top in tops:
        height, width = (top.box[..., 2] - top.box[..., 0]).max(), (top.box[..., 3] - top.box[..., 1]).max()
        titles.append(f"{top.layer}: patches up to {height}x{width} pixels")
        print(f"{titles[-1]} ({top.receptive_field})")
        for channel, index, value in zip(top.channels, top.index, top.value):
            where = files[index[0]] if files else f"image #{index[0]}"
            print(f"  channel {channel}: strongest {value[0]:.3g} in {where}")
    heading = (
        f"{predictor.name}: the patches of {searched} that excite each channel most, shallow to deep\n"
        "(each block a layer, each row a channel; the value and the image's number above each patch)"
    )
    print(f"wrote {save(depth_patches_figure(tops, titles, heading), out)}")
    return 0
