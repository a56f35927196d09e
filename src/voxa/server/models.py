"""GET /v1/models and GET /v1/models/{id}: the transcription models and speech engines."""

from __future__ import annotations

from fastapi import APIRouter

from ..registry import list_models
from .errors import APIError
from .speech import MODEL_ALIASES

router = APIRouter()
CREATED = 1767225600  # 2026-01-01: models have no creation date of their own here


def _all() -> list[dict]:
    out = [{"id": m["name"], "object": "model", "created": CREATED, "owned_by": "voxa"} for m in list_models()]
    out += [{"id": name, "object": "model", "created": CREATED, "owned_by": "voxa"} for name in MODEL_ALIASES]
    return out


@router.get("/v1/models")
def models():
    return {"object": "list", "data": _all()}


@router.get("/v1/models/{model_id:path}")
def model(model_id: str):
    for m in _all():
        if m["id"] == model_id:
            return m
    raise APIError(404, f"model {model_id!r} not found", "model_not_found", "model")
