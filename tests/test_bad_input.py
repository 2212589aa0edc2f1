"""Bad input, generated: every number option of every command given values no one should pass, and every field of
a run's record broken in every way. Whatever happens, cnnlab never prints a traceback: it either works, or exits 2
with one line naming the value, and a refused training leaves no run folder behind."""

from __future__ import annotations

import copy
import json

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from cnnlab.cli import build_parser, main

HUGE = "99999999999999999999999"  # past every 64-bit integer
BAD_NUMBERS = ("nan", "inf", "-1", "0", HUGE)

# (command, option, value) pairs that are fine: a zero weight decay, a seed of 0, a top-k above the class count...
TRAINING_ACCEPTS = {
    ("--weight-decay", "0"),
    ("--momentum", "0"),  # plain SGD
    ("--warmup", "0"),  # onecycle's peak from the start
    ("--label-smoothing", "0"),
    ("--dropout", "0"),
    ("--seed", "0"),
    ("--image-size", HUGE),
}  # ignored for MNIST: only image folders are resized
ACCEPTED = {(command, option, value) for command in ("train", "lr-find") for option, value in TRAINING_ACCEPTS} | {
    ("evaluate", "--seed", "0"),
    ("predict", "--top-k", HUGE),
    ("conv-demo", "--padding", "0"),
    ("interpret", "--top", HUGE),
    ("interpret", "--pairs", "0"),
    ("interpret", "--pairs", HUGE),
    ("augment-preview", "--seed", "0"),
    ("lr-find", "--lr", HUGE),
}  # lr-find sweeps its own rates


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny MNIST, a finished mlp run on it, and a digit picture."""
    from conftest import make_mnist

    base = tmp_path_factory.mktemp("bad-input")
    root = make_mnist(base / "data", n_train=200, n_test=50)
    assert (
        main(
            [
                "train",
                "mlp",
                "--data-root",
                str(root),
                "--epochs",
                "1",
                "--batch-size",
                "64",
                "--no-progress",
                "--out",
                str(base / "runs"),
                "--name",
                "run",
            ]
        )
        == 0
    )
    picture = base / "digit.png"
    Image.new("L", (28, 28)).save(picture)
    return root, base / "runs" / "run", picture


def commands(root, run, picture, out) -> dict[str, list[str]]:
    """One working command line per command with number options, to which one bad option is added."""
    return {
        "train": [
            "train",
            "mlp",
            "--data-root",
            root,
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--no-progress",
            "--out",
            out,
        ],
        "lr-find": [
            "lr-find",
            "mlp",
            "--data-root",
            root,
            "--steps",
            "10",
            "--batch-size",
            "64",
            "--out",
            f"{out}/lr.png",
        ],
        "evaluate": ["evaluate", run],
        "predict": ["predict", run, picture],
        "augment-preview": [
            "augment-preview",
            "--dataset",
            "mnist",
            "--data-root",
            root,
            "--augment",
            "flip",
            "--out",
            f"{out}/a.png",
        ],
        "summary": ["summary", "mlp"],
        "spectrum": ["spectrum", "sample:city", "--kernel", "sobel-x", "--out", f"{out}/s.png"],
        "conv-demo": ["conv-demo", "sample:city", "--out", f"{out}/c.png"],
        "interpret": ["interpret", run, "--out", f"{out}/i.png"],
        "explain": ["explain", run, picture, "--method", "smoothgrad", "--out", f"{out}/e.png"],
    }


def number_options(command: str) -> list[str]:
    """The int and float options of `cnnlab COMMAND`, read from its parser: a new option is covered by itself."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return [a.option_strings[0] for a in sub.choices[command]._actions if a.option_strings and a.type in (int, float)]


def run_cli(capsys, argv) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:  # argparse's own refusals (not a number at all) exit from inside main
        code = exit.code
    except Exception as error:  # what the user would see as a traceback: a failure, named
        return -1, f"Traceback: {error.__class__.__name__}: {error}"
    return code, capsys.readouterr().err


