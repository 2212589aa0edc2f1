"""`cnnlab filter`, `kernels`, `spectrum`, `conv-demo`, `samples`: filters and frequency as pictures.

A thin shell over `cnnlab.filters`. Only `conv-demo` imports torch; the rest start fast. The option names
below repeat the API's (border modes, display modes), so `--help` can list them without importing numpy;
a test checks that the two lists agree.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.cli.base import add_command, default_name, output_path, save_array
from cnnlab.errors import CnnlabError

BORDER_NAMES = ("reflect-101", "reflect", "replicate", "constant", "wrap")
DISPLAY_NAMES = ("auto", "abs", "clip", "signed")
KEEP_NAMES = ("low", "high")
IMAGE_HELP = "an image file (PNG, JPEG, ...) or a drawn sample: sample:city, sample:stripes, ... (`cnnlab samples`)"
CORRELATION_NOTE = (
    "filter2D computes a correlation: the kernel is laid on the image as written, not flipped\n"
    "as in the textbook convolution (nn.Conv2d does the same)."
)


def _filter(args) -> None:
    import numpy as np

    from cnnlab.filters import apply_kernel, blur, image_stem, kernel_label, load_picture, parse_kernel
    from cnnlab.filters.display import display_mode, scale_for_display, to_uint8
    from cnnlab.images import write_png

    kernels = [(kernel_label(text, kernel), kernel) for text in args.kernel for kernel in [parse_kernel(text)]]
    name = default_name(
        image_stem(args.image), *(label for label, _ in kernels), args.blur_first and "blurred", args.color and "color"
    )
    out = output_path(args.out, f"{name}.png", ".png", "--out")
    array_path = output_path(args.save_array, "", ".npy", "--save-array") if args.save_array else None
    image = load_picture(args.image, color=args.color)
    source = blur(image, args.border) if args.blur_first else image
    outputs = [(label, kernel, apply_kernel(source, kernel, args.border)) for label, kernel in kernels]
    for label, kernel, result in outputs:
        print(f"{label}: {kernel.shape[0]}x{kernel.shape[1]} kernel, response {result.min():.4g} .. {result.max():.4g}")
    if array_path:
        results = [result for _, _, result in outputs]
        stacked = results[0] if len(results) == 1 else np.stack(results)
        save_array(array_path, stacked)
        print(f"wrote {array_path} (float32, shape {stacked.shape})")
    if len(outputs) == 1 and not args.figure:  # just the picture: no matplotlib, so it starts in a blink
        ((label, kernel, result),) = outputs
        mode = display_mode(kernel, args.display)
        _, low, high, caption = scale_for_display(result, mode)
        write_png(out, to_uint8(result, mode))
        print(f"wrote {out}: {label} {caption}, {low:.4g} is black, {high:.4g} white")
        return
    from cnnlab.plots import filter_figure, save

    save(filter_figure(image, outputs, args.display, blurred=source if args.blur_first else None), out, tight=False)
    print(f"wrote {out}")


def _kernels(args) -> None:
    from cnnlab.filters import KERNELS, SAMPLES, format_matrix

    print(CORRELATION_NOTE)
    for name, kernel in KERNELS.items():
        height, width = kernel.matrix.shape
        print(f"\n{name}  ({height}x{width})  {kernel.description}")
        print("    " + format_matrix(kernel.matrix).replace("\n", "\n    "))
    print('\nYour own: --kernel "[[0,-1,0],[-1,4,-1],[0,-1,0]]", or a .json / text file with one row per line.')
    print(f"Sample images: {', '.join('sample:' + name for name in SAMPLES)}")


def _spectrum(args) -> None:
    if (args.image is None) == (not args.kernel):
        raise CnnlabError("give an IMAGE to see its spectrum, or --kernel K to see a kernel's frequency response")
    if args.kernel:
        if args.keep or args.radius is not None:
            raise CnnlabError("--keep and --radius filter an IMAGE; a kernel's response needs neither")
        _kernel_responses(args)
        return
    if args.radius is not None and args.keep is None:
        raise CnnlabError("--radius needs --keep low or --keep high")
    from cnnlab.filters import frequency_filter, frequency_mask, image_stem, load_picture, spectrum, strongest_frequency
    from cnnlab.plots import save, spectrum_figure

    name = default_name(
        image_stem(args.image),
        "spectrum",
        args.keep,
        args.keep and f"r{20.0 if args.radius is None else args.radius:g}",
    )
    out = output_path(args.out, f"{name}.png", ".png", "--out")
    image = load_picture(args.image)
    u, v = strongest_frequency(image)
    print(
        f"strongest frequency besides the mean: +/-({u}, {v}) cycles per image (across, down) "
        f"in the {image.shape[1]}x{image.shape[0]} image"
    )
    if args.keep is None:
        figure = spectrum_figure(image, spectrum(image), (u, v))
    else:
        radius = 20.0 if args.radius is None else args.radius
        filtered = frequency_filter(image, args.keep, radius)
        print(f"kept {args.keep} frequencies, radius {radius:g} cycles per image")
        figure = spectrum_figure(
            image, spectrum(image), (u, v), frequency_mask(image.shape, args.keep, radius), filtered, args.keep, radius
        )
    save(figure, out, tight=False)
    print(f"wrote {out}")


def _kernel_responses(args) -> None:
    from cnnlab.filters import kernel_label, kernel_response, parse_kernel
    from cnnlab.plots import response_figure, save

    kernels = [(kernel_label(text, kernel), kernel) for text in args.kernel for kernel in [parse_kernel(text)]]
    out = output_path(args.out, default_name(*(label for label, _ in kernels), "response") + ".png", ".png", "--out")
    responses = []
    for label, kernel in kernels:
        response = kernel_response(kernel, args.size)
        centre = response[args.size // 2, args.size // 2]
        print(f"{label}: gain {centre:.3g} on flat areas, at most {response.max():.3g}")
        responses.append((label, kernel, response))
    save(response_figure(responses), out, tight=False)
    print(f"wrote {out}")


def _conv_demo(args) -> None:
    import json

    from cnnlab.filters import LESSON_FILTERS, check_filters, conv_demo, explain_sizes, image_stem, load_picture
    from cnnlab.plots import conv_demo_figure, save

    name = default_name(
        image_stem(args.image),
        "conv-demo",
        args.filters and Path(args.filters).stem,
        args.stride != 1 and f"s{args.stride}",
        args.padding and f"p{args.padding}",
    )
    out = output_path(args.out, f"{name}.png", ".png", "--out")
    filters = LESSON_FILTERS
    if args.filters:
        try:
            filters = check_filters(json.loads(Path(args.filters).read_text()))
        except OSError as error:
            raise CnnlabError(f"cannot read filters file {args.filters}: {error.strerror}") from None
        except ValueError as error:  # bad JSON, or bytes that are not text
            raise CnnlabError(
                f"filters file {args.filters} is not valid JSON ({error}); write a list of 2-D "
                "kernels like [[[-1,1],[-1,1]], [[1,1],[-1,-1]]]"
            ) from None
    image = load_picture(args.image)
    result = conv_demo(image, filters, args.stride, args.padding)
    explanation = explain_sizes(image.shape, result["filters"].shape[1:], args.stride, args.padding)
    count, rows, cols = result["filters"].shape
    print(f"{count} filter(s) of {rows}x{cols} on a {image.shape[1]}x{image.shape[0]} image\n{explanation}")
    print(f"after 2x2 max-pooling: {result['pooled'].shape[2]}x{result['pooled'].shape[1]}")
    save(conv_demo_figure(result, explanation), out, tight=False)
    print(f"wrote {out}")


def _samples(args) -> None:
    from cnnlab.filters import SAMPLES, sample_image
    from cnnlab.filters.samples import describe
    from cnnlab.images import write_png

    for name in SAMPLES:
        image = sample_image(name)
        line = f"sample:{name:<13} {image.shape[1]}x{image.shape[0]}  {describe(name)}"
        if args.save:
            path = Path(args.save) / f"{name}.png"
            write_png(path, image)
            line += f"  -> {path}"
        print(line)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "filter",
        "filter an image with kernels, through OpenCV's filter2D",
        example="""
            cnnlab filter sample:city --kernel sobel-x
            cnnlab filter sample:city --kernel sobel-x --kernel sobel-y --kernel laplacian
            cnnlab filter photo.jpg --kernel "[[0,-1,0],[-1,4,-1],[0,-1,0]]" --blur-first --figure
            cnnlab filter sample:city --color --kernel emboss --save-array emboss.npy
        """,
        handler=_filter,
        description="""
            Filter a picture (grayscale, or each colour channel with --color). One kernel writes the filtered
            picture; several kernels (or --figure) draw input and results side by side, one titled panel per
            kernel with a colour bar and the kernel's weights.

            filter2D computes a correlation: the kernel is laid on the image as written, not flipped as in
            the textbook convolution (nn.Conv2d does the same). Kernels need odd sizes, so that each
            result has a centre pixel to sit under.

            By default (--display auto) zero-sum kernels (edge detectors) are shown as |response|, the
            others clipped to 0..255; the figure, or the printed line, says which.
        """,
    )
    parser.add_argument("image", help=IMAGE_HELP)
    parser.add_argument(
        "--kernel",
        "-k",
        action="append",
        required=True,
        metavar="K",
        help='a name from `cnnlab kernels`, an inline matrix "[[1,0,-1],[2,0,-2],[1,0,-1]]", '
        "or a .json / text file; repeat for a comparison",
    )
    parser.add_argument("--color", action="store_true", help="filter each colour channel instead of grayscale")
    parser.add_argument(
        "--blur-first",
        action="store_true",
        help="smooth with the 5x5 gaussian before filtering: fewer edges from noise and texture",
    )
    parser.add_argument(
        "--border",
        choices=BORDER_NAMES,
        default="reflect-101",
        help="how pixels beyond the edge are made up (default: %(default)s, OpenCV's)",
    )
    parser.add_argument(
        "--display",
        choices=DISPLAY_NAMES,
        default="auto",
        help="how results are scaled to black..white (default: %(default)s)",
    )
    parser.add_argument(
        "--figure",
        action="store_true",
        help="with one kernel, draw the figure too (input, result, colour bar, weights)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE.png",
        help="output file (default: named after the image and the kernels, e.g. city-sobel-x.png)",
    )
    parser.add_argument(
        "--save-array",
        metavar="FILE.npy",
        help="also save the raw float32 results; several kernels are stacked on a first axis",
    )

    add_command(
        subparsers,
        "kernels",
        "list the named kernels: weights and what they do",
        example="cnnlab kernels",
        handler=_kernels,
        description=f"List the kernel library that --kernel accepts by name.\n\n{CORRELATION_NOTE}",
    )

    parser = add_command(
        subparsers,
        "spectrum",
        "an image's Fourier spectrum, or a kernel's frequency response",
        example="""
            cnnlab spectrum sample:stripes
            cnnlab spectrum sample:city --keep low --radius 20
            cnnlab spectrum --kernel sobel-x --kernel box
        """,
        handler=_spectrum,
        description="""
            Draw an image beside the log-magnitude of its centred 2-D Fourier transform: the middle is the
            mean brightness, points further out are finer patterns. --keep low|high zeroes the frequencies
            outside|inside a circle and shows the image that is left. With --kernel, draw the kernel's
            frequency response instead: a blur passes the middle (low-pass), an edge filter the outside.
        """,
    )
    parser.add_argument("image", nargs="?", help=IMAGE_HELP)
    parser.add_argument("--keep", choices=KEEP_NAMES, help="filter in the frequency domain")
    parser.add_argument(
        "--radius", type=float, metavar="R", help="radius of the kept/removed circle, in cycles per image (default: 20)"
    )
    parser.add_argument(
        "--kernel",
        "-k",
        action="append",
        metavar="K",
        help="show this kernel's frequency response instead (repeat to compare)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=64,
        metavar="N",
        help="zero-pad kernels to NxN before the transform (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE.png",
        help="figure file (default: IMAGENAME-spectrum[-KEEP-rRADIUS].png, or KERNELS-response.png)",
    )

    parser = add_command(
        subparsers,
        "conv-demo",
        "a conv layer, its ReLU and max-pooling applied to a picture",
        example="""
            cnnlab conv-demo sample:city
            cnnlab conv-demo sample:city --stride 2 --padding 1
            echo '[[[-1,0,1],[-2,0,2],[-1,0,1]], [[-1,-2,-1],[0,0,0],[1,2,1]]]' > sobel.json
            cnnlab conv-demo sample:shapes --filters sobel.json
        """,
        handler=_conv_demo,
        description="""
            Load the lesson's four 4x4 edge filters (or your own) into nn.Conv2d(1, N, bias=False) and draw the
            filters, the convolution outputs, the outputs after ReLU and after 2x2 max-pooling. The output
            size follows (W - F + 2P) / S + 1; try --stride and --padding. Imports torch.
        """,
    )
    parser.add_argument("image", help=IMAGE_HELP)
    parser.add_argument(
        "--filters", metavar="FILE.json", help="a JSON list of 2-D kernels of equal size (any size, even ones)"
    )
    parser.add_argument("--stride", type=int, default=1, help="filter step in pixels (default: %(default)s)")
    parser.add_argument("--padding", type=int, default=0, help="zeros added on each side (default: %(default)s)")
    parser.add_argument(
        "--out", metavar="FILE.png", help="figure file (default: IMAGENAME-conv-demo[-sSTRIDE][-pPADDING].png)"
    )

    parser = add_command(
        subparsers,
        "samples",
        "list the pictures drawn by code (use them as sample:NAME)",
        example="""
            cnnlab samples
            cnnlab samples --save samples/
        """,
        handler=_samples,
    )
    parser.add_argument("--save", metavar="DIR", help="also write each sample as DIR/NAME.png")
