"""POST /v1/audio/speech: OpenAI's text-to-speech endpoint, streamed while it is synthesized."""

from __future__ import annotations

import time
from typing import Literal, Optional

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import iterate_in_threadpool

from .. import audio, tts
from .errors import APIError

router = APIRouter()
#: OpenAI's model names mean "the default engine"; an engine name picks that engine
MODEL_ALIASES = {"tts-1": None, "tts-1-hd": None, "gpt-4o-mini-tts": None, "hibari": "hibari",
                 "piper": "piper", "espeak": "espeak"}


class SpeechRequest(BaseModel):
    model: str
    input: str
    voice: str
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: Optional[float] = Field(None, ge=0.25, le=4.0)
    instructions: Optional[str] = None
    stream_format: Optional[Literal["audio"]] = None


@router.post("/v1/audio/speech")
def speech(req: SpeechRequest, request: Request):
    limit = request.app.state.config.max_text_chars
    if len(req.input) > limit:
        raise APIError(413, f"input is {len(req.input)} characters; the limit is {limit}", "text_too_long", "input")
    if req.model not in MODEL_ALIASES:
        raise APIError(404, f"unknown speech model {req.model!r}; use one of {', '.join(MODEL_ALIASES)}",
                       "model_not_found", "model")
    if req.instructions:
        raise APIError(400, "instructions (prompted speaking style) are not supported by voxa's engines",
                       "unsupported_parameter", "instructions")
    voice = tts.load_voice(req.voice, engine=MODEL_ALIASES[req.model])
    settings = {"speed": req.speed} if req.speed is not None else {}
    # pcm is 24 kHz 16-bit mono, as OpenAI documents it
    rate = 24000 if req.response_format == "pcm" else None
    chunks = voice.stream(req.input, sample_rate=rate, origin="server", **settings)  # checks input now
    enc = audio.Encoder(req.response_format, rate or voice.sample_rate)

    metrics = request.app.state.metrics

    def encoded():
        t0 = time.perf_counter()
        for chunk in chunks:
            data = enc.write(chunk.audio)
            if data:
                yield data
        yield enc.close()
        metrics.observe_audio("synthesized", enc.samples / enc.sample_rate, time.perf_counter() - t0)

    return StreamingResponse(iterate_in_threadpool(encoded()), media_type=audio.MEDIA_TYPES[req.response_format],
                             headers={"X-Voxa-Voice": voice.info.id})
