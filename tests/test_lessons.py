"""The lesson notebooks: `cnnlab lessons` lists and copies them, and every one runs top to bottom (on tiny data,
CNNLAB_LESSON_QUICK=1), with each exercise's check accepting its solution."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.cli.lessons import lesson_files, title_and_line

ROOT = Path(__file__).resolve().parents[1]
NAMES = [
    "01-mnist-pixels",
    "02-mlp",
    "03-validation-dropout",
    "04-mlp-vs-cnn",
    "05-filters-frequency",
    "06-conv-layer",
    "07-cifar-cnn",
    "08-architectures",
    "09-capsules",
    "10-visualizing",
]


def test_lessons_lists_the_ten_notebooks_with_a_title_and_a_line(capsys):
    assert [p.stem for p in lesson_files()] == NAMES
    assert main(["lessons"]) == 0
    out = capsys.readouterr().out
    for path in lesson_files():
        title, line = title_and_line(path)
        assert title[0].isdigit() and len(line) > 30 and f"{path.stem:<24} {title}" in out and line in out


def test_lessons_are_stored_clean():
    """No outputs or execution counts in the packaged notebooks: a learner starts from a blank page."""
    for path in lesson_files():
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), path.name
        exercises = [c for c in code if "exercise" in c["metadata"].get("tags", [])]
        assert exercises and all("solution" in c["metadata"] for c in exercises), path.name


def test_copy_refuses_to_overwrite_a_changed_notebook(tmp_path, capsys):
    folder = tmp_path / "my lessons"
    assert main(["lessons", "--copy", str(folder)]) == 0
    assert sorted(p.stem for p in folder.glob("*.ipynb")) == NAMES
    assert main(["lessons", "--copy", str(folder)]) == 0  # unchanged copies: copying again is fine
    mine = folder / "02-mlp.ipynb"
    mine.write_text(mine.read_text().replace("class Net", "class MyNet"))
    capsys.readouterr()
    assert main(["lessons", "--copy", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "02-mlp.ipynb" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert "MyNet" in mine.read_text()  # nothing was overwritten
    assert main(["lessons", "--copy", str(folder), "--force"]) == 0
    assert "MyNet" not in mine.read_text()
    (tmp_path / "a file").write_text("x")
    assert main(["lessons", "--copy", str(tmp_path / "a file")]) == 2


@pytest.fixture(scope="module")
def lesson_data(tmp_path_factory):
    from conftest import make_cifar, make_mnist

    root = tmp_path_factory.mktemp("lesson-data")
    make_mnist(root, n_train=600, n_test=200)
    make_cifar(root, per_batch=80)
    return root


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_its_checks_accept_the_solutions(name, lesson_data, tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    from render_lessons import execute

    monkeypatch.setenv("CNNLAB_DATA", str(lesson_data))
    monkeypatch.setenv("CNNLAB_LESSON_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny tensors: one thread is quicker
    notebook, _ = execute(next(p for p in lesson_files() if p.stem == name), solved=True, workdir=tmp_path)
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    exercises = sum("solution" in cell.metadata for cell in notebook.cells)
    assert printed.count("Right!") == exercises and "Not yet" not in printed and "Not answered" not in printed
