"""A run folder has one owner: locked while a process trains into it (and then cleaned of what a killed process
left half-written), never overwritten by a new run unless asked, and removed if no epoch ever finished.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from cnnlab.errors import CnnlabError

LOCK = ".lock"
RUN_FILES = ("last.safetensors", "best.safetensors", "run.json", "metrics.csv", "curves.png", "confusion.png",
             "samples.png", "reconstructions.png")


def holds_run(folder: Path) -> bool:
    return (folder / "last.safetensors").is_file() or (folder / "run.json").is_file()


def new_run_folder(out, base: str) -> Path:
    """`out/BASE`, or `out/BASE-2`, `-3`, ... when taken (two runs started together may pick the same: the lock
    then refuses one of them)."""
    candidate, n = Path(out) / base, 2
    while candidate.exists():
        candidate, n = Path(out) / f"{base}-{n}", n + 1
    return candidate


@contextlib.contextmanager
def owned(folder: Path):
    """Hold the folder's lock while training: a second process training into it is refused in one line, and the
    operating system releases the lock if this process dies. A folder left with no finished epoch is removed."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CnnlabError(f"{folder}: another cnnlab process is training into this folder; wait for it to finish, "
                          "or train into another folder (--name)") from None
    for stale in folder.glob(".*.tmp"):             # half-written files of a killed process (see cnnlab.files)
        stale.unlink(missing_ok=True)
    try:
        yield
    finally:
        if not holds_run(folder):                   # nothing worth keeping: leave no empty run folder behind
            (folder / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        handle.close()


def prepare_new_run(folder: Path, overwrite: bool) -> None:
    """A new run never replaces a finished one silently: refuse, or with `overwrite` remove the old run's files."""
    if not holds_run(folder):
        return
    if not overwrite:
        raise CnnlabError(f"{folder} holds a run already: continue it with `cnnlab train --resume {folder}`, train "
                          "into another folder (another --name, or none for a numbered one), or replace it with "
                          "--overwrite")
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


def locked_inodes() -> set[int] | None:
    """The inodes of the files a live process holds an flock on (Linux's /proc/locks); None where that is unknown.
    Read rather than tried: taking a run's lock even for a moment could make a starting `--resume` refuse."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE 27799 fe:00:2318779 0 EOF"; a waiter's line has "->" in field 1 and is skipped
    return {int(fields[5].rsplit(":", 1)[1]) for fields in map(str.split, lines)
            if len(fields) > 5 and fields[1] == "FLOCK"}


def is_training(folder: Path, inodes: set[int] | None) -> bool | None:
    """Whether a process holds the run folder's training lock (`owned`); None: unknown."""
    if inodes is None:
        return None
    try:
        return (folder / LOCK).stat().st_ino in inodes
    except FileNotFoundError:
        return False
