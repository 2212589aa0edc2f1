"""The explorer's web app: the JSON endpoints of every panel under /api, the page itself from static/."""
from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from cnnlab.errors import CnnlabError
from cnnlab.serve import datasets, explore, lessons, monitor
from cnnlab.serve.payloads import MAX_UPLOAD_BYTES
from cnnlab.serve.store import NotFound, RunStore
from cnnlab.version import __version__

STATIC = Path(__file__).parent / "static"
MAX_REQUEST_BYTES = 4 * MAX_UPLOAD_BYTES // 3 + 1_000_000     # a base64 data URL of the largest upload, and room
log = logging.getLogger("cnnlab.serve")


def create_app(runs_dir="runs", models: dict | None = None, models_from: str = "") -> FastAPI:
    """`models`: learners' own nn.Module classes (or instances) by class name, given by the caller (`--trust`, a
    notebook), which runs of them open with; `models_from` says where they came from, for the page."""
    app = FastAPI(title="cnnlab explorer", version=__version__,
                  description="Every action of the explorer's page, as JSON. Runs are named by their folder "
                              "under RUNS_DIR; images travel as data URLs.")
    app.state.store = RunStore(runs_dir, models, models_from)

    @app.middleware("http")
    async def bounded(request: Request, call_next):
        # refused before the body is read: 100 concurrent huge uploads must not hold gigabytes
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_REQUEST_BYTES):
            return JSONResponse({"error": f"request of {size} bytes is over the {MAX_REQUEST_BYTES // 10 ** 6} MB "
                                          "limit; send a smaller image"}, status_code=413)
        return await call_next(request)
    for module in (explore, lessons, monitor, datasets):
        app.include_router(module.router, prefix="/api")

    @app.exception_handler(CnnlabError)
    async def refused(request: Request, error: CnnlabError):
        # bad input is the user's to fix: a 4xx with the one-line reason; the server goes on serving
        return JSONResponse({"error": str(error)}, status_code=404 if isinstance(error, NotFound) else 400)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError):
        # a missing field or a word where a number goes: the same one-line form as every other refusal
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}"
                             for e in error.errors())
        return JSONResponse({"error": f"malformed request ({problems})"}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({error.__class__.__name__}): {error}"}, status_code=500)

    app.mount("/", StaticFiles(directory=STATIC, html=True), name="page")
    return app


def serve(runs_dir="runs", host: str = "127.0.0.1", port: int = 8000, models: dict | None = None,
          models_from: str = "") -> None:
    """Run the explorer until Ctrl-C; refuse in one line a port that is taken."""
    import torch
    import uvicorn

    # one thread per forward pass: on a busy CPU two threads wait on each other (a drawing's p95 went 34 -> 200 ms)
    torch.set_num_threads(1)
    if not _is_loopback(host):
        print(f"warning: serving on {host}: anyone who can reach this machine on that network can use the explorer "
              "and see your runs", file=sys.stderr)
    with socket.socket() as probe:       # a taken port: one line now, rather than uvicorn's log after start-up
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CnnlabError(f"cannot serve on {host}:{port} ({error.strerror}); choose another --port") from None
    app = create_app(runs_dir, models, models_from)
    shown = f"[{host}]" if ":" in host else host
    print(f"cnnlab explorer: http://{shown}:{port}/  (runs from {app.state.store.root}; Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
