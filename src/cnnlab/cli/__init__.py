"""The `cnnlab` command: parse, call the Python API, print. Sub-commands live beside this file, one module per
concept; they import torch only inside their handlers, so `cnnlab filter --help` starts in a blink."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from cnnlab.cli import attack, export, filters, inspection, lessons, patches, serve, training
from cnnlab.errors import CnnlabError
from cnnlab.version import __version__

COMMAND_MODULES = [training, filters, inspection, patches, attack, export, serve, lessons]

FIRST_SESSION = """a first session:
  cnnlab conv-demo sample:city                           # what conv, ReLU and max-pooling do to a picture
  cnnlab train mnist-cnn --dataset mnist --recipe quick  # a small CNN: ~99.4% on MNIST in ~35 s on a CPU
                                                         # (no --recipe: ~99.6% in ~3 minutes)
  cnnlab evaluate runs/mnist-cnn-mnist                   # overall and per-class test accuracy
  cnnlab explain runs/mnist-cnn-mnist --method filters   # what its first layer learned
  cnnlab serve                                           # all of it in your browser: draw a digit, watch it think
  cnnlab lessons --copy my-lessons                       # the lesson as ten notebooks with exercises

Run `cnnlab COMMAND --help` for a command's options and an example."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Learn, train, inspect and visualize convolutional neural networks.",
        epilog=FIRST_SESSION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parser.parse_args(argv)
    args.argv = argv  # as given: `train --nproc` runs it again in each process
    if args.command is None:  # plain `cnnlab`: what it can do, not an error
        parser.print_help()
        return 0
    try:
        return args.handler(args) or 0
    except CnnlabError as error:
        print(f"cnnlab: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cnnlab ... | head`: the reader left; nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # the disk, not a bug: full, read-only, a folder where a file should be
        print(f"cnnlab: error: {disk_problem(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncnnlab: interrupted", file=sys.stderr)
        return 130


def disk_problem(error: OSError) -> str:
    """One line for a file that could not be written or read, with what to do."""
    where = error.filename or "a file"
    if error.errno == errno.ENOSPC:
        return (
            f"{where}: no space left on the device; free some space and run the command again (an interrupted "
            "training continues from its last saved epoch with `cnnlab train --resume RUN`)"
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: cannot write there ({error.strerror}); choose a folder you can write to (--out)"
    return f"{where}: {error.strerror or error}"
