"""A fault-injecting HTTP proxy in front of the S3 endpoint (moto's server): boto3 talks to it as to S3.

Each request is forwarded unchanged unless a :class:`Fault` matches it (method, a regular expression on the
path and query, optionally a header it must carry); the fault then acts instead, ``times`` times (None:
every time):

- ``reset``: forward the request, send the real status and headers and half the body, then reset the
  connection (``SO_LINGER`` 0): a connection dropped mid-body;
- ``slowdown``: answer ``503 SlowDown`` with S3's XML error, as S3 does when it throttles;
- ``stall``: wait ``seconds`` (beyond the client's read timeout) before answering, then drop the connection.

The proxy is a real socket server on loopback, so the faults reach boto3 through urllib3 exactly as a network
would deliver them, and boto3's own retries (``ASTROSPECT_S3_*``) meet them.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Fault:
    action: str  # reset | slowdown | stall
    method: str
    path: str  # a regular expression searched in the path and query
    header: str | None = None  # a request header that must be present (e.g. If-None-Match)
    times: int | None = None  # how many requests it hits; None: all
    seconds: float = 0.0  # stall only
    hits: int = field(default=0)

    def matches(self, method: str, target: str, headers: http.client.HTTPMessage) -> bool:
        if method != self.method or re.search(self.path, target) is None:
            return False
        if self.header is not None and self.header not in headers:
            return False
        return self.times is None or self.hits < self.times


class QuietServer(ThreadingHTTPServer):
    """A client gone after a reset or a stall is what the proxy meant to happen: nothing to report."""

    def handle_error(self, request: object, client_address: object) -> None:
        return


class FaultProxy:
    """The proxy: ``url`` is what AWS_ENDPOINT_URL points at; ``faults`` is the list it consults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815 - http.server's names

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults = list(faults)

    def clear(self) -> None:
        self.inject()

    def hits(self) -> dict[str, int]:
        with self.lock:
            return {f"{fault.action} {fault.method} {fault.path}": fault.hits for fault in self.faults}

    def _fault_for(self, handler: BaseHTTPRequestHandler) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(handler.command, handler.path, handler.headers):
                    fault.hits += 1
                    return fault
        return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = _request_body(handler)
        fault = self._fault_for(handler)
        if fault is not None and fault.action == "slowdown":
            handler.send_response(503, "Slow Down")
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(SLOWDOWN_BODY)))
            handler.end_headers()
            handler.wfile.write(SLOWDOWN_BODY)
            return
        if fault is not None and fault.action == "stall":
            time.sleep(fault.seconds)
            _reset(handler)
            return
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            if "transfer-encoding" in {k.lower() for k in handler.headers}:
                headers["Content-Length"] = str(len(body))
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        handler.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command == "HEAD":
            return
        if fault is not None and fault.action == "reset" and payload:
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            _reset(handler)
            return
        handler.wfile.write(payload)


def _request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body, de-chunked when it came chunked (boto3's streaming uploads)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP reset, not a clean close."""
    connection: socket.socket = handler.connection
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    connection.close()
