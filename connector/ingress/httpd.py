"""The HTTP listener's server: the standard library's ``ThreadingHTTPServer`` around ``http_app``.

A thread per connection (HTTP/1.1 keep-alive): a handler blocks on the publisher's future,
which threads do simply, and engines hold few connections. TLS, when configured, is negotiated
in the connection's own thread (a slow handshake never holds up the accepting thread); a
connection silent for ``idle_timeout`` is closed; above ``max_connections`` a new one is closed
at once. No access log: the routes log their refusals (codes only).
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connector.ingress.http_app import RETRY_AFTER, ROUTES, HttpApp, Reply

LOG = logging.getLogger("ivpush.ingress")
_NAME = "http"
POLL = 0.1  # seconds between the accept loop's looks at a stop request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ivpush"
    app: HttpApp

    def do_POST(self) -> None:
        reply = self.app.post(self.path, self.headers, self.rfile.read)
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    def handle_expect_100(self) -> bool:
        """Refuse before the body is sent (token, length) instead of inviting it."""
        early = self.app.before_body(self.path, self.headers)
        if early is None:
            return super().handle_expect_100()
        self.app.metrics.messages.labels(_NAME).inc()
        self._send(early)
        return False

    def _other(self) -> None:
        known = self.path.split("?", 1)[0] in ROUTES
        status, text = (405, b"use POST\n") if known else (404, b"not found: POST /hl7v2 or /fhir\n")
        self._send(Reply(status, "text/plain; charset=utf-8", text, close=True), allow=known)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other

    def _send(self, reply: Reply, allow: bool = False) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.status == 503:
            self.send_header("Retry-After", RETRY_AFTER)
        if reply.status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="ivpush"')
        if allow:
            self.send_header("Allow", "POST")
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log (the routes log refusals with codes only)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections never hold up a stop

    def __init__(self, address: tuple[str, int], handler: type[_Handler], app: HttpApp) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.active = 0
        self._count = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """No traceback (it could quote a request): the error's kind only; the connection is closed."""
        error = sys.exc_info()[1]
        LOG.error("http: closing a connection after an unexpected %s", error.__class__.__name__)

    def process_request(self, request: Any, client_address: Any) -> None:
        metrics = self.app.metrics
        with self._count:
            full = self.active >= self.app.settings.max_connections
            if not full:
                self.active += 1
        if full:
            metrics.refused.labels(_NAME).inc()
            LOG.warning("http: %d connections open: closing a new one", self.active)
            self.shutdown_request(request)
            return
        metrics.connections.labels(_NAME).inc()
        metrics.open_connections.labels(_NAME).inc()
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count:
                self.active -= 1
            self.app.metrics.open_connections.labels(_NAME).dec()

    def finish_request(self, request: Any, client_address: Any) -> None:
        settings = self.app.settings
        request.settimeout(settings.idle_timeout)
        if settings.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            secure = settings.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            LOG.info("http: TLS handshake failed: %s", error.__class__.__name__)
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()


class HttpListener:
    """Serves ``app`` on its settings' HTTP address from a background thread."""

    def __init__(self, app: HttpApp) -> None:
        assert app.settings.http is not None
        self.app = app
        handler = type("Handler", (_Handler,), {"app": app, "timeout": app.settings.idle_timeout})
        address = app.settings.http
        self._server = _Server((address.host, address.port), handler, app)  # OSError: cannot bind
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL,), name="ivpush-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def start(self) -> HttpListener:
        """Accept connections in the background."""
        self._thread.start()
        return self

    def stop(self, deadline: float) -> None:
        """Stop accepting, let the requests in hand finish (up to ``deadline`` seconds), release the port."""
        self.app.closing = True
        self._server.shutdown()
        until = time.monotonic() + deadline
        while self.app.in_flight and time.monotonic() < until:
            time.sleep(0.02)
        self._server.server_close()
        self._thread.join(5)