def refused_in_one_line(code: int, err: str) -> bool:
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("cnnlab: error: ") and "Traceback" not in err


def test_every_number_option_refuses_absurd_values_in_one_line(world, tmp_path, capsys):
    root, run, picture = world
    lines = commands(root, run, picture, tmp_path)
    tried = 0
    for command, argv in lines.items():
        options = number_options(command)
        assert options, command
        for option in options:
            for value in BAD_NUMBERS:
                name = ["--name", f"case{tried}"] if command == "train" else []
                code, err = run_cli(capsys, [*argv, *name, option, value])
                tried += 1
                if (command, option, value) in ACCEPTED:
                    assert code == 0, (command, option, value, err)
                else:
                    assert refused_in_one_line(code, err), (command, option, value, code, err)
                if command == "train" and code != 0:
                    assert not (tmp_path / name[1]).exists(), (option, value)  # no half-made run folder
    assert tried >= 120


def leaves(value, path=()):
    """Every place in parsed JSON (the first item of each list stands for the rest), containers included."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        yield from leaves(value[0], (*path, 0))


def broken(record: dict, path: tuple, how: str) -> dict:
    record = copy.deepcopy(record)
    *parents, last = path
    holder = record
    for key in parents:
        holder = holder[key]
    if how == "missing":
        del holder[last]
    else:
        holder[last] = {"null": None, "text": "x", "negative": -1, "list": [], "object": {"a": 1}}[how]
    return record


BREAKS = ("missing", "null", "text", "negative", "list", "object")


def test_every_field_of_run_json_broken_is_one_line_or_harmless(world, tmp_path, capsys):
    import shutil

    root, run, picture = world
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    record = json.loads((run / "run.json").read_text())
    cases = [
        (path, how)
        for path in leaves(record)
        if path
        for how in BREAKS
        if not (how == "missing" and isinstance(path[-1], int))
    ]
    refused = 0
    for path, how in cases:
        (folder / "run.json").write_text(json.dumps(broken(record, path, how)))
        for argv in (["predict", folder, picture], ["layers", folder]) + (
            (["evaluate", folder],) if path[0] in ("config", "data") else ()
        ):
            code, err = run_cli(capsys, argv)
            assert code == 0 or refused_in_one_line(code, err), (path, how, argv, err)
            refused += code != 0
    assert len(cases) > 300 and refused > len(cases)  # most breaks are refused, each in one line
    for text in ("", "{", "[]", "\xff\xfe garbage", "[" * 100_000 + "]" * 100_000):
        (folder / "run.json").write_bytes(text.encode("latin-1"))
        code, err = run_cli(capsys, ["evaluate", folder])
        assert refused_in_one_line(code, err) and "run.json" in err, (text[:10], err)


def test_a_broken_record_inside_the_checkpoint_is_one_line_on_resume(world, tmp_path, capsys):
    import shutil

    _, run, _ = world
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    tensors = load_file(folder / "last.safetensors")
    from cnnlab.training.checkpoint import read_metadata

    metadata = read_metadata(folder / "last.safetensors")
    for path, how in [
        (("record", "config", "recipe"), "text"),
        (("record", "history"), "object"),
        (("record", "model", "name"), "negative"),
        (("record", "config"), "missing"),
        (("param_groups",), "text"),
        (("epoch",), "list"),
        (("plain_state",), "negative"),
    ]:
        save_file(
            tensors, str(folder / "last.safetensors"), metadata={"cnnlab": json.dumps(broken(metadata, path, how))}
        )
        code, err = run_cli(capsys, ["train", "--resume", folder, "--no-progress"])
        assert refused_in_one_line(code, err) and "last.safetensors" in err, (path, how, err)
    for garbage in (b"", b"\x00" * 100, b'{"x": 1}' * 3):
        (folder / "last.safetensors").write_bytes(garbage)
        code, err = run_cli(capsys, ["train", "--resume", folder, "--no-progress"])
        assert refused_in_one_line(code, err), err
