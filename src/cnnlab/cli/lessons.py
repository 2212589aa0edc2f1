"""`cnnlab lessons`: the lesson as ten Jupyter notebooks, listed, and copied to a folder to work in.

The notebooks ship inside the package (cnnlab/lessons/*.ipynb); each one's first cell gives its title (the heading)
and the line shown in the list (the paragraph under it), so the list is never written twice."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from cnnlab.cli.base import add_command
from cnnlab.errors import CnnlabError


def register(sub) -> None:
    p = add_command(
        sub,
        "lessons",
        "the lesson as notebooks: list them, or copy them to a folder to work in",
        """
        cnnlab lessons
        cnnlab lessons --copy my-lessons && cd my-lessons && jupyter lab""",
        _lessons,
        description="""
        Ten Jupyter notebooks, one per part of the lesson, from pixels to Grad-CAM, each with short exercises
        and a cell that checks your answer. --copy writes them to a folder of your own; a notebook you have
        changed there is never overwritten unless you add --force.""",
    )
    p.add_argument("--copy", metavar="DIR", help="copy the notebooks into DIR (made if missing)")
    p.add_argument("--force", action="store_true", help="with --copy: overwrite notebooks you have changed")


def lesson_files() -> list[Path]:
    """The packaged notebooks, in lesson order (their names start with the lesson's number)."""
    folder = resources.files("cnnlab") / "lessons"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".ipynb"))


def title_and_line(path: Path) -> tuple[str, str]:
    """The heading of the notebook's first cell and the paragraph under it."""
    first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    paragraphs = [p.strip() for p in first.split("\n\n") if p.strip()]
    return paragraphs[0].lstrip("# ").strip(), " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else ""


def _lessons(args) -> int:
    files = lesson_files()
    if args.copy:
        return copy_lessons(files, Path(args.copy), args.force)
    for path in files:
        title, line = title_and_line(path)
        print(f"{path.stem:<24} {title}\n{'':<24} {line}")
    print("\nwork on them in a folder of your own: cnnlab lessons --copy my-lessons, then open them with Jupyter")
    return 0


def copy_lessons(files: list[Path], folder: Path, force: bool) -> int:
    """Copy every notebook into `folder`; refuse, before writing anything, if one there differs from ours."""
    if folder.exists() and not folder.is_dir():
        raise CnnlabError(f"--copy {folder}: that is a file; name a folder to copy the notebooks into")
    changed = [
        f.name for f in files if (folder / f.name).is_file() and (folder / f.name).read_bytes() != f.read_bytes()
    ]
    if changed and not force:
        raise CnnlabError(
            f"{folder} has your own versions of {', '.join(changed)}: nothing was copied; "
            "copy into another folder, or add --force to overwrite them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, folder / f.name)
    print(f"copied {len(files)} notebooks to {folder}" + (f" (overwrote {', '.join(changed)})" if changed else ""))
    print(f"next: cd {folder} && jupyter lab   (no Jupyter yet? pip install jupyterlab)")
    return 0
