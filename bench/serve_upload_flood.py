"""How much memory can uploads make the explorer hold? Issue 30: 20 uploads of a 186 KB PNG of 7990x7990 (under the
64-megapixel limit), 10 at a time, took the server to 5.5 GB peak RSS. The goal: no mix of concurrent requests
takes the server past ~1.5 GB.

- Run: one tiny epoch of mlp on 512 random MNIST-shaped images (memory needs no accuracy).
- Server: a real `cnnlab serve RUNS --port P` in its own process, as a user starts it.
- Flood: `--uploads` requests, `--concurrent` at a time, each on its own connection, of a PNG of `--side` x `--side`
  (a few shapes on a flat ground: it compresses to a few hundred KB but decodes to side^2 x 4 bytes), sent to each
  endpoint that decodes an image (look, attribution, the kernel playground's pictures); then the same number of
  requests with the largest body the server takes (a JPEG-sized blob of noise, 20 MB), also concurrently.
- Reported: the server's peak resident memory (VmHWM from /proc/PID/status) after start-up and one small request,
  and after each flood; its resident memory (VmRSS) 3 s after the last flood; the answers' status codes.

    .venv/bin/python bench/serve_upload_flood.py [--uploads 20] [--concurrent 10] [--side 7990] [--limit-mb 1500]

Exits 1 when the peak passes `--limit-mb`. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch


def make_run(root: Path) -> str:
    """A run folder of mlp after one epoch on 512 random MNIST-shaped images."""
    from cnnlab.data.datasets import Dataset, ImageSet
    from cnnlab.training.config import make_config
    from cnnlab.training.loop import train

    rng = np.random.default_rng(0)

    def images(n):
        return ImageSet(
            torch.from_numpy(rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)),
            torch.from_numpy(rng.integers(0, 10, n)),
        )

    data = Dataset("mnist", [str(k) for k in range(10)], images(512), images(128), "random")
    train(
        make_config("mlp", "mnist", epochs=1, batch_size=64, precision="fp32"),
        root / "mlp",
        data=data,
        progress=False,
        log=lambda line: None,
    )
    return "mlp"


def big_png(side: int) -> str:
    """A data URL of a side x side RGB PNG that compresses well: small to send, large to decode."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (side, side), (20, 30, 40))
    draw = ImageDraw.Draw(picture)
    for k in range(12):
        x, y = (k * 613) % side, (k * 1237) % side
        draw.ellipse((x, y, x + side // 6, y + side // 6), fill=(200, 40 + 15 * k, 90))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=9)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def start_server(runs: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "serve", str(runs), "--port", str(port)], stdout=subprocess.DEVNULL
    )
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the server process ended before it answered") from None
            time.sleep(0.05)


def memory(pid: int) -> dict[str, int]:
    """VmHWM (peak) and VmRSS (now) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0]) // 1024
    return found


def post(port: int, path: str, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError as error:  # the server may close a refused upload's connection early
        return error.__class__.__name__
    finally:
        connection.close()


def flood(port: int, path: str, body: bytes, uploads: int, concurrent: int) -> Counter:
    with ThreadPoolExecutor(concurrent) as pool:
        return Counter(pool.map(lambda _: post(port, path, body), range(uploads)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--side", type=int, default=7990)
    parser.add_argument("--limit-mb", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        run = make_run(runs)
        image = big_png(args.side)
        print(f"upload: a {args.side}x{args.side} PNG of {len(image) * 3 // 4 / 1e3:.0f} KB")
        process, port = start_server(runs)
        try:
            small = json.dumps({"run": run, "image": big_png(64)}).encode()
            assert post(port, "/api/explore/look", small) == 200
            print(f"after start-up and one small look: {memory(process.pid)}")
            floods = [
                ("/api/explore/look", {"run": run, "image": image}),
                ("/api/explore/attribution", {"run": run, "image": image, "target": 0, "method": "saliency"}),
                ("/api/pictures", {"image": image}),
            ]
            for path, payload in floods:
                answers = flood(port, path, json.dumps(payload).encode(), args.uploads, args.concurrent)
                print(f"{path}: {dict(answers)}; server {memory(process.pid)}")
            noise = base64.b64encode(os.urandom(20_000_000 - 100_000)).decode()
            answers = flood(
                port,
                "/api/explore/look",
                json.dumps({"run": run, "image": "data:image/jpeg;base64," + noise}).encode(),
                args.uploads,
                args.concurrent,
            )
            print(f"20 MB bodies of noise: {dict(answers)}; server {memory(process.pid)}")
            time.sleep(3)
            final = memory(process.pid)
            print(f"3 s later: {final}")
        finally:
            process.terminate()
            process.wait(30)
    print(f"peak resident memory of the server: {final['VmHWM']} MB (limit {args.limit_mb} MB)")
    if final["VmHWM"] > args.limit_mb:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
