"""What every sub-command shares: a parser with an example in its help, and a home for the handler."""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

from cnnlab.errors import CnnlabError


def add_command(subparsers, name: str, summary: str, example: str, handler, description: str = ""):
    """Add `cnnlab NAME`; `example` is shown under --help so every command teaches by example."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=textwrap.dedent(description or summary).strip(),
        epilog="example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.error = lambda message: _usage_error(parser, message)
    parser.set_defaults(handler=handler)
    return parser


def _usage_error(parser: argparse.ArgumentParser, message: str):
    """A mistyped option or value: one line saying what was wrong and where the help is, not the whole usage."""
    parser.exit(2, f"cnnlab: error: {message} (see `{parser.prog} --help`)\n")


RUN_WEIGHTS = ["best", "last"]


def add_run_weights(p) -> None:
    """--weights: which of a run's two checkpoints to use."""
    p.add_argument(
        "--weights", choices=RUN_WEIGHTS, default="best", help="best (lowest validation loss, the default) or last"
    )


def add_data_root(p) -> None:
    """--data-root, for commands that read a run's data set again."""
    p.add_argument("--data-root", help="where the data set is, if not where it was when training")


def default_name(*parts) -> str:
    """A file name made of what shaped the picture, so that two different commands never write one file:
    default_name("city", "sobel-x", "custom 3x3") -> "city-sobel-x-custom-3x3"."""
    slugs = [re.sub(r"[^A-Za-z0-9.+]+", "-", str(part)).strip("-") for part in parts if part]  # False: left out
    return "-".join(slug for slug in slugs if slug)


def output_path(given: str | None, default: str, suffix: str, option: str) -> Path:
    """The file an option names (or its default), refused before any work if its extension is wrong."""
    path = Path(given or default)
    if path.suffix.lower() != suffix:
        raise CnnlabError(f"{option} {path}: the file name must end in {suffix}")
    return path


def save_array(path: Path, array) -> None:
    """np.save, written atomically (through a file object: np.save would append .npy to a temporary name)."""
    import numpy as np

    from cnnlab.files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.save(file, array)


# what `predict` and `explain` take as images (cnnlab.predict.Predictor.picture reads them)
MODEL_IMAGE_HELP = (
    "image files, sample:NAME (a picture drawn by code, e.g. sample:digit7 or sample:car; see "
    "`cnnlab samples`) or test:N (image N of the run's test split)"
)
