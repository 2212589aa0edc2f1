"""Training on several processes with PyTorch's own engine: torch.distributed, launched by torchrun, the model in
DistributedDataParallel (gloo on CPUs, NCCL on GPUs). Nothing here runs unless torchrun started the process.

    torchrun --nproc-per-node 2 -m cnnlab train mlp            # two processes on this machine
    cnnlab train mlp --nproc 2                                 # the same, launched for you

The recipe's batch size stays the global batch: every process takes its share of each batch of one seeded
permutation, and DDP averages the gradients, so a recipe means the same on any number of processes. Only rank 0
writes files and prints.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnlab.errors import CnnlabError

TIMEOUT = datetime.timedelta(seconds=60)  # a collective waiting longer than this means a process died


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes the run folder and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def join(device: str) -> tuple[World, str]:
    """The world this process belongs to (as torchrun's variables say), joined; and the device it trains on
    (cuda:LOCAL_RANK for `cuda` when distributed)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if torch.device(device).type == "cuda":
        device = f"cuda:{world.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=TIMEOUT)
    return world, device


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that prints and writes (readable before the world is joined)."""
    return os.environ.get("RANK", "0") == "0"


def agree(world: World, folder, refusal: Exception | None):
    """Rank 0's run folder for every process, and its refusal (a folder in use, ...) raised by every process,
    so that none waits for the others until the timeout."""
    if world.distributed:
        message = [str(folder), str(refusal) if refusal else None]
        dist.broadcast_object_list(message, src=0)
        folder = message[0]
        if message[1] and not world.main:
            raise ReportedElsewhere(message[1])
    if refusal:
        raise refusal
    return folder


LAUNCHED = "CNNLAB_LAUNCHED"  # set for the processes `cnnlab train --nproc` starts: the launcher reports


class ReportedElsewhere(CnnlabError):
    """An error another process reports: rank 0's refusal echoed by the others, or a survivor's news that a peer
    died. Under `--nproc` the launcher says it once, so the processes themselves stay silent."""


def launch(processes: int, argv: list[str], folder) -> int:
    """`cnnlab ARGV` on `processes` processes of this machine, through torchrun (torch.distributed.run); a failure
    becomes one line saying which process, how, and how to go on with `folder`."""
    import logging

    os.environ.setdefault("LOGLEVEL", "CRITICAL")  # torchrun's own log lines would repeat what we say
    # the cores shared out (torchrun would set 1 per process, with a banner saying so)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // processes)))
    os.environ[LAUNCHED] = "1"
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        torchrun(["--standalone", "--nproc-per-node", str(processes), "-m", "cnnlab", *argv])
    except ChildFailedError as failed:
        raise CnnlabError(failure_message(failed.failures, processes, folder, argv)) from None
    return 0


def failure_message(failures: dict, processes: int, folder, argv: list[str]) -> str:
    """The process that failed first (one killed by a signal before the survivors it took down), how, and what next."""
    import shlex
    import signal

    rank, failure = min(failures.items(), key=lambda kv: (kv[1].exitcode >= 0, kv[1].timestamp))
    if failure.exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-failure.exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-failure.exitcode}"
    else:
        how = f"failed (exit code {failure.exitcode}; its message is above)"
    from pathlib import Path

    if (Path(folder) / "last.safetensors").is_file():
        next_step = f"the last finished epoch is kept: continue with `cnnlab train --resume {folder}`"
    else:
        next_step = f"no epoch had finished: start again with `{shlex.join(['cnnlab', *argv])}`"
    return f"training process {rank} of {processes} {how}; {next_step}"


def total(world: World, *values: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor summed over all processes (a no-op for one)."""
    if not world.distributed:
        return list(values)
    out = []
    for value in values:
        value = value.clone()
        dist.all_reduce(value)
        out.append(value)
    return out


def smallest(world: World, value: torch.Tensor) -> torch.Tensor:
    if world.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value


def gathered(world: World, value: torch.Tensor) -> torch.Tensor:
    """The processes' tensors concatenated in rank order (on rank 0's side the whole split's predictions)."""
    if not world.distributed:
        return value
    parts: list = [None] * world.size
    dist.all_gather_object(parts, value.cpu())
    return torch.cat(parts)


def lost_peer(error: Exception, folder) -> CnnlabError:
    return ReportedElsewhere(
        f"another training process stopped ({str(error).splitlines()[0][:120]}); the last "
        f"finished epoch is kept: continue with `cnnlab train --resume {folder}` (any number "
        "of processes)"
    )


def leave(world: World, together: bool) -> None:
    """Leave the process group; `together` (after a run that ended well in every process) first waits for all, so
    that none closes its connections while another is still using them (rank 0 writes the report and figures
    after the last collective)."""
    if world.distributed and dist.is_initialized():
        if together:
            try:
                dist.barrier()
            except RuntimeError:  # a process that failed after the last collective reports that itself
                pass
        dist.destroy_process_group()
