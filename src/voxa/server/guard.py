"""Who may talk to the server at all, checked before any route runs (HTTP and WebSocket).

* **Host** (DNS rebinding): a page on ``evil.example`` whose name is made to resolve to
  127.0.0.1 reaches a loopback server with ``Host: evil.example``. Requests are answered only
  when their Host header names the server: its loopback names and the bound address, plus
  ``allowed_hosts`` (``--allowed-host``, ``VOXA_ALLOWED_HOSTS``; ``*`` for any). A wildcard bind
  (``0.0.0.0``) checks nothing unless names are given: it needs an API key anyway.
* **Origin** (cross-site requests): a browser sends ``Origin`` with WebSocket handshakes and
  with POSTs. Those are accepted only from the server's own pages (same host and port) or an
  origin in ``allowed_origins`` (``--allowed-origin``, ``VOXA_ALLOWED_ORIGINS``; ``*`` for any).
  Clients that are not browsers send no Origin and are not affected.

* **Body size**: a body declared larger than ``max_upload_mb`` plus 1 MB (for the other form
  fields) is refused before it is read; one sent in chunks is cut off as it passes the limit,
  before the form parser spools it to disk. (FastAPI's own ``max_body_size`` would do the same
  but answers in plain text, and its middleware sits outside this one.)

Refusals use OpenAI's error shape: 400 ``invalid_host``, 403 ``origin_not_allowed``, 413
``request_too_large``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.websockets import WebSocket

from .errors import respond

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def max_body_bytes(config) -> int:
    """The largest request body: an upload at the limit plus 1 MB for the other form fields."""
    return int((config.max_upload_mb + 1) * 1024 * 1024)


def host_name(host: str) -> str:
    """``Host`` header value without its port, lower case (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: the Host and Origin checks above."""

    def __init__(self, app, config):
        self.app, self.config = app, config
        self.names = config.host_names()
        self.origins = set(config.allowed_origins)
        self.max_body = max_body_bytes(config)

    def problem(self, scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.names is not None and host_name(host) not in self.names:
            return 400, (f"this server does not answer to the host name {host_name(host)[:100]!r}; the operator can "
                         "allow it with --allowed-host (VOXA_ALLOWED_HOSTS)"), "invalid_host"
        origin = headers.get("origin")
        if origin is None or (scope["type"] == "http" and scope.get("method") in SAFE_METHODS):
            return None
        if "*" in self.origins or origin.lower().rstrip("/") in self.origins:
            return None
        if origin != "null" and urlsplit(origin).netloc.lower() == host.lower():
            return None  # the server's own page
        return 403, (f"requests from the web origin {origin[:100]!r} are not allowed; the operator can allow it "
                     "with --allowed-origin (VOXA_ALLOWED_ORIGINS)"), "origin_not_allowed"

    def too_big(self, scope) -> tuple[int, str, str] | None:
        """A declared body over the limit, refused before a byte of it is read."""
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return 413, (f"the request body is {int(length)} bytes, over the "
                         f"{self.config.max_upload_mb:g} MB upload limit"), "request_too_large"
        return None

    def limited(self, scope, receive, send):
        """``receive`` that stops a body sent in chunks as it passes the limit, and ``send`` that
        then answers 413 whatever the route made of the cut-off body."""
        seen, over = 0, False

        async def recv():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    over = True
                    raise HTTPException(413, "body too large")
            return message

        async def snd(message):
            if not over:
                return await send(message)
            if message["type"] == "http.response.start":
                response = respond(413, f"the request body is over the {self.config.max_upload_mb:g} MB upload "
                                        "limit", "request_too_large")
                await response(scope, receive, send)

        return recv, snd

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        problem = self.problem(scope) or (self.too_big(scope) if scope["type"] == "http" else None)
        if problem is None and scope["type"] == "http":
            return await self.app(scope, *self.limited(scope, receive, send))
        if problem is None:
            return await self.app(scope, receive, send)
        response = respond(*problem)
        if scope["type"] == "http":
            return await response(scope, receive, send)
        await WebSocket(scope, receive, send).send_denial_response(response)
