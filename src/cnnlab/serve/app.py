"""The explorer's web app: the JSON endpoints of every panel under /api, the page itself from static/."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnlab.errors import CnnlabError
from cnnlab.serve import datasets, explore, lessons, monitor
from cnnlab.serve.guard import Guard
from cnnlab.serve.payloads import MAX_UPLOAD_BYTES, REFUSALS, unmap_large_blocks
from cnnlab.serve.store import NotFound, RunStore
from cnnlab.version import __version__

STATIC = Path(__file__).parent / "static"
MAX_REQUEST_BYTES = 4 * MAX_UPLOAD_BYTES // 3 + 1_000_000  # a base64 data URL of the largest upload, and room
log = logging.getLogger("cnnlab.serve")


def create_app(
    runs_dir="runs", host: str = "127.0.0.1", models: dict | None = None, models_from: str = "", pretrained=()
) -> FastAPI:
    """The app over the runs in `runs_dir`, answering only requests addressed to `host` or to this machine by its
    loopback names (see serve.guard). `models`: learners' own nn.Module classes (or instances) by class name, given
    by the caller (`--trust`, a notebook), which runs of them open with; `models_from` says where they came from.
    `pretrained`: PretrainedPredictors listed before the runs (`cnnlab serve --model resnet18 --weights imagenet`)."""
    app = FastAPI(
        title="cnnlab explorer",
        version=__version__,
        description="Every action of the explorer's page, as JSON. Runs are named by their folder "
        "under RUNS_DIR; images travel as data URLs. Every refusal is one line: "
        '{"error": "..."}.',
        responses=REFUSALS,
    )
    app.state.store = RunStore(runs_dir, models, models_from, pretrained)
    app.add_middleware(Guard, host=host, max_bytes=MAX_REQUEST_BYTES)
    for module in (explore, lessons, monitor, datasets):
        app.include_router(module.router, prefix="/api")

    @app.exception_handler(CnnlabError)
    async def refused(request: Request, error: CnnlabError):
        # bad input is the user's to fix: a 4xx with the one-line reason; the server goes on serving
        return JSONResponse({"error": str(error)}, status_code=404 if isinstance(error, NotFound) else 400)

    @app.exception_handler(StarletteHTTPException)
    async def refused_by_http(request: Request, error: StarletteHTTPException):
        # the guard's 413 while a body streams in, a 404 or 405 of the router: the same one-line form
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError):
        # a missing field or a word where a number goes: the same one-line form as every other refusal
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": f"malformed request ({problems})"}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({error.__class__.__name__}): {error}"}, status_code=500)

    app.mount("/", StaticFiles(directory=STATIC, html=True), name="page")
    return app


def serve(
    runs_dir=None,
    host: str = "127.0.0.1",
    port: int = 8000,
    models: dict | None = None,
    models_from: str = "",
    pretrained=(),
) -> None:
    """Run the explorer until Ctrl-C over `runs_dir` (None: ./runs, which may not exist yet: the lessons need no
    run). The port is bound before the address is printed: of two servers started together on one port, the
    second is refused in one line (no check-then-bind race)."""
    import torch
    import uvicorn

    if runs_dir is not None or Path("runs").exists():
        check_runs_dir(runs_dir or "runs")
    runs_dir = runs_dir or "runs"
    listening = bound_socket(host, port)
    unmap_large_blocks()
    # one thread per forward pass: on a busy CPU two threads wait on each other (a drawing's p95 went 34 -> 200 ms)
    torch.set_num_threads(1)
    if not _is_loopback(host):
        print(
            f"warning: serving on {host}: anyone who can reach this machine on that network can use the explorer "
            "and see your runs",
            file=sys.stderr,
        )
    app = create_app(runs_dir, host=host, models=models, models_from=models_from, pretrained=pretrained)
    shown = f"[{host}]" if ":" in host else host
    print(f"cnnlab explorer: http://{shown}:{port}/  (runs from {app.state.store.root}; Ctrl-C stops it)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listening])


def check_runs_dir(runs_dir) -> None:
    """A folder, or nothing yet (runs trained later appear); never a file or a path that cannot be a folder."""
    path = Path(runs_dir)
    if path.exists() and not path.is_dir():
        raise CnnlabError(f"{path} is a file, not a folder of runs; give the folder that holds your run folders")
    if not path.exists():
        raise CnnlabError(
            f"{path}: no such folder; give the folder that holds your run folders (cnnlab train "
            "writes them under ./runs), or train a model first"
        )


def bound_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or one line saying why not."""
    if not 0 <= port <= 65535:
        raise CnnlabError(f"--port {port} is not a port; choose one from 1 to 65535 (default 8000)")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as error:
        raise CnnlabError(f"--host {host!r} is not an address of this machine ({error}); use 127.0.0.1") from None
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT by our last run
        listening.bind((host, port))
        listening.listen(2048)
    except OSError as error:
        listening.close()
        taken = " by another program" if error.errno == errno.EADDRINUSE else ""
        raise CnnlabError(f"cannot serve on {host}:{port} ({error.strerror}{taken}); choose another --port") from None
    return listening


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
