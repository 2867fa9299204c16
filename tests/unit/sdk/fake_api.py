"""A real HTTP server (stdlib, in a thread) standing in for the TruLayer API in SDK unit tests:
it records what the SDK sends and answers with the statuses a test scripts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, Any], dict[str, str]]


class FakeApi:
    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        # Decides each answer from (path, body); default: 201 for batches and feedback.
        self.answer: Callable[[str, Any], Reply] = lambda path, body: (201, {}, {})

    def traces(self) -> list[dict[str, Any]]:
        with self.lock:
            return [t for path, body in self.requests if path == "/v1/ingest/batch" for t in body["traces"]]

    def batches(self) -> list[list[dict[str, Any]]]:
        with self.lock:
            return [body["traces"] for path, body in self.requests if path == "/v1/ingest/batch"]


@contextmanager
def fake_api() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer, headers = api.answer(self.path, body)
            with api.lock:
                api.requests.append((self.path, body))
            data = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
