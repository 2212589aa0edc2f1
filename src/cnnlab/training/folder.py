"""A run folder has one owner: locked while a process trains into it (and then cleaned of what a killed process
left half-written), never overwritten by a new run unless asked, and removed if no epoch ever finished.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cnnlab.errors import CnnlabError

LOCK = ".lock"
RUN_FILES = (
    "last.safetensors",
    "best.safetensors",
    "run.json",
    "metrics.csv",
    "curves.png",
    "confusion.png",
    "samples.png",
    "reconstructions.png",
)


def holds_run(folder: Path) -> bool:
    """A run worth keeping: a finished epoch's weights, or a record of one (a record written at the start and
    never followed by an epoch is not: see `started`)."""
    return any((folder / name).is_file() for name in ("last.safetensors", "best.safetensors")) or (
        (folder / "run.json").is_file() and not started_only(folder)
    )


def started_only(folder: Path) -> bool:
    """The record a training writes when it starts (status running, epoch 0), with no checkpoint beside it: what a
    process killed during its first epoch leaves."""
    import json

    from cnnlab.training.record import Status

    if any(folder.glob("*.safetensors")):
        return False
    try:
        record = json.loads((folder / "run.json").read_bytes())
        return record.get("epochs_done") == 0 and record.get("status") == Status.RUNNING
    except (OSError, ValueError, AttributeError):
        return False


def new_run_folder(out, base: str) -> Path:
    """`out/BASE`, or `out/BASE-2`, `-3`, ... when taken (two runs started together may pick the same: the lock
    then refuses one of them)."""
    candidate, n = Path(out) / base, 2
    while candidate.exists():
        candidate, n = Path(out) / f"{base}-{n}", n + 1
    return candidate


class Claim:
    """What `owned` hands its holder: set `started` once the start record is written, so that a run stopped before
    its first epoch ends takes that record away with it."""

    started = False


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
        raise CnnlabError(
            f"{folder}: another cnnlab process is training into this folder; wait for it to finish, "
            "or train into another folder (--name)"
        ) from None
    for stale in folder.glob(".*.tmp"):  # half-written files of a killed process (see cnnlab.files)
        stale.unlink(missing_ok=True)
    claim = Claim()
    try:
        yield claim
    finally:
        if claim.started and started_only(folder):
            for name in ("run.json", "metrics.csv"):
                (folder / name).unlink(missing_ok=True)
        if not holds_run(folder):  # nothing worth keeping: leave no empty run folder behind
            (folder / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        handle.close()


def prepare_new_run(folder: Path, overwrite: bool) -> None:
    """A new run never replaces a finished one, nor goes into a folder of someone else's files, silently: refuse,
    or with `overwrite` remove the old run's files (only those: a user's own files stay)."""
    if holds_run(folder):
        if not overwrite:
            raise CnnlabError(
                f"{folder} holds a run already: continue it with `cnnlab train --resume {folder}`, "
                "train into another folder (another --name, or none for a numbered one), or replace "
                "it with --overwrite"
            )
    elif not started_only(folder):
        foreign = sorted(p.name for p in folder.iterdir() if p.name != LOCK)
        if foreign and not overwrite:
            raise CnnlabError(
                f"{folder} is not a cnnlab run folder and holds files ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): train into another folder (another --name), "
                "or into this one with --overwrite (files named like a run's would be replaced)"
            )
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
    return {
        int(fields[5].rsplit(":", 1)[1]) for fields in map(str.split, lines) if len(fields) > 5 and fields[1] == "FLOCK"
    }


def is_training(folder: Path, inodes: set[int] | None) -> bool | None:
    """Whether a process holds the run folder's training lock (`owned`); None: unknown."""
    if inodes is None:
        return None
    try:
        return (folder / LOCK).stat().st_ino in inodes
    except FileNotFoundError:
        return False
