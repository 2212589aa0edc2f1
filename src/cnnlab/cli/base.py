"""What every sub-command shares: a parser with an example in its help, and a home for the handler."""
from __future__ import annotations

import argparse
import textwrap


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
