"""The documentation runs as written: the site builds with warnings as errors, and every shell and Python code block
of README.md and docs/ is executed, page by page in order, on tiny data sets made here (so a command that would
train for minutes on the real data takes seconds)."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_cifar, make_mnist

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.M | re.S)

# Lines a test cannot run as written, each for a reason: the set-up scripts are what CI itself runs (.ci/run ->
# scripts/test.sh -> scripts/setup.sh), and the docs build is test_site_builds below.
NOT_HERE = {
    "scripts/main.sh": "sets up .venv and trains on the real data set: what a newcomer runs, not a test",
    "scripts/test.sh": "is how CI runs this very suite",
    "scripts/setup.sh": "is run by scripts/test.sh before this suite",
    ".venv/bin/python -m pip install": "installs packages: the set-up script's job",
    ".venv/bin/mkdocs build": "is test_site_builds",
}


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(lang, code) for lang, code in BLOCK.findall(page.read_text())]


def commands(code: str) -> list[str]:
    """A bash block's commands: comments dropped, continued lines joined."""
    lines, current = [], ""
    for line in code.splitlines():
        line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if current and not line.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [c for c in lines if c and not any(c.startswith(prefix) for prefix in NOT_HERE)]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Tiny MNIST, Fashion-MNIST and CIFAR-10 where cnnlab looks first ($CNNLAB_DATA), a `cnnlab` on PATH that is
    this checkout's, and a home of its own."""
    top = tmp_path_factory.mktemp("docs")
    data = top / "data"
    # as few training images as the pages' largest batch allows (512 for the MLP's recipe, of the 80% not held out
    # for validation): the time of the trainings they run goes with it; 300 test images for `attack --limit 200`
    make_mnist(data, n_train=800, n_test=300)
    make_mnist(data, n_train=800, n_test=300, folder="FashionMNIST/raw")
    make_cifar(data, per_batch=120)
    bin_dir = top / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "cnnlab"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cnnlab "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "CNNLAB_DATA": str(data),
        "HOME": str(top / "home"),
        "XDG_CACHE_HOME": str(top / "cache"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    return {"top": top, "env": env}


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_server(command: str, cwd: Path, env: dict) -> None:
    """`cnnlab serve` runs until stopped: start it as written (on a free port if 8000 is taken), fetch its page."""
    port = 8000
    if not port_free(port):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command += f" --port {port}"
    server = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for _ in range(1800):
            try:
                # http.client, not urllib: the suite's conftest cuts urllib off the network
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/")
                page = connection.getresponse()
                assert page.status == 200 and b"cnnlab" in page.read()
                return
            except OSError:
                assert server.poll() is None, f"{command!r} stopped: {server.stdout.read()}"
                time.sleep(0.1)
        raise AssertionError(f"{command!r} did not answer in 3 minutes")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(20)


def run_page(page: Path, world: dict) -> None:
    cwd = world["top"] / page.relative_to(ROOT).as_posix().replace("/", "_")
    cwd.mkdir(exist_ok=True)
    for lang, code in blocks(page):
        steps = commands(code) if lang == "bash" else [code]
        for step in steps:
            if lang == "python" and step.startswith("# file: "):  # a file the page asks the reader to write
                name, _, text = step.partition("\n")
                (cwd / name.removeprefix("# file: ").strip()).write_text(text)
                continue
            if lang == "bash" and re.match(r"cnnlab serve\b(?!.*--help)", step):
                run_server(step, cwd, world["env"])
                continue
            argv = ["bash", "-e", "-c", step] if lang == "bash" else [sys.executable, "-c", step]
            done = subprocess.run(argv, cwd=cwd, env=world["env"], capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{page.name}: {step!r} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run_as_written(page, world):
    run_page(page, world)


def test_every_page_with_code_is_run():
    """The pages the parametrized test finds: a fence spelled otherwise (```sh, ```py) would slip through."""
    for page in PAGES:
        for fence in re.findall(r"^```(\w*)", page.read_text(), re.M):
            assert fence in ("bash", "python", "text", ""), f"{page.name}: use ```bash or ```python, not ```{fence}"


def test_site_builds(tmp_path):
    """The documentation site builds offline with warnings as errors (the API reference from the docstrings)."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "cnnlab.api.train" in api and "cnnlab.api.load" in api
