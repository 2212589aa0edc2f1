"""What the explorer checks before any endpoint runs (an ASGI middleware, so that it sees the body as it streams in):

- the Host header: only the names the server was started for. A page of another site whose name was rebound to
  127.0.0.1 (DNS rebinding) sends its own name as Host, so it is refused and can read nothing;
- the body's size: a Content-Length over the limit is refused before reading; a body without one (chunked) is
  counted as it arrives and refused once past the limit, never read whole;
- large bodies in flight: at most a few at once, so that concurrent uploads cannot hold gigabytes between them;
- OPTIONS on an API path: answered with the methods the path allows.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket

from starlette.exceptions import HTTPException

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
LARGE_BODY = 1_000_000  # a body larger than this waits its turn: at most LARGE_AT_ONCE of them at once
LARGE_AT_ONCE = 2


def host_name(host: str) -> str:
    """An address as it appears in a Host header: IPv6 in brackets, names in lower case."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host.lower()


def accepted_hosts(host: str) -> frozenset[str] | None:
    """The Host names a server listening on `host` answers. None: any IP address and this machine's names (a
    server open to the network is reached under addresses we cannot list; a rebound name is still refused)."""
    names = {*LOOPBACK_NAMES, host_name(host)}
    if host in WILDCARDS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def host_accepted(header: str, names: frozenset[str], any_address: bool) -> bool:
    """Whether a Host header ("name", "name:port", "[::1]:port") names one of `names` (any port)."""
    if header.startswith("["):
        end = header.find("]") + 1
        name, rest = header[:end], header[end:]
    else:
        name, _, port = header.partition(":")
        rest = ":" + port if _ else ""
    if not name or end_is_bad(rest):
        return False
    name = name.lower()
    if name in names:
        return True
    if any_address:  # an address literal cannot be rebound: only names can
        try:
            ipaddress.ip_address(name.strip("[]"))
            return True
        except ValueError:
            return False
    return False


def end_is_bad(rest: str) -> bool:
    """What follows the name in a Host header: nothing, or a colon and a port number."""
    return rest != "" and not (rest.startswith(":") and rest[1:].isdigit())


class Guard:
    def __init__(self, app, host: str, max_bytes: int):
        self.app = app
        self.names = accepted_hosts(host)
        self.any_address = host in WILDCARDS
        self.max_bytes = max_bytes
        self._large = None  # made in the server's event loop, on the first large body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        host = headers.get("host", "")
        if not host_accepted(host, self.names, self.any_address):
            return await answer(
                send,
                400,
                f"Host {host!r} is not one this server was started for "
                f"({', '.join(sorted(self.names))}); open it by one of those names",
            )
        size = headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > self.max_bytes):
            return await answer(send, 413, too_large(size, self.max_bytes))
        if scope["method"] == "OPTIONS" and scope["path"].startswith("/api/"):
            return await self.options(scope, send)
        large = "transfer-encoding" in headers or (size is not None and int(size) > LARGE_BODY)
        if not large:
            return await self.app(scope, self.counted(receive), send)
        if self._large is None:
            self._large = asyncio.Semaphore(LARGE_AT_ONCE)
        async with self._large:
            await self.app(scope, self.counted(receive), send)

    def counted(self, receive):
        """`receive`, refusing (413) the body once more than max_bytes of it have arrived."""
        seen = 0

        async def counting():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, too_large(f"more than {seen}", self.max_bytes))
            return message

        return counting

    async def options(self, scope, send):
        """204 with Allow: the methods the API's description gives the path; 404 when it has no such path."""
        methods = allowed_methods(scope["app"].openapi(), scope["path"])
        if not methods:
            return await answer(send, 404, f"no API endpoint at {scope['path']}")
        allow = ", ".join(sorted({*methods, "OPTIONS"}))
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]})
        await send({"type": "http.response.body", "body": b""})


def allowed_methods(openapi: dict, path: str) -> set[str]:
    """The methods of the OpenAPI paths that `path` matches ({name} stands for one path segment)."""
    found = set()
    for template, operations in openapi["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)), path):
            found |= {method.upper() for method in operations}
    return found


def too_large(size: str, limit: int) -> str:
    return f"request of {size} bytes is over the {limit // 10**6} MB limit; send a smaller image"


async def answer(send, status: int, error: str) -> None:
    """The explorer's one-line refusal, {"error": ...}, from outside the app."""
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
