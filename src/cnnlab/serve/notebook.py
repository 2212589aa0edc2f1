"""The explorer inside a notebook's own process: `cnnlab.explore(run)` or `run.explore()`.

Served from the kernel itself, on a free port of this machine, so a network class defined in the notebook is the
code the page runs (nothing is imported from the run folder). In Jupyter the returned object shows the page inline
(an iframe) with a link to open it in a tab. One explorer per process: starting another, or re-running the cell,
stops the previous one first, and `.stop()` (or the end of the kernel) closes the server and frees its port.
"""

from __future__ import annotations

import html
import socket
import threading
import time
from pathlib import Path

from torch import nn

from cnnlab.errors import CnnlabError

_running: list[Explorer] = []  # at most one: the explorer this process serves now


class Explorer:
    """A running explorer: `.url`, `.stop()`; displayed in Jupyter as the page itself."""

    def __init__(self, runs_dir: Path, models: dict, port: int = 0, height: int = 760):
        import uvicorn

        from cnnlab.serve.app import create_app

        self.runs_dir, self.height = runs_dir, height
        self._socket = socket.socket()
        try:
            self._socket.bind(("127.0.0.1", port))
        except OSError as error:
            self._socket.close()
            raise CnnlabError(
                f"cannot serve on 127.0.0.1:{port} ({error.strerror}); leave port= out for a free one"
            ) from None
        self.port = self._socket.getsockname()[1]
        app = create_app(runs_dir, models=models, models_from="this notebook's code")
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            daemon=True,
            name=f"cnnlab-explorer-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise CnnlabError(f"the explorer did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/#explore"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Close the server and free its port (waits for the requests in progress)."""
        self._server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._socket.close()
        if self in _running:
            _running.remove(self)

    def __repr__(self) -> str:
        state = "serving" if self.running else "stopped"
        return f"cnnlab explorer {state} at {self.url} (runs from {self.runs_dir}); .stop() ends it"

    def _repr_html_(self) -> str:
        if not self.running:
            return html.escape(repr(self))
        url = html.escape(self.url)
        return (
            f'<p><a href="{url}" target="_blank">Open the explorer in a new tab</a> ({url}; runs from '
            f"{html.escape(str(self.runs_dir))}; <code>.stop()</code> ends it)</p>"
            f'<iframe src="{url}" width="100%" height="{self.height}" style="border:1px solid #ccc"></iframe>'
        )


def explore(target="runs", model=None, port: int = 0, height: int = 760) -> Explorer:
    """Serve the explorer on `target`, a run (`cnnlab.load`/`train`'s), a run folder or a folder of run folders,
    from this process. `model`: your own network's class (or instance), or a list of them, for runs of it; a run
    trained or loaded with one brings its own. Stops the explorer this process served before."""
    models = {}
    for given in _as_list(model) + _as_list(getattr(target, "model", None)):
        cls = given if isinstance(given, type) else type(given)
        if not (isinstance(given, nn.Module) or issubclass(cls, nn.Module)):
            raise CnnlabError(f"model= takes nn.Module classes or instances; got {cls.__name__}")
        models.setdefault(cls.__qualname__, given)
    folder = Path(getattr(target, "folder", target))
    if not folder.is_dir():
        raise CnnlabError(f"{folder}: no such folder; give a run, a run folder or a folder of runs")
    runs_dir = folder.parent if (folder / "run.json").is_file() else folder
    for previous in list(_running):
        previous.stop()
    explorer = Explorer(runs_dir.resolve(), models, port, height)
    _running.append(explorer)
    return explorer


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
