"""GET /v1/models and GET /v1/models/{id}; and which model names a request may use.

Over HTTP a request names a model, never a path: only bundled models, their aliases, OpenAI's
names (which mean the default) and folders the operator named (``voxa serve --model
NAME=FOLDER``) are accepted. Any other name, a path on the server's disk or a hub name alike,
gets the same 404, so the answers reveal nothing about the disk and start no download.
"""

from __future__ import annotations

from fastapi import APIRouter

from ..registry import DEFAULT_ASR_MODEL, known, list_models
from .errors import APIError

router = APIRouter()
CREATED = 1767225600  # 2026-01-01: models have no creation date of their own here
#: OpenAI's transcription model names: they mean voxa's default Whisper (the diarize model also
#: turns speaker labels on; Pipecat's OpenAI STT service sends gpt-transcribe)
ASR_ALIASES = ("whisper-1", "gpt-transcribe", "gpt-4o-transcribe", "gpt-4o-mini-transcribe",
               "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-transcribe-diarize")
DIARIZE_MODEL = "gpt-4o-transcribe-diarize"


def unknown(name: str) -> APIError:
    return APIError(404, f"model {str(name)[:100]!r} is not available on this server; GET /v1/models lists "
                         "the ones that are", "model_not_found", "model")


def asr_model(name: str | None) -> str:
    """The registry name of the Whisper model a request names (raises the 404 above)."""
    if name in ASR_ALIASES:
        return DEFAULT_ASR_MODEL
    found = known(name, "asr") if name else None
    if found is None:
        raise unknown(name or "")
    return found


def _all() -> list[dict]:
    from .speech import MODEL_ALIASES

    names = [m["name"] for m in list_models()] + list(ASR_ALIASES) + list(MODEL_ALIASES)
    return [{"id": n, "object": "model", "created": CREATED, "owned_by": "voxa"} for n in dict.fromkeys(names)]


@router.get("/v1/models")
def models():
    return {"object": "list", "data": _all()}


@router.get("/v1/models/{model_id:path}")
def model(model_id: str):
    for m in _all():
        if m["id"] == model_id:
            return m
    raise unknown(model_id)
