"""Every foundation command end to end, through `cnnlab.cli.main`, plus one real process."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from cnnlab.cli import main


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run_dir(mnist_root, tmp_path, capsys):
    code, out, _ = cli(
        capsys,
        "train",
        "mlp",
        "--dataset",
        "mnist",
        "--data-root",
        mnist_root,
        "--epochs",
        3,
        "--batch-size",
        32,
        "--lr",
        3e-3,
        "--lookahead",
        "--dropout",
        0.1,
        "--out",
        tmp_path / "runs",
        "--no-progress",
    )
    assert code == 0, out
    assert "Test accuracy (overall)" in out and "run folder:" in out
    return tmp_path / "runs" / "mlp-mnist"


def test_train_evaluate_predict(run_dir, tmp_path, capsys):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["config"]["recipe"]["epochs"] == 3 and info["config"]["recipe"]["batch_size"] == 32
    assert info["config"]["recipe"]["lookahead"]  # a switch that the mlp's recipe leaves off
    assert info["config"]["recipe"]["dropout"] == 0.1  # the mlp's own rate is 0.2

    code, out, _ = cli(capsys, "evaluate", run_dir)
    assert code == 0
    overall = [line for line in out.splitlines() if "overall" in line][0]
    assert f"{100 * info['test']['accuracy']:.2f}%" in overall  # same number as at the end of training

    # class 5 is a bright square in row 1, column 1 (see conftest.learnable_images); an RGB 56x56 photo of it,
    # drawn dark on light as people draw digits: converted, resized and inverted, each said
    image = Image.new("RGB", (56, 56), "white")
    image.paste((0, 0, 0), (14, 14, 28, 28))
    image.save(tmp_path / "five.png")
    code, out, _ = cli(capsys, "predict", run_dir, tmp_path / "five.png", "--top-k", 2)
    assert code == 0
    lines = out.splitlines()
    assert "converted RGB to L" in lines[0] and "resized 56x56 to 28x28" in lines[0] and "inverted" in lines[0]
    assert lines[1].split()[0] == "5" and len(lines) == 3


def test_resume_a_finished_run_changes_nothing(run_dir, capsys):
    code, out, _ = cli(capsys, "train", "--resume", run_dir, "--no-progress")
    assert code == 0 and "resuming" in out


def test_compare_two_runs(run_dir, capsys, tmp_path):
    code, out, _ = cli(capsys, "compare", run_dir, run_dir, "--out", tmp_path / "cmp.png")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["run", "model", "parameters"]
    assert lines[1].split()[:4] == ["mlp-mnist", "mlp", "669,706", "3"] and lines[1].endswith("%")
    assert (tmp_path / "cmp.png").stat().st_size > 10_000


def test_models_and_datasets(mnist_root, capsys):
    code, out, _ = cli(capsys, "models")
    assert code == 0 and "669,706" in out and out.splitlines()[0].split()[:2] == ["model", "parameters"]
    code, out, _ = cli(capsys, "datasets", "--data-root", mnist_root)
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert rows["mnist"][1:6] == ["600", "train", "200", "test", "1x28x28"] and rows["cifar10"][1:3] == ["not", "found"]
    code, out, _ = cli(capsys, "datasets", "cifar10")
    assert code == 1 and "looked in" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "{tmp}"], "not a cnnlab run folder"),
        (["predict", "{tmp}/nothing", "x.png"], "not a cnnlab run folder"),
        (["train", "nonet"], "unknown model 'nonet'"),
        (["train", "mlp", "--dataset", "fashion-mnist", "--data-root", "{tmp}/nowhere"], "not found; looked in"),
        (["train", "mlp", "--dataset", "imagefolder", "--data-root", "{tmp}"], "no images found"),
        (["train", "mlp", "--recipe", "turbo"], "has no recipe 'turbo'"),
        (
            ["train", "mlp", "--schedule", "exponential", "--decay", "1.5"],
            "decay 1.5: must be in (0, 1], the learning rate's multiplier",
        ),
        (["train", "--resume", "{tmp}"], "not a cnnlab run folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code, _, err = cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and message in err and "Traceback" not in err
    assert err.startswith("cnnlab: error: ")


def test_predict_rejects_a_text_file(run_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = cli(capsys, "predict", run_dir, tmp_path / "notes.txt")
    assert code == 2 and "notes.txt: not an image" in err and len(err.strip().splitlines()) == 1


def test_corrupt_gzip_names_the_file_and_leaves_no_run(mnist_root, tmp_path, capsys):
    gz = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    code, _, err = cli(capsys, "train", "mlp", "--data-root", mnist_root, "--out", tmp_path / "runs")
    assert code == 2 and "train-images-idx3-ubyte.gz: corrupt or truncated" in err
    assert not (tmp_path / "runs").exists()


def test_the_installed_command_runs_and_teaches():
    result = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "example:" in result.stdout and "--resume" in result.stdout


def test_evaluate_with_perturbation_is_seeded_and_hurts(run_dir, capsys):
    def overall(*extra):
        code, out, _ = cli(capsys, "evaluate", run_dir, *extra)
        assert code == 0
        return float(next(line for line in out.splitlines() if "overall" in line).split()[-2].rstrip("%"))

    clean = overall()
    shaken = overall("--perturb", "rotate=90,translate=0.25", "--seed", "1")
    assert shaken == overall("--perturb", "rotate=90,translate=0.25", "--seed", "1")
    assert shaken < clean - 20  # the class is where a square is: moving it must confuse the MLP


def test_augment_preview_and_bad_spec(mnist_root, tmp_path, capsys):
    code, out, _ = cli(
        capsys,
        "augment-preview",
        "--dataset",
        "mnist",
        "--data-root",
        mnist_root,
        "--augment",
        "rotate=20,crop=2",
        "--count",
        3,
        "--out",
        tmp_path / "p.png",
    )
    assert code == 0 and (tmp_path / "p.png").stat().st_size > 5_000
    code, _, err = cli(capsys, "augment-preview", "--dataset", "mnist", "--augment", "spin=3")
    assert code == 2 and "unknown augmentation 'spin=3'" in err


def test_train_from_torchvision_style_weights(mnist_root, tmp_path, capsys):
    import torch

    from cnnlab.models import create_model

    start = create_model("mlp", num_classes=1000)  # like an ImageNet checkpoint: another class count
    torch.save(start.state_dict(), tmp_path / "start.pth")
    code, out, _ = cli(
        capsys,
        "train",
        "mlp",
        "--data-root",
        mnist_root,
        "--epochs",
        1,
        "--batch-size",
        64,
        "--out",
        tmp_path / "r",
        "--weights",
        tmp_path / "start.pth",
        "--no-progress",
    )
    assert code == 0 and "1000 classes in the file, 10 in the model" in out
    code, _, err = cli(
        capsys, "train", "mlp", "--data-root", mnist_root, "--batch-size", 64, "--weights", tmp_path / "none.pth"
    )
    assert code == 2 and "none.pth" in err


def test_predict_top_k_below_one_and_out_naming_a_file_are_one_line(run_dir, mnist_root, tmp_path, capsys):
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "blank.png")
    code, _, err = cli(capsys, "predict", run_dir, tmp_path / "blank.png", "--top-k", "-1")
    assert code == 2 and "top-k -1: must be at least 1" in err and err.count("\n") == 1
    (tmp_path / "afile").write_text("not a folder")
    code, _, err = cli(
        capsys, "train", "mlp", "--data-root", mnist_root, "--batch-size", 64, "--out", tmp_path / "afile"
    )
    assert code == 2 and err.count("\n") == 1 and "afile" in err
