"""Execute the lesson notebooks on this machine's real data and write copies with their outputs, for the docs.

    python scripts/render_lessons.py --data-root /path/to/data          # MNIST/raw and cifar-10-batches-py in it
    python scripts/render_lessons.py --data-root data --only 05 --only 06

Each notebook runs top to bottom in a fresh kernel, as a learner would run it (exercises unanswered); its run time
is printed. The copies go to docs/lessons/NN-name.ipynb."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "src" / "cnnlab" / "lessons"


def execute(
    path: Path, timeout: int = 600, solved: bool = False, workdir: Path | None = None
) -> tuple[nbformat.NotebookNode, float]:
    """The notebook run in a fresh kernel in `workdir` (default: a new temporary folder, so that nothing it writes
    lands beside the packaged notebooks); `solved` puts each exercise's solution in first."""
    notebook = nbformat.read(path, as_version=4)
    if solved:
        for cell in notebook.cells:
            if "solution" in cell.metadata:
                cell.source = cell.metadata["solution"]
    start = time.perf_counter()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="cnnlab-lesson-"))
    NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return notebook, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="where the data sets are (sets $CNNLAB_DATA for the notebooks)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "lessons"), help="folder of the executed copies")
    parser.add_argument("--only", action="append", default=[], metavar="NN", help="just lesson NN (repeatable)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads in the kernels (OMP_NUM_THREADS); 1 is faster on a machine shared by other busy processes",
    )
    args = parser.parse_args()
    if args.data_root:
        os.environ["CNNLAB_DATA"] = str(Path(args.data_root).resolve())
    os.environ.pop("CNNLAB_LESSON_QUICK", None)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for path in sorted(LESSONS.glob("*.ipynb")):
        if args.only and path.name[:2] not in args.only:
            continue
        notebook, seconds = execute(path)
        for cell in notebook.cells:  # the learner's copy has no solutions in it; neither does the page
            cell.metadata.pop("solution", None)
        nbformat.write(notebook, out / path.name)
        total += seconds
        print(f"{path.stem:<26} {seconds:6.1f} s", flush=True)
    print(f"{'all':<26} {total:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
