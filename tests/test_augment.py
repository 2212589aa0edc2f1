"""Batched augmentation: each operation does exactly what it says, the spec parser, and the speed that is its point."""

import time

import numpy as np
import pytest
import torch

from cnnlab.data.augment import Augment, cutout, parse_augment, preview, rotate, shift
from cnnlab.errors import CnnlabError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=8, c=3, h=12, w=12):
    return torch.randn(n, c, h, w, generator=gen(123))


def test_flip_mirrors_a_random_half_reproducibly():
    x = torch.randn(1000, 1, 4, 5, generator=gen(1))
    out = parse_augment("flip")(x, gen(7))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped | kept).all()  # every sample is either mirrored or untouched
    assert 420 < flipped.sum() < 580  # about half (binomial: sd 16)
    assert torch.equal(parse_augment("flip")(x, gen(7)), out)
    assert not torch.equal(parse_augment("flip")(x, gen(8)), out)


def test_rotation_by_zero_is_the_identity():
    x = images()
    assert torch.allclose(rotate(x, torch.zeros(len(x))), x, atol=1e-6)
    assert torch.allclose(parse_augment("rotate=0.0001")(x, gen()), x, atol=1e-3)


def test_rotation_by_90_degrees_is_rot90():
    x = images(2, 3, 9, 9)
    out = rotate(x, torch.full((2,), 90.0))
    expected = torch.rot90(x, 1, dims=(2, 3))  # counter-clockwise on screen
    assert torch.allclose(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-4)
    assert torch.allclose(rotate(x, torch.full((2,), -90.0)), torch.rot90(x, -1, dims=(2, 3)), atol=1e-4)


def test_rotation_keeps_non_square_images_undistorted():
    x = torch.zeros(1, 1, 20, 40)
    x[0, 0, 10, 20:30] = 1  # a horizontal bar right of the centre
    out = rotate(x, torch.tensor([90.0]))[0, 0]  # -> a vertical bar above the centre
    rows, cols = torch.nonzero(out > 0.5, as_tuple=True)
    assert cols.unique().numel() == 1 and 8 <= rows.numel() <= 11 and rows.max() <= 10


def test_crop_is_an_exact_integer_shift_with_zero_padding():
    x = images(4)
    out = shift(x, torch.tensor([2, -1, 0, 3]), torch.tensor([-3, 0, 1, 3]))
    assert out.shape == x.shape
    expected = torch.zeros_like(x[0])
    expected[:, 2:, :-3] = x[0, :, :-2, 3:]  # moved 2 down, 3 left
    assert torch.equal(out[0], expected)
    assert torch.equal(out[1, :, :-1], x[1, :, 1:]) and (out[1, :, -1] == 0).all()


def test_random_crop_moves_each_sample_by_at_most_the_padding():
    x = torch.rand(64, 1, 10, 10, generator=gen()) + 1  # no zeros inside, so zeros mark the padding
    out = parse_augment("crop=2")(x, gen(3))
    for a, b in zip(x, out):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(shift(a[None], torch.tensor([dy]), torch.tensor([dx]))[0], b)
        ]
        assert len(found) == 1
    assert (out == 0).any() and (out.flatten(1) == 0).sum(1).max() <= 10 * 10 - 8 * 8


def test_cutout_zeros_exactly_one_square():
    x = torch.rand(3, 2, 10, 12) + 1
    out = cutout(x, torch.tensor([0, 3, 6]), torch.tensor([0, 5, 8]), 4)
    assert out[1, :, 3:7, 5:9].eq(0).all() and (out == 0).sum() == 3 * 2 * 16
    random = parse_augment("cutout=5")(x, gen())
    assert ((random == 0).flatten(1).sum(1) == 2 * 25).all()
    assert torch.equal(random[random != 0], x[random != 0])


def test_resized_crop_keeps_the_size_and_zooms_in():
    x = torch.arange(32.0).repeat(2, 3, 32, 1)  # a horizontal ramp
    out = parse_augment("resized-crop=0.25")(x, gen())
    assert out.shape == x.shape
    width = (out[..., -1] - out[..., 0]) / 31  # the ramp's slope is the window's width fraction:
    assert (width <= 1 + 1e-4).all() and (width >= (0.25 * 3 / 4) ** 0.5 - 1e-4).all()  # area >= 1/4, ratio >= 3/4
    assert (width < 0.99).any()


