"""The explorer is closed to other sites and bounded in what a request can make it hold (issue 30): DNS rebinding
(a Host header it was not started for), memory under a flood of uploads, bodies without a length, and
`cnnlab serve`'s own checks of its port and folder."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import select
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import serving
from fastapi.testclient import TestClient

from cnnlab.cli import main
from cnnlab.serve import create_app
from cnnlab.serve.app import MAX_REQUEST_BYTES

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def no_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("no-runs")


# ---------------------------------------------------------------- DNS rebinding


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1", "http://127.0.0.1:8000", "http://localhost:8000", "http://LOCALHOST", "http://[::1]:8000"],
)
def test_the_loopback_names_are_answered(no_runs, base):
    answer = TestClient(create_app(no_runs), base_url=base).get("/api/explore/runs")
    assert answer.status_code == 200 and answer.json() == []


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "testserver",
        "",
        "localhost:80:80",
        "[::1",
        "localhost:http",
    ],
)
def test_a_host_it_was_not_started_for_is_refused_in_one_line(no_runs, host):
    client = TestClient(create_app(no_runs), base_url="http://127.0.0.1")
    for method, path in (("GET", "/api/explore/runs"), ("POST", "/api/monitor/compare"), ("GET", "/")):
        answer = client.request(method, path, headers={"host": host}, json={"runs": ["x"]})
        assert answer.status_code == 400, (host, path)
        error = answer.json()["error"]
        assert "\n" not in error and "not one this server was started for" in error
        assert str(no_runs) not in answer.text  # nothing about the runs leaks


def test_the_host_given_to_serve_is_answered_too(no_runs):
    app = create_app(no_runs, host="192.168.7.9")
    assert TestClient(app, base_url="http://192.168.7.9:8000").get("/api/explore/runs").status_code == 200
    assert TestClient(app, base_url="http://localhost:8000").get("/api/explore/runs").status_code == 200
    assert TestClient(app, base_url="http://192.168.7.10:8000").get("/api/explore/runs").status_code == 400


def test_a_server_open_to_the_network_answers_addresses_but_not_other_names(no_runs):
    app = create_app(no_runs, host="0.0.0.0")
    for base in ("http://10.1.2.3:8000", "http://[fe80::1]:8000", f"http://{socket.gethostname()}:8000"):
        assert TestClient(app, base_url=base).get("/api/explore/runs").status_code == 200, base
    assert TestClient(app, base_url="http://evil.example:8000").get("/api/explore/runs").status_code == 400


def raw_get(url: str, host: str) -> tuple[int, bytes]:
    """GET /api/explore/runs from a real server with this Host header, as a rebound page's request carries it."""
    import http.client

    port = int(url.rstrip("/").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest("GET", "/api/explore/runs", skip_host=True)
    connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    status, body = response.status, response.read()
    connection.close()
    return status, body


def test_a_real_server_refuses_a_rebound_name(no_runs):
    with serving(no_runs) as url:
        port = url.rstrip("/").rsplit(":", 1)[1]
        status, body = raw_get(url, f"evil.example:{port}")
        assert status == 400 and b"not one this server was started for" in body and body.count(b"\n") == 0
        assert raw_get(url, f"localhost:{port}") == (200, b"[]")
        assert raw_get(url, f"127.0.0.1:{port}")[0] == 200


# ---------------------------------------------------------------- bodies without a length


async def asgi_post(app, chunks, headers) -> tuple[int, dict, int]:
    """POST /api/monitor/compare straight to the ASGI app with a body of `chunks` (a generator, read as the app
    asks); returns (status, answer, bytes the app pulled from the generator)."""
    pulled, sent = 0, []

    async def receive():
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/monitor/compare",
        "raw_path": b"/api/monitor/compare",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(no_runs):
    app = create_app(no_runs)
    megabyte = b" " * 2**20
    endless = (megabyte for _ in range(10_000))  # 10 GB, if it were read whole
    status, answer, pulled = asyncio.run(asgi_post(app, endless, [(b"transfer-encoding", b"chunked")]))
    assert status == 413 and "limit" in answer["error"] and "\n" not in answer["error"]
    assert MAX_REQUEST_BYTES < pulled <= MAX_REQUEST_BYTES + 2**20  # stopped at the first megabyte past it
    # a chunked body under the limit is read and answered as usual
    small = iter([b'{"runs": [', b'"nothing"]}'])
    status, answer, _ = asyncio.run(asgi_post(app, small, [(b"transfer-encoding", b"chunked")]))
    assert status == 400 and "no run named 'nothing'" in answer["error"]


def test_a_lying_content_length_is_no_way_round_the_limit(no_runs):
    app = create_app(no_runs)
    megabyte = b" " * 2**20
    status, _, pulled = asyncio.run(asgi_post(app, (megabyte for _ in range(10_000)), [(b"content-length", b"100")]))
    assert status == 413 and pulled <= MAX_REQUEST_BYTES + 2**20


def test_a_real_server_stops_reading_a_huge_chunked_body(no_runs):
    """Over a socket, as curl would send it: the answer 413 comes while the client is still sending, long before
    the 200 MB it offers."""
    with serving(no_runs) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(
                b"POST /api/monitor/compare HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n%s\r\n" % (2**20, b" " * 2**20)
            sent, answer = 0, b""
            while sent < 200:
                readable, _, _ = select.select([connection], [connection], [], 10)
                if readable:
                    answer = connection.recv(65536)
                    break
                try:
                    connection.sendall(chunk)
                except OSError:  # the server closed while we sent: its answer is waiting
                    answer = connection.recv(65536)
                    break
                sent += 1
            while b"limit" not in answer and (more := connection.recv(65536)):
                answer += more  # the body may come after the head
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 60  # ~28 MB is the limit; the rest was never read
        assert b"MB limit" in answer


# ---------------------------------------------------------------- memory under a flood of uploads


def big_png(side: int) -> str:
    """A side x side PNG of a few hundred KB: small to send, side^2 x 4 bytes once decoded."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (side, side), (20, 30, 40))
    ImageDraw.Draw(picture).ellipse((side // 4, side // 4, side // 2, side // 2), fill=(200, 80, 90))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def start_serve(runs: Path, port: int, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "serve", str(runs), "--port", str(port)], env=env, text=True, **popen
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) // 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc (Linux)")
def test_a_flood_of_large_uploads_does_not_take_the_memory(no_runs):
    """Six 64-Mpx PNGs (~256 MB each once decoded, twice over while PIL copies it) sent three at a time to a real
    `cnnlab serve`: decoded one at a time and shrunk at once, the server's peak grows by well under three
    decodes' worth. (bench/serve_upload_flood.py is the full flood of issue 30.)"""
    import http.client

    port = free_port()
    server = start_serve(no_runs, port, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "cnnlab explorer" in server.stdout.readline()  # printed once the port is bound
        body = json.dumps({"image": big_png(7990)}).encode()

        def upload(_):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            connection.request("POST", "/api/pictures", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            reply = json.loads(answer.read())
            connection.close()
            return answer.status, reply

        assert upload(0)[0] == 200
        before = peak_mb(server.pid)  # one decode's worth, and start-up
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(upload, range(6)))
        assert [status for status, _ in answers] == [200] * 6
        assert answers[0][1]["width"] == 1024 and answers[0][1]["original"] == [7990, 7990]
        assert peak_mb(server.pid) - before < 400, (before, peak_mb(server.pid))
    finally:
        server.terminate()
        server.wait(30)


# ---------------------------------------------------------------- cnnlab serve's own checks


@pytest.mark.parametrize("port", ["70000", "-1", str(10**30), "80.5", "eighty"])
def test_a_port_that_is_no_port_is_one_line(capsys, port):
    with pytest.raises(SystemExit) as refused:  # argparse's refusal: a usage error
        main(["serve", f"--port={port}"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err and "1 to 65535" in err and "Traceback" not in err


def test_a_missing_folder_or_a_file_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("not runs")
    for given, says in (("missing", "no such folder"), ("a-file", "is a file, not a folder of runs")):
        assert main(["serve", str(tmp_path / given), "--port", str(free_port())]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err
    assert not (tmp_path / "missing").exists()


def test_two_servers_started_together_on_one_port_one_wins_the_other_says_so(no_runs):
    port = free_port()
    servers = [start_serve(no_runs, port, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while sum(s.poll() is not None for s in servers) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        losers = [s for s in servers if s.poll() is not None]
        assert len(losers) == 1
        (loser,) = losers
        out, err = loser.communicate(timeout=30)
        assert loser.returncode == 2 and out == ""  # it never said it was serving
        assert err.count("\n") == 1 and f"cannot serve on 127.0.0.1:{port}" in err and "choose another --port" in err
        winner = next(s for s in servers if s is not loser)
        assert winner.poll() is None and "cnnlab explorer" in winner.stdout.readline()
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(30)
