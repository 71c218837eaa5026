"""The HTTP routes: ``POST /hl7v2`` (one message; the response body is its ACK) and ``POST /fhir``.

``/fhir`` takes a resource or a Bundle (``application/fhir+json``, ``application/json``) or
NDJSON (``application/fhir+ndjson``, ``application/x-ndjson``: one input per line) and answers
``202 Accepted`` with an OperationOutcome once every input is confirmed by the broker. The
durability rule is the MLLP one: success only after the confirm; ``503`` (with ``Retry-After``
and an ``AE`` ACK or a ``transient`` OperationOutcome) when not stored, so the client sends it
again; ``400``/``401``/``411``/``413``/``415`` when it can never be accepted as sent.

Bodies need a ``Content-Length`` no larger than ``max_bytes``, checked before reading (chunked
bodies are refused with ``411``). The server around these routes is ``httpd``.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message

import orjson

from connector.bus.base import Outgoing
from connector.bus.inputs import HL7_TYPES
from connector.bus.topology import Topology
from connector.ingress.accept import BadDocument, check_hl7, fhir_documents
from connector.ingress.ack import Header, Problem, build_ack, read_header
from connector.ingress.listener import AckIds, answer_for
from connector.ingress.metrics import IngressMetrics
from connector.ingress.publisher import Publisher, Stored, input_message
from connector.ingress.settings import ListenSettings

LOG = logging.getLogger("ivpush.ingress")
HL7_MEDIA = HL7_TYPES | {"text/plain"}
FHIR_JSON = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
FHIR_NDJSON = frozenset({"application/fhir+ndjson", "application/x-ndjson", "application/ndjson"})
ACK_TYPE = "x-application/hl7-v2+er7"
OUTCOME_TYPE = "application/fhir+json"
RETRY_AFTER = "5"
ROUTES = ("/hl7v2", "/fhir")
_NAME = "http"
# FHIR OperationOutcome issue codes by HTTP status.
_ISSUE = {400: "invalid", 401: "login", 404: "not-found", 405: "not-supported", 411: "required"}
_ISSUE |= {413: "too-costly", 415: "not-supported", 503: "transient"}


@dataclass(frozen=True)
class Reply:
    """A response: status, media type, body; ``close`` when the request body was not read."""

    status: int
    content_type: str
    body: bytes
    close: bool = False


def outcome(severity: str, code: str, diagnostics: str) -> bytes:
    """A FHIR OperationOutcome with one issue."""
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})


class HttpApp:
    """The two routes, apart from the server (see the module docstring)."""

    def __init__(
        self, settings: ListenSettings, publisher: Publisher, metrics: IngressMetrics, topology: Topology
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self.topology = topology
        self.ids = AckIds()
        self.in_flight = 0
        self.closing = False
        self._lock = threading.Lock()

    def before_body(self, path: str, headers: Message) -> Reply | None:
        """The answer decided before reading a body (route, token, length), or None to read it."""
        route = path.split("?", 1)[0]
        if route not in ROUTES:
            return Reply(404, "text/plain; charset=utf-8", b"not found: POST /hl7v2 or /fhir\n", close=True)
        if self.settings.token is not None and not _authorized(headers.get("Authorization"), self.settings.token):
            return self._refuse(route, 401, "unauthorized", "missing or wrong bearer token", close=True)
        length = headers.get("Content-Length", "")
        if headers.get("Transfer-Encoding") or not length.strip().isdigit():
            detail = "a Content-Length header is required (chunked bodies are not read)"
            return self._refuse(route, 411, "length_required", detail, close=True)
        if int(length) > self.settings.max_bytes:
            detail = f"body larger than {self.settings.max_bytes} bytes"
            return self._refuse(route, 413, "oversize_input", detail, close=True)
        return None

    def post(self, path: str, headers: Message, read: Callable[[int], bytes]) -> Reply | None:
        """Answer one POST (None: the client went away before sending its body)."""
        self.metrics.messages.labels(_NAME).inc()
        early = self.before_body(path, headers)
        if early is not None:
            return early
        length = int(headers.get("Content-Length", "0"))
        body = read(length)
        if len(body) < length:
            return None
        media = (headers.get_content_type() if headers.get("Content-Type") else "").lower()
        with self._lock:
            self.in_flight += 1
        try:
            if path.split("?", 1)[0] == "/hl7v2":
                return self._hl7(body, media)
            return self._fhir(body, media)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _hl7(self, body: bytes, media: str) -> Reply:
        if media not in HL7_MEDIA:
            detail = f"Content-Type must be one of {', '.join(sorted(HL7_MEDIA))}"
            return self._ack(body, Problem("AR", "unsupported_media_type", detail), 415)
        problem = check_hl7(body, self.settings.max_bytes)
        if problem is not None:
            return self._ack(body, problem, 400)
        problem = answer_for(self._store([input_message(body, "hl7", self.topology, self.settings.routing_key, _NAME)]))
        return self._ack(body, problem, 200 if problem is None else 503)

    def _fhir(self, body: bytes, media: str) -> Reply:
        if media not in FHIR_JSON | FHIR_NDJSON:
            detail = f"Content-Type must be one of {', '.join(sorted(FHIR_JSON | FHIR_NDJSON))}"
            return self._refuse("/fhir", 415, "unsupported_media_type", detail)
        try:
            documents = fhir_documents(body, ndjson=media in FHIR_NDJSON)
        except BadDocument as error:
            return self._refuse("/fhir", 400, error.code, error.detail)
        key = self.settings.routing_key
        stored = self._store([input_message(doc, "fhir", self.topology, key, _NAME) for doc in documents])
        if not stored.ok:
            return self._refuse("/fhir", 503, stored.reason, f"not stored: {stored.detail}; send it again later")
        self.metrics.answered(_NAME, "AA")
        text = f"stored {len(documents)} input(s) for coding"
        return Reply(202, OUTCOME_TYPE, outcome("information", "informational", text))

    def _store(self, messages: list[Outgoing]) -> Stored:
        if self.closing:
            return Stored(False, "stopping")
        future = self.publisher.submit(messages)
        try:
            return future.result(self.settings.confirm_timeout * 2 + 5)
        except TimeoutError:
            future.cancel()
            return Stored(False, "unconfirmed")

    def _ack(self, body: bytes, problem: Problem | None, status: int) -> Reply:
        code = "AA" if problem is None else problem.ack_code
        self.metrics.answered(_NAME, code, None if problem is None else problem.code)
        if problem is not None:
            LOG.warning("http /hl7v2: answered %s (%d): %s: %s", code, status, problem.code, problem.detail)
        now = datetime.now(UTC)
        header = read_header(body) if body else Header()
        return Reply(status, ACK_TYPE, build_ack(header, now, self.ids.next(now), problem))

    def _refuse(self, route: str, status: int, code: str, detail: str, close: bool = False) -> Reply:
        """An error answer in the route's own form (an ACK, or an OperationOutcome)."""
        if route == "/hl7v2":
            reply = self._ack(b"", Problem("AE" if status == 503 else "AR", code, detail), status)
            return Reply(reply.status, reply.content_type, reply.body, close)
        self.metrics.answered(_NAME, "AE" if status == 503 else "AR", code)
        LOG.warning("http %s: answered %d: %s: %s", route, status, code, detail)
        return Reply(status, OUTCOME_TYPE, outcome("error", _ISSUE.get(status, "processing"), detail), close)


def _authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
