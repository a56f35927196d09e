"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so the
official client raises the matching exception (400 BadRequestError, 401 AuthenticationError,
403 PermissionDeniedError, 404 NotFoundError, 413/422 APIStatusError, 429 RateLimitError)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import AudioError, Busy, ConsentError, InputError, ModelError, TooLong, VoxaError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
         500: "server_error", 503: "server_error"}


#: the code an error carries when nothing more precise is known (never null)
CODES = {400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 408: "request_timeout", 413: "request_too_large", 415: "unsupported_media_type",
         422: "invalid_request", 429: "rate_limit_exceeded", 500: "internal_error", 503: "unavailable"}


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers


def body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code or CODES.get(status, "error")}}


def respond(status: int, message: str, code: str | None = None, param: str | None = None,
            headers: dict | None = None) -> JSONResponse:
    # the openai client retries 5xx twice by default; a voxa failure will not mend itself
    headers = dict(headers or {}) | ({"x-should-retry": "false"} if status >= 500 else {})
    return JSONResponse(body(status, message, code, param), status_code=status, headers=headers or None)


def status_of(e: VoxaError) -> int:
    """400 for what the request asked wrongly (an unknown model is answered 404 where it is
    looked up, with an APIError), 413 for audio over a limit, 429 when too much waits already;
    500 for anything else."""
    if isinstance(e, ConsentError):
        return 403
    if isinstance(e, TooLong):
        return 413
    if isinstance(e, Busy):
        return 429
    if isinstance(e, (InputError, AudioError, ModelError)):
        return 400
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(_: Request, e: APIError):
        return respond(e.status, e.message, e.code, e.param, e.headers)

    @app.exception_handler(VoxaError)
    async def _voxa(_: Request, e: VoxaError):
        retry = {"Retry-After": str(max(1, round(e.retry_after)))} if isinstance(e, Busy) else None
        return respond(status_of(e), str(e), e.code, headers=retry)

    @app.exception_handler(Exception)
    async def _bug(_: Request, e: Exception):  # logged by Starlette; the client gets the usual shape
        return respond(500, f"internal error ({type(e).__name__}); the server keeps serving", "internal_error")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        if first.get("type") == "json_invalid":
            return respond(400, "the request body is not valid JSON", "invalid_json")
        param = ".".join(str(p) for p in first.get("loc", [])[1:] if isinstance(p, str)) or None
        msg = f"{param}: {first.get('msg', 'invalid request')}" if param else first.get("msg", "invalid request")
        return respond(400, msg, "invalid_request", param)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException):
        return respond(e.status_code, str(e.detail), None, headers=getattr(e, "headers", None))
