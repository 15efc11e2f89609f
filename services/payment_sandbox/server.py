"""HTTP in front of the sandbox: authentication, limits, routing, JSON answers."""

import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from services.payment_sandbox import validation
from services.payment_sandbox.answers import Answer, error_answer, json_answer
from services.payment_sandbox.errors import (
    ApiError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)
from services.payment_sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# A too-large body up to this size is read and dropped before the 413, so the
# client, still sending, gets the answer instead of a reset connection.
MAX_DRAINED_BYTES = 1024 * 1024
# A client that stops sending mid-request frees its thread after this long.
SOCKET_TIMEOUT_SECONDS = 30.0
MAX_QUERY_FIELDS = 10
OBJECT_ID = r"(?P<id>[A-Za-z0-9_]{1,64})"


@dataclass(frozen=True)
class Request:
    path_id: str
    query: dict[str, list[str]]
    body: bytes
    idempotency_key: str | None


Handler = Callable[[Sandbox, Request], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handle: Handler
    public: bool = False


def _route(method: str, path: str, handle: Handler, public: bool = False) -> Route:
    return Route(method, re.compile(path), handle, public)


def _key(request: Request) -> str:
    return validation.idempotency_key(request.idempotency_key)


def _reference(request: Request) -> str:
    return validation.reference_query(request.query.get("reference"))


ROUTES = (
    _route("GET", "/healthz", lambda s, r: json_answer(200, {"status": "ok"}), public=True),
    _route(
        "POST",
        "/v1/charges",
        lambda s, r: s.create_charge(_key(r), validation.charge_request(r.body)),
    ),
    _route("GET", "/v1/charges", lambda s, r: s.charges_with_reference(_reference(r))),
    _route("GET", f"/v1/charges/{OBJECT_ID}", lambda s, r: s.charge(r.path_id)),
    _route(
        "POST",
        "/v1/transfers",
        lambda s, r: s.create_transfer(_key(r), validation.transfer_request(r.body)),
    ),
    _route("GET", "/v1/transfers", lambda s, r: s.transfers_with_reference(_reference(r))),
    _route("GET", f"/v1/transfers/{OBJECT_ID}", lambda s, r: s.transfer(r.path_id)),
    _route(
        "POST",
        f"/v1/sandbox/transfers/{OBJECT_ID}/arrive",
        lambda s, r: s.settle_transfer(r.path_id, arrived=True),
    ),
    _route(
        "POST",
        f"/v1/sandbox/transfers/{OBJECT_ID}/fail",
        lambda s, r: s.settle_transfer(r.path_id, arrived=False),
    ),
    _route(
        "POST",
        "/v1/sandbox/webhooks/mode",
        lambda s, r: s.set_webhook_mode(validation.webhook_mode(r.body)),
    ),
    _route("POST", "/v1/sandbox/webhooks/replay", lambda s, r: s.replay_webhooks()),
    _route("GET", "/v1/sandbox/events", lambda s, r: s.events()),
    _route("GET", "/v1/sandbox/charges", lambda s, r: s.all_charges()),
)


def find_route(method: str, path: str) -> tuple[Route, str] | None:
    """The route for a request and the object id in its path ("" when none)."""
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None and route.method == method:
            return route, match.groupdict().get("id") or ""
    return None


def is_authorized(header: str | None, api_key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    # Compared in constant time: the answer's timing must not leak the key.
    return scheme == "Bearer" and hmac.compare_digest(token.encode(), api_key.encode())


def parse_query(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise InvalidRequest("the query has too many parameters", "parameter_invalid") from None


class SandboxServer(ThreadingHTTPServer):
    """One thread per request, so a hanging charge does not hold up the others."""

    daemon_threads = True
    # Room for a burst of concurrent callers (socketserver's default is 5).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, api_key: str) -> None:
        super().__init__(address, JsonRequestHandler)
        self.sandbox = sandbox
        self.api_key = api_key

    @property
    def port(self) -> int:
        port: int = self.socket.getsockname()[1]
        return port


class JsonRequestHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    server_version = "WarmHousePaymentSandbox/1"
    timeout = SOCKET_TIMEOUT_SECONDS

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _serve(self, method: str) -> None:
        try:
            answer = self._answer(method)
        except ApiError as error:
            answer = error_answer(error)
        except Exception:
            log.exception("failed on %s", method)
            answer = error_answer(ApiError("the sandbox failed on this request"))
        self._write(answer)

    def _answer(self, method: str) -> Answer:
        body = self._body()
        url = urlsplit(self.path)
        found = find_route(method, url.path)
        is_public = found is not None and found[0].public
        # Before "no such endpoint": a caller without the key learns nothing.
        if not is_public and not is_authorized(
            self.headers.get("Authorization"), self.server.api_key
        ):
            raise Unauthenticated("give the API key as Authorization: Bearer <key>")
        if found is None:
            raise NotFound("no such endpoint", "endpoint_missing")
        route, path_id = found
        request = Request(
            path_id=path_id,
            query=parse_query(url.query),
            body=body,
            idempotency_key=self.headers.get("Idempotency-Key"),
        )
        return route.handle(self.server.sandbox, request)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise InvalidRequest("send the body with a Content-Length", "body_invalid")
        header = self.headers.get("Content-Length") or "0"
        if not header.isdigit():
            raise InvalidRequest("Content-Length must be a number of bytes", "body_invalid")
        length = int(header)
        if length > MAX_BODY_BYTES:
            if length <= MAX_DRAINED_BYTES:
                self.rfile.read(length)
            self.close_connection = True
            raise PayloadTooLarge(
                f"the body must be at most {MAX_BODY_BYTES} bytes", "body_too_large"
            )
        return self.rfile.read(length)

    def _write(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (TimeoutError, ConnectionError):
            # The caller gave up (a timed-out tok_hang, say); what it asked for still happened.
            log.info("the caller left before its answer")