def test_fill_gives_pixels_from_outside_the_image_a_colour():
    x = torch.rand(4, 3, 8, 8) + 1
    aug = parse_augment("crop=3", fill=[-1.0, -2.0, -3.0])
    out = aug(x, gen())
    outside = out < 0
    assert outside.any() and torch.equal(out[outside].unique(), torch.tensor([-3.0, -2.0, -1.0]))
    assert aug.fill == (-1.0, -2.0, -3.0)


def test_channels_last_batches_stay_channels_last():
    x = images().contiguous(memory_format=torch.channels_last)
    out = parse_augment("flip,rotate=10,crop=2,cutout=3")(x, gen())
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert parse_augment("crop=2")(images(), gen()).is_contiguous()


def test_spec_order_presets_and_description():
    aug = parse_augment(" Cifar, cutout=8,rotate ")
    assert aug.spec == "flip,crop=4,cutout=8,rotate=10"  # presets expand in place; rotate takes its default
    assert repr(aug) == "Augment('flip,crop=4,cutout=8,rotate=10')"
    assert parse_augment(aug.spec) == aug
    assert "shift within ±4 px" in aug.describe()
    assert [op.name for op in parse_augment("crop=2,flip").ops] == ["crop", "flip"]
    for spec, expected in [("mnist", "crop=2"), ("lesson", "flip,rotate=10"), ("photos", "flip,resized-crop=0.35")]:
        assert parse_augment(spec).spec == expected


def test_none_is_the_identity():
    x = images()
    for spec in ["", "none", None]:
        aug = parse_augment(spec)
        assert aug == Augment() and not aug and aug(x, gen()) is x
    assert parse_augment("none").describe() == "no augmentation"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("flip,spin=3", "unknown augmentation 'spin=3'"),
        ("rotate=-5", "bad value in augmentation rotate=-5"),
        ("crop=1.5", "crop=1.5 .*PIXELS must be a whole number"),
        ("crop=abc", "bad value in augmentation crop=abc"),
        ("flip=1", "'flip' takes no value"),
        ("cifar,flip", "flip given more than once"),
    ],
)
def test_bad_specs_name_the_culprit_and_the_choices(spec, message):
    with pytest.raises(CnnlabError, match=message):
        parse_augment(spec)


def test_unknown_ops_list_the_valid_ones():
    with pytest.raises(CnnlabError) as e:
        parse_augment("blur")
    for word in [
        "flip",
        "rotate=DEGREES",
        "crop=PIXELS",
        "cutout=",
        "resized-crop=MIN_AREA",
        "cifar (flip,crop=4)",
        "photos",
        "none",
    ]:
        assert word in str(e.value)


def test_cutout_larger_than_the_image_is_an_error():
    with pytest.raises(CnnlabError, match="cutout=16 is larger than the 12x12 images"):
        parse_augment("cutout=16")(images(), gen())


def test_preview_grid():
    x = (torch.rand(3, 3, 8, 10, generator=gen()) * 255).to(torch.uint8)
    grid = preview(x, "flip,crop=2", seed=1, copies=4)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 8 + 2 * 2, 5 * 10 + 4 * 2, 3)
    assert np.array_equal(grid[:8, :10], x[0].permute(1, 2, 0).numpy())  # first column: the originals
    assert (grid[8:10] == 255).all()  # white gaps between rows
    assert np.array_equal(preview(x, "flip,crop=2", seed=1), grid)
    gray = preview(x[:, :1].numpy(), "none", copies=1)
    assert gray.shape == (3 * 8 + 4, 2 * 10 + 2) and np.array_equal(gray[:8, 12:], x[0, 0].numpy())


def test_a_cifar_batch_takes_milliseconds():
    x = torch.randn(512, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    aug, g = parse_augment("flip,rotate=10,crop=4"), gen()
    aug(x, g)
    start = time.perf_counter()
    for _ in range(5):
        aug(x, g)
    assert (time.perf_counter() - start) / 5 < 0.5  # about 15 ms on one core of the 2-core dev machine
