"""A real HTTP server on 127.0.0.1 for tests: each route answers from a function of the
request; every request is recorded (path, query, headers)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: object = None  # JSON-encoded unless bytes/str
    delay: float = 0.0


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    method: str = "GET"

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Server:
    url: str
    routes: dict[str, Callable[[Request], Reply]]
    requests: list[Request] = field(default_factory=list)


@contextlib.contextmanager
def http_server(routes: dict[str, Callable[[Request], Reply]]) -> Iterator[Server]:
    state = Server("", routes)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer("POST", self.rfile.read(length) if length else b"")

        def do_GET(self) -> None:
            self._answer("GET", b"")

        def _answer(self, method: str, body: bytes) -> None:
            parts = urlsplit(self.path)
            req = Request(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                          {k.lower(): v for k, v in self.headers.items()}, body, method)
            state.requests.append(req)
            route = state.routes.get(parts.path)
            reply = route(req) if route else Reply(404, {"error": "no route"})
            if reply.delay:
                time.sleep(reply.delay)
            payload = reply.body
            data = (payload if isinstance(payload, bytes) else payload.encode()
                    if isinstance(payload, str) else json.dumps(payload).encode())
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
