"""A run folder that is always consistent: killed at any instant, resumed, it ends bit for bit as the uninterrupted
run; and a run that diverges stops with a clear line, its best weights still finite."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import threading
import time
from subprocess import PIPE

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.training.config import make_config
from cnnlab.training.loop import train

# A fork server for cnnlab's command line: each run it is sent is a child forked from it, which sends itself SIGKILL
# just before its K-th file rename. Every write in cnnlab goes to a temporary file that a rename puts in place, so
# this stops a run at each instant between two writes. (Forked, not started afresh: importing torch again for every
# run was most of this test's time. The server only imports, so each child starts as a new process would.)
KILLER = """
import json, os, signal, sys, traceback
import cnnlab.api
from cnnlab.cli import main
for line in iter(sys.stdin.readline, ""):
    limit, argv = json.loads(line)
    child = os.fork()
    if child == 0:
        real, calls = os.replace, [0]
        def replace(source, target):
            calls[0] += 1
            if calls[0] == limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(source, target)
        os.replace = replace
        code = 1
        try:
            code = main(argv)
            print(f"renames={calls[0]}")
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(f"status={os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])}", flush=True)
"""


def command(root, folder) -> list[str]:
    return [
        "train",
        "mlp",
        "--data-root",
        str(root),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--precision",
        "fp32",
        "--no-progress",
        "--out",
        str(folder.parent),
        "--name",
        folder.name,
    ]


def killed_run(server, limit: int, root, folder) -> tuple[int, str]:
    """A run forked by the KILLER `server`, killed before rename `limit`: its exit code (-9 when killed) and what it
    printed. Five minutes at most, as a subprocess.run(timeout=300) would allow."""
    server.stdin.write(json.dumps([limit, command(root, folder)]) + "\n")
    server.stdin.flush()
    watchdog = threading.Timer(300, server.kill)
    watchdog.start()
    printed = []
    try:
        while not (line := server.stdout.readline()).startswith("status="):
            assert line, "the fork server stopped"
            printed.append(line)
    finally:
        watchdog.cancel()
    return int(line.removeprefix("status=")), "".join(printed)


def finish(root, folder) -> None:
    """What a user does after the kill: resume; if no epoch had finished, start again."""
    code = (
        main(["train", "--resume", str(folder), "--no-progress"])
        if (folder / "last.safetensors").is_file()
        else main(command(root, folder))
    )
    assert code == 0


def outcome(folder) -> tuple:
    record = json.loads((folder / "run.json").read_text())
    history = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in record["history"]]
    return (
        history,
        record["best"],
        record["test"],
        record["status"],
        {k: v for k, v in load_file(folder / "best.safetensors").items()},
        {k: v for k, v in load_file(folder / "last.safetensors").items() if not k.startswith("rng.")},
    )


def same(a: tuple, b: tuple) -> bool:
    if a[:4] != b[:4]:
        return False
    return all(a[i].keys() == b[i].keys() and all(torch.equal(a[i][k], b[i][k]) for k in a[i]) for i in (4, 5))


def test_killed_at_every_write_then_resumed_ends_as_the_uninterrupted_run(mnist_root, tmp_path, capsys):
    script, errors = tmp_path / "killer.py", tmp_path / "killer.err"
    script.write_text(KILLER)
    with (
        errors.open("w") as stderr,
        subprocess.Popen([sys.executable, str(script)], stdin=PIPE, stdout=PIPE, stderr=stderr, text=True) as server,
    ):
        code, printed = killed_run(server, 10**9, mnist_root, tmp_path / "runs" / "whole")
        assert code == 0, errors.read_text()
        renames = int(printed.rsplit("renames=", 1)[1])
        expected = outcome(tmp_path / "runs" / "whole")
        assert renames >= 8
        for limit in range(1, renames + 1):
            folder = tmp_path / "runs" / f"killed-{limit}"
            assert killed_run(server, limit, mnist_root, folder)[0] == -signal.SIGKILL, errors.read_text()
            finish(mnist_root, folder)
            assert same(outcome(folder), expected), f"killed before rename {limit}"
            assert not list(folder.glob(".*.tmp")), f"temporary files left after rename {limit}"
        server.stdin.close()
    capsys.readouterr()


def test_killed_at_random_instants_then_resumed_ends_as_the_uninterrupted_run(mnist_root, tmp_path, capsys):
    main(command(mnist_root, tmp_path / "runs" / "whole"))
    expected = outcome(tmp_path / "runs" / "whole")
    rng = random.Random(0)
    for attempt in range(3):
        folder = tmp_path / "runs" / f"cut-{attempt}"
        process = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", *command(mnist_root, folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not folder.exists() and process.poll() is None:  # the run has started writing
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        finish(mnist_root, folder)
        assert same(outcome(folder), expected), f"attempt {attempt}"
    capsys.readouterr()


def test_a_diverging_run_stops_in_one_line_saying_what_to_try(mnist_root, tmp_path, capsys):
    code = main(
        [
            "train",
            "mlp",
            "--data-root",
            str(mnist_root),
            "--batch-size",
            "64",
            "--optimizer",
            "sgd",
            "--lr",
            "1e6",
            "--schedule",
            "constant",
            "--epochs",
            "2",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "epoch 1: at step" in err and "became inf or nan: training diverged" in err and "--lr 1e+05" in err


def test_nan_weights_are_never_kept_as_best(mnist_root, tmp_path):
    def poison(epoch, run):
        if epoch == 1:
            with torch.no_grad():
                run.model.fc1.weight[0, 0] = math.nan

    config = make_config("mlp", "mnist", data_root=str(mnist_root), precision="fp32", epochs=3, batch_size=64)
    with pytest.raises(CnnlabError, match="epoch 2: at step 1 of .* training diverged.*epoch 1 is kept"):
        train(config, tmp_path / "run", progress=False, on_epoch_end=poison, log=lambda line: None)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "diverged" and record["best"]["epoch"] == 1 and len(record["history"]) == 1
    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / "run" / "best.safetensors").values())


def test_two_trainings_into_one_folder_one_refuses_the_other_is_whole(mnist_root, tmp_path):
    folder = tmp_path / "runs" / "same"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "cnnlab", *command(mnist_root, folder)],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert refusal.count("\n") == 1 and ("another cnnlab process is training" in refusal or "holds a run" in refusal)
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished" and len(record["history"]) == 2
    assert not (folder / ".lock").exists() or (folder / "last.safetensors").is_file()


def test_a_finished_run_is_never_replaced_unasked(mnist_root, tmp_path, capsys):
    folder = tmp_path / "runs" / "mine"
    assert main(command(mnist_root, folder)) == 0
    before = (folder / "best.safetensors").read_bytes()
    assert main(command(mnist_root, folder)) == 2
    assert "holds a run already" in capsys.readouterr().err
    assert (folder / "best.safetensors").read_bytes() == before
    assert main([*command(mnist_root, folder), "--overwrite", "--seed", "1"]) == 0
    assert (folder / "best.safetensors").read_bytes() != before
    assert (
        main(
            [
                "train",
                "mlp",
                "--data-root",
                str(mnist_root),
                "--epochs",
                "1",
                "--no-progress",
                "--out",
                str(tmp_path / "runs"),
                "--name",
                "early",
                "--batch-size",
                "99999",
            ]
        )
        == 2
    )
    assert not (tmp_path / "runs" / "early").exists()  # refused before the first epoch: no folder left


def test_resume_needs_only_the_run_folder(mnist_root, tmp_path, capsys, monkeypatch):
    import shutil

    from cnnlab.models import create_model
    from cnnlab.training import loop

    weights = tmp_path / "start.pth"
    torch.save(create_model("mlp").state_dict(), weights)
    real_train_epoch = loop.train_epoch

    def ctrl_c_in_epoch_2(run, batches, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_train_epoch(run, batches, epoch, progress)

    monkeypatch.setattr(loop, "train_epoch", ctrl_c_in_epoch_2)
    folder = tmp_path / "runs" / "tuned"
    assert main([*command(mnist_root, folder), "--weights", str(weights)]) == 130
    monkeypatch.undo()
    weights.unlink()  # everything is in last.safetensors already
    moved = shutil.move(str(mnist_root), str(tmp_path / "moved"))
    assert main(["train", "--resume", str(folder), "--no-progress"]) == 2
    assert "not found; looked in" in capsys.readouterr().err  # the data moved: it says where it looked
    assert main(["train", "--resume", str(folder), "--data-root", moved, "--no-progress"]) == 0
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"
