"""What every sub-command shares: a parser with an example in its help, and a home for the handler."""
from __future__ import annotations

import argparse
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
    parser.set_defaults(handler=handler)
    return parser


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
