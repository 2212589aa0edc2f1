"""Filters, frequency and the conv-demo: exact values worked out by hand, and the CLI's outputs and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cnnlab.cli import filters as filters_cli
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.filters import (
    BORDERS,
    DISPLAYS,
    KERNELS,
    LESSON_FILTERS,
    SAMPLES,
    apply_kernel,
    conv_demo,
    explain_sizes,
    format_matrix,
    frequency_filter,
    frequency_mask,
    kernel_label,
    kernel_response,
    load_picture,
    output_size,
    parse_kernel,
    spectrum,
    strongest_frequency,
    to_uint8,
)
from cnnlab.filters.samples import stripes
from cnnlab.filters.spectrum import KEEP
from cnnlab.images import read_array, write_png

# A 5x5 image whose 3x3 neighbourhoods are easy to sum by hand.
HAND = np.array([[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 7, 8, 9, 0], [0, 0, 0, 0, 0]], dtype=np.float32)


# --- exact values ------------------------------------------------------------------------------------------------


def test_sobel_and_laplacian_equal_hand_computed_values():
    sobel_x = apply_kernel(HAND, KERNELS["sobel-x"].matrix)
    sobel_y = apply_kernel(HAND, KERNELS["sobel-y"].matrix)
    laplacian = apply_kernel(HAND, KERNELS["laplacian"].matrix)
    # centre (2, 2): sobel-x = (-1 + 3) + (-8 + 12) + (-7 + 9) = 8; sobel-y = -(1 + 4 + 3) + (7 + 16 + 9) = 24
    assert sobel_x[2, 2] == 8 and sobel_y[2, 2] == 24
    # (1, 1) sees [[0,0,0],[0,1,2],[0,4,5]]: sobel-x = 2*2 + 5 = 9, sobel-y = 2*4 + 5 = 13
    assert sobel_x[1, 1] == 9 and sobel_y[1, 1] == 13
    # laplacian = up + down + left + right - 4 * centre
    assert laplacian[2, 2] == 2 + 8 + 4 + 6 - 20 == 0
    assert laplacian[1, 1] == 0 + 4 + 0 + 2 - 4 == 2
    assert laplacian[2, 1] == 1 + 7 + 0 + 5 - 16 == -3


def test_filter2d_correlates_it_does_not_flip_the_kernel():
    flipped = np.flip(KERNELS["sobel-x"].matrix)  # textbook convolution = correlation with this
    assert apply_kernel(HAND, flipped)[2, 2] == -8  # the opposite sign of the correlation's 8


def test_conv2d_equals_filter2d_on_the_valid_region():
    import torch

    rng = np.random.default_rng(0)
    image = rng.random((20, 24)).astype(np.float32)
    for kernel in (KERNELS["sobel-x"].matrix, rng.normal(size=(5, 3))):
        conv = torch.nn.Conv2d(1, 1, kernel.shape, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor(kernel, dtype=torch.float32)[None, None])
            expected = conv(torch.from_numpy(image)[None, None])[0, 0].numpy()
        half_h, half_w = kernel.shape[0] // 2, kernel.shape[1] // 2
        valid = apply_kernel(image, kernel)[half_h : image.shape[0] - half_h, half_w : image.shape[1] - half_w]
        assert valid.shape == expected.shape
        np.testing.assert_allclose(valid, expected, atol=1e-5)
        np.testing.assert_allclose(conv_demo(image, [kernel])["conv"][0], expected, atol=1e-5)


@pytest.mark.parametrize(
    "border, left, right",
    [("constant", 0, 0), ("replicate", 1, 3), ("reflect", 1, 3), ("reflect-101", 2, 2), ("wrap", 3, 1)],
)
def test_border_modes_make_up_the_missing_pixel(border, left, right):
    row = np.array([[1, 2, 3]], np.float32)
    assert apply_kernel(row, [[1, 0, 0]], border)[0, 0] == left  # reads the pixel left of the first
    assert apply_kernel(row, [[0, 0, 1]], border)[0, 2] == right  # reads the pixel right of the last


def test_colour_images_are_filtered_channel_by_channel():
    image = load_picture("sample:city", color=True)
    result = apply_kernel(image, KERNELS["sobel-y"].matrix)
    assert result.shape == image.shape
    np.testing.assert_array_equal(result[..., 2], apply_kernel(image[..., 2], KERNELS["sobel-y"].matrix))


# --- kernels -----------------------------------------------------------------------------------------------------


def test_kernels_from_names_inline_matrices_and_files(tmp_path):
    np.testing.assert_array_equal(parse_kernel("high-pass"), [[0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    assert parse_kernel(" [[0.5, 0.25, -1.5]] ").tolist() == [[0.5, 0.25, -1.5]]
    assert parse_kernel(str(np.ones((5, 5)).tolist())).shape == (5, 5)
    assert parse_kernel("[[1,2,3,4,5],[6,7,8,9,10],[1,1,1,1,1]]").shape == (3, 5)
    (tmp_path / "k.json").write_text("[[1, 0, -1], [2, 0, -2], [1, 0, -1]]")
    (tmp_path / "k.txt").write_text("# my edge kernel\n1, 0, -1\n2 0 -2\n\n1 ,0, -1  # last row\n")
    expected = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    for name in ("k.json", "k.txt"):
        assert parse_kernel(str(tmp_path / name)).tolist() == expected
        assert kernel_label(str(tmp_path / name), np.array(expected)) == name
    assert kernel_label("[[1]]", np.ones((1, 1))) == "custom 1x1"
    assert format_matrix(KERNELS["box"].matrix) == "1/9 *\n1 1 1\n1 1 1\n1 1 1"
    assert format_matrix(np.array([[-0.0, 0.3333]])) == "    0 0.333"  # no "-0", no fraction


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2, 3]", "2-D"),
        ("[[[1]]]", "2-D"),
        ("[[1, 2], [3]]", "equal length"),
        ('[["a", "b"]]', "numbers"),
        ("[]", "empty"),
        ("[[]]", "empty"),
        ("[[NaN, 1]]", "NaN"),
        ("[[1, 2", "not a valid matrix"),
        ("sobel", "unknown kernel 'sobel'"),
    ],
)
def test_bad_kernels_are_refused_with_a_reason(text, message):
    with pytest.raises(CnnlabError, match=message):
        parse_kernel(text)


def test_even_kernels_are_refused_for_filtering():
    with pytest.raises(CnnlabError, match="odd sizes"):
        apply_kernel(HAND, np.ones((3, 4)))


# --- frequency ---------------------------------------------------------------------------------------------------


def test_spectrum_of_vertical_stripes_peaks_at_width_over_period():
    image = cv2.cvtColor(stripes(height=128, width=256, period=16), cv2.COLOR_RGB2GRAY)
    magnitude = spectrum(image)
    magnitude[64, 128] = 0  # the mean, at the centre
    peaks = np.argsort(magnitude, axis=None)[-2:]
    assert {np.unravel_index(i, magnitude.shape) for i in peaks} == {(64, 128 - 16), (64, 128 + 16)}
    assert strongest_frequency(image) == (16, 0)  # 256 / 16 cycles across, none down


def test_low_pass_blurs_and_high_pass_keeps_the_rest():
    image = load_picture("sample:city").astype(np.float64)
    low, high = frequency_filter(image, "low", 20), frequency_filter(image, "high", 20)
    outside = frequency_mask(image.shape, "high", 20)

    def high_energy(picture):
        return float((np.abs(np.fft.fftshift(np.fft.fft2(picture))) ** 2 * outside).sum())

    assert high_energy(low) < 1e-9 * high_energy(image)
    assert (
        np.abs(apply_kernel(low, KERNELS["laplacian"].matrix)).mean()
        < 0.5 * np.abs(apply_kernel(image, KERNELS["laplacian"].matrix)).mean()
    )
    np.testing.assert_allclose(low + high, image, atol=1e-8)  # the two masks split the spectrum
    assert abs(high.mean()) < 1e-8  # the mean is a low frequency


def test_kernel_response_shows_low_pass_and_high_pass():
    centre = 32
    box, sobel = kernel_response(KERNELS["box"].matrix, 64), kernel_response(KERNELS["sobel-x"].matrix, 64)
    high_pass, gaussian = kernel_response(KERNELS["high-pass"].matrix), kernel_response(KERNELS["gaussian"].matrix)
    assert box[centre, centre] == pytest.approx(1) == box.max()
    assert gaussian[centre, centre] == pytest.approx(1) and gaussian[0, 0] == pytest.approx(0, abs=1e-12)
    assert high_pass[centre, centre] == pytest.approx(0, abs=1e-12) and high_pass[0, 0] == pytest.approx(8)
    assert np.abs(sobel[:, centre]).max() < 1e-12  # no horizontal change, no response: a vertical line
    assert sobel.max() == pytest.approx(8)
    with pytest.raises(CnnlabError, match="larger"):
        kernel_response(np.ones((9, 9)), 8)


# --- conv-demo ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride, padding, height, width", [(1, 0, 27, 38), (2, 1, 15, 20), (3, 2, 11, 14)])
def test_conv_demo_output_size_follows_the_formula(stride, padding, height, width):
    image = np.random.default_rng(1).integers(0, 256, (30, 41)).astype(np.uint8)
    result = conv_demo(image, LESSON_FILTERS, stride, padding)
    assert (output_size(30, 4, stride, padding), output_size(41, 4, stride, padding)) == (height, width)
    assert result["conv"].shape == result["relu"].shape == (4, height, width)
    assert result["pooled"].shape == (4, height // 2, width // 2)
    assert f"= {width}" in explain_sizes(image.shape, (4, 4), stride, padding)


def test_conv_demo_relu_and_pooling_do_what_the_lesson_says():
    result = conv_demo(load_picture("sample:shapes"))
    conv, relu, pooled = result["conv"], result["relu"], result["pooled"]
    np.testing.assert_array_equal(conv[1], -conv[0])  # filter 2 = -filter 1
    np.testing.assert_array_equal(relu, np.maximum(conv, 0))
    height, width = pooled.shape[1:]
    blocks = relu[:, : 2 * height, : 2 * width].reshape(4, height, 2, width, 2)
    np.testing.assert_array_equal(pooled, blocks.max(axis=(2, 4)))


@pytest.mark.parametrize(
    "filters, stride, message",
    [([np.ones((3, 3)), np.ones((2, 2))], 1, "same size"), ([], 1, "non-empty"), (LESSON_FILTERS, 40, "too small")],
)
def test_conv_demo_refuses_bad_filters_and_strides(filters, stride, message):
    with pytest.raises(CnnlabError, match=message):
        conv_demo(np.zeros((32, 32), np.uint8), filters, stride)


# --- samples and images ------------------------------------------------------------------------------------------


def test_samples_are_drawn_the_same_every_time():
    for name in SAMPLES:
        image = load_picture(f"sample:{name}", color=True)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.std() > 20, name
        np.testing.assert_array_equal(image, load_picture(f"sample:{name}", color=True))


def _red_pixels(rgb: np.ndarray) -> int:
    red, green, blue = np.moveaxis(rgb.astype(int), -1, 0)
    return int(((red > 150) & (green < 80) & (blue < 80)).sum())


def test_images_are_rgb_and_png_files_keep_their_colours(tmp_path):
    city = load_picture("sample:city", color=True)
    assert tuple(city[200, 100]) == (200, 40, 40)  # the car is red: RGB order
    write_png(tmp_path / "city.png", city)
    from PIL import Image

    with Image.open(tmp_path / "city.png") as written:
        np.testing.assert_array_equal(np.asarray(written), city)  # another reader sees the same colours
    np.testing.assert_array_equal(read_array(tmp_path / "city.png", color=True), city)
    grey_file, grey_sample = load_picture(str(tmp_path / "city.png")), load_picture("sample:city")
    np.testing.assert_allclose(grey_file, grey_sample, atol=1)  # libpng rounds its own grey a little


def test_figures_are_returned_and_show_colours_as_they_are(tmp_path):
    from matplotlib.figure import Figure

    from cnnlab.plots import filter_figure, save

    city = load_picture("sample:city", color=True)
    figure = filter_figure(city, [("box", KERNELS["box"].matrix, apply_kernel(city, KERNELS["box"].matrix))], "auto")
    assert isinstance(figure, Figure)
    path = save(figure, tmp_path / "figure.png", tight=False)
    drawn = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert drawn.shape[:2] == (round(figure.get_figheight() * 100), round(figure.get_figwidth() * 100))
    assert _red_pixels(drawn) > 1.5 * _red_pixels(city)  # the red car in both panels


# --- the command line --------------------------------------------------------------------------------------------


def test_cli_option_lists_match_the_api():
    assert filters_cli.BORDER_NAMES == tuple(BORDERS)
    assert filters_cli.DISPLAY_NAMES == DISPLAYS
    assert filters_cli.KEEP_NAMES == KEEP


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and cv2.imread(str(path)) is not None


def test_filter_writes_a_figure_and_the_raw_arrays(tmp_path, capsys):
    assert (
        main(
            [
                "filter",
                "sample:shapes",
                "-k",
                "sobel-x",
                "-k",
                "[[0,0,0],[0,1,0],[0,0,0]]",
                "--save-array",
                str(tmp_path / "raw.npy"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote shapes-sobel-x-custom-3x3.png" in out and "custom 3x3" in out
    assert _is_png(Path("shapes-sobel-x-custom-3x3.png"))
    raw = np.load(tmp_path / "raw.npy")
    image = load_picture("sample:shapes")
    assert raw.shape == (2, 256, 256) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw[0], apply_kernel(image, KERNELS["sobel-x"].matrix))
    np.testing.assert_array_equal(raw[1], image)  # the identity kernel
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_one_kernel_writes_the_filtered_picture_several_or_figure_a_figure(capsys):
    assert main(["filter", "sample:city", "-k", "sobel-x"]) == 0
    assert "|response|, 0 is black, 828 white" in capsys.readouterr().out
    picture = cv2.imread("city-sobel-x.png", cv2.IMREAD_UNCHANGED)
    expected = to_uint8(apply_kernel(load_picture("sample:city"), KERNELS["sobel-x"].matrix), "abs")
    np.testing.assert_array_equal(picture, expected)
    assert expected.max() == 255 and expected.min() == 0
    assert main(["filter", "sample:city", "-k", "box", "--figure", "--out", "figure.png"]) == 0
    figure = cv2.imread("figure.png")
    assert figure.shape[1] > 2 * 384 and figure.shape[2] == 3  # input and result side by side


def test_display_modes_scale_as_documented():
    result = np.array([[-100.0, 0.0, 50.0, 300.0]])
    assert to_uint8(result, "abs").tolist() == [[85, 0, 42, 255]]  # |r| / 300 * 255
    assert to_uint8(result, "clip").tolist() == [[0, 0, 50, 255]]
    assert to_uint8(result, "signed").tolist() == [[85, 128, 149, 255]]  # (r + 300) / 600 * 255


def test_filter_colour_blur_first_and_border_options(tmp_path):
    assert (
        main(
            [
                "filter",
                "sample:city",
                "--color",
                "--blur-first",
                "--border",
                "wrap",
                "-k",
                "emboss",
                "--display",
                "signed",
                "--out",
                str(tmp_path / "c.png"),
                "--save-array",
                str(tmp_path / "c.npy"),
            ]
        )
        == 0
    )
    assert _is_png(tmp_path / "c.png")
    image = load_picture("sample:city", color=True)
    expected = apply_kernel(apply_kernel(image, KERNELS["gaussian"].matrix, "wrap"), KERNELS["emboss"].matrix, "wrap")
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), expected, atol=1e-3)


def test_spectrum_conv_demo_and_listings(tmp_path, capsys):
    assert main(["spectrum", "sample:stripes"]) == 0
    assert "+/-(16, 0)" in capsys.readouterr().out
    assert main(["spectrum", "sample:city", "--keep", "high", "--radius", "10", "--out", "hi.png"]) == 0
    assert main(["spectrum", "--kernel", "sobel-x", "--kernel", "box"]) == 0
    assert "sobel-x: gain 0 on flat areas" in capsys.readouterr().out
    assert main(["kernels"]) == 0
    listing = capsys.readouterr().out
    assert "correlation" in listing and all(name in listing for name in KERNELS) and "sample:city" in listing
    assert main(["samples", "--save", "pics"]) == 0
    assert np.array_equal(
        cv2.cvtColor(cv2.imread("pics/city.png"), cv2.COLOR_BGR2RGB), load_picture("sample:city", color=True)
    )
    for png in ("stripes-spectrum.png", "hi.png", "sobel-x-box-response.png"):
        assert _is_png(Path(png)), png
    assert main(["conv-demo", "sample:shapes", "--stride", "2", "--padding", "1"]) == 0
    assert "(256 - 4 + 2*1) / 2 + 1 = 128" in capsys.readouterr().out
    assert _is_png(Path("shapes-conv-demo-s2-p1.png"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["filter", "missing.png", "-k", "box"], "cannot read image missing.png: no such file"),
        (["filter", "garbage.png", "-k", "box"], "cannot read image garbage.png: not an image"),
        (["filter", ".", "-k", "box"], "cannot read image ."),
        (["filter", "sample:nope", "-k", "box"], "unknown sample 'nope'"),
        (["filter", "sample:city", "-k", "[1, 2, 3]"], "2-D matrix"),
        (["filter", "sample:city", "-k", "[[1, 1], [1, 1]]"], "odd sizes"),
        (["filter", "sample:city", "-k", "[[]]"], "kernel is empty"),
        (["filter", "sample:city", "-k", "box", "--out", "x.jpg"], "must end in .png"),
        (["spectrum"], "give an IMAGE"),
        (["spectrum", "sample:city", "--radius", "5"], "--radius needs --keep"),
        (["spectrum", "--kernel", "box", "--keep", "low"], "a kernel's response needs neither"),
        (["spectrum", "--kernel", "[[1, 2], [3]]"], "equal length"),
        (["conv-demo", "sample:city", "--filters", "unequal.json"], "same size"),
        (["conv-demo", "sample:city", "--filters", "missing.json"], "cannot read filters file missing.json"),
        (["conv-demo", "sample:city", "--filters", "garbage.png"], "is not valid JSON"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(args, message, capsys):
    Path("garbage.png").write_bytes(b"this is not a picture")
    Path("unequal.json").write_text("[[[1, 2], [3, 4]], [[1, 2, 3]]]")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and err.count("\n") == 1 and message in err, err
    assert [p.name for p in Path().glob("*.png")] == ["garbage.png"]  # no output written


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "argv",
    [
        ["filter", "sample:city", "-k", "sobel-x"],
        ["spectrum", "sample:city", "--keep", "low"],
        ["spectrum", "--kernel", "box"],
        ["kernels"],
        ["--help"],
    ],
)
def test_filter_and_spectrum_commands_never_import_torch(argv, tmp_path):
    code = (
        "import sys\nfrom cnnlab.cli import main\nassert 'torch' not in sys.modules, 'import'\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = _run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_installed_cnnlab_script_filters_without_torch(tmp_path):
    script = Path(sys.executable).with_name("cnnlab")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), "filter", "sample:city", "-k", "sobel-y"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "cv2" in imported and "torch" not in imported and "matplotlib" not in imported
    assert _is_png(tmp_path / "city-sobel-y.png")


def test_default_names_say_what_made_the_picture_so_nothing_is_overwritten(capsys):
    for kernels in (["-k", "sobel-x"], ["-k", "sobel-y"], ["-k", "sobel-x", "--blur-first"]):
        assert main(["filter", "sample:city", *kernels]) == 0
    for stride in ("1", "2"):
        assert main(["conv-demo", "sample:city", "--stride", stride]) == 0
    written = sorted(p.name for p in Path().glob("*.png"))
    assert written == [
        "city-conv-demo-s2.png",
        "city-conv-demo.png",
        "city-sobel-x-blurred.png",
        "city-sobel-x.png",
        "city-sobel-y.png",
    ]
