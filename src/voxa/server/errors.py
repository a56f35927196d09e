"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so the
official client raises the matching exception (400 BadRequestError, 401 AuthenticationError,
403 PermissionDeniedError, 404 NotFoundError, 413/422 APIStatusError, 429 RateLimitError)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import AudioError, ConsentError, InputError, ModelError, VoxaError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
         500: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def respond(status: int, message: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    # the openai client retries 5xx twice by default; a voxa failure will not mend itself
    headers = {"x-should-retry": "false"} if status >= 500 else None
    return JSONResponse(body(status, message, code, param), status_code=status, headers=headers)


def status_of(e: VoxaError) -> int:
    """400 for what the request asked wrongly (an unknown model is answered 404 where it is
    looked up, with an APIError); 500 for anything else."""
    if isinstance(e, ConsentError):
        return 403
    if isinstance(e, (InputError, AudioError, ModelError)):
        return 400
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(_: Request, e: APIError):
        return respond(e.status, e.message, e.code, e.param)

    @app.exception_handler(VoxaError)
    async def _voxa(_: Request, e: VoxaError):
        return respond(status_of(e), str(e), e.code)

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
        return respond(e.status_code, str(e.detail), None)
