"""POST /v1/audio/speech: OpenAI's text-to-speech endpoint, streamed while it is synthesized.

Every response says it is synthetic: ``X-Voxa-Synthetic: true``, the watermark's name and its
payload (``X-Voxa-Watermark-Payload``, the audit record number), sent before the audio."""

from __future__ import annotations

import time
from typing import Literal, Optional

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

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
    speed: Optional[float] = Field(None, ge=0.25, le=4.0, allow_inf_nan=False)
    instructions: Optional[str] = None
    stream_format: Optional[Literal["audio"]] = None


def _check_length(text: str, request: Request) -> None:
    limit = request.app.state.config.max_text_chars
    if len(text) > limit:
        raise APIError(413, f"input is {len(text)} characters; the limit is {limit}", "text_too_long", "input")


def _respond(synthesis, voice, fmt: str, rate: int, request: Request) -> StreamingResponse:
    """The synthesis encoded while it is made, with the disclosure headers sent first."""
    enc = audio.Encoder(fmt, rate)
    metrics = request.app.state.metrics

    def encoded():
        t0 = time.perf_counter()
        for chunk in synthesis:
            data = enc.write(chunk.audio)
            if data:
                yield data
        yield enc.close()
        metrics.observe_audio("synthesized", enc.samples / enc.sample_rate, time.perf_counter() - t0)

    return StreamingResponse(iterate_in_threadpool(encoded()), media_type=audio.MEDIA_TYPES[fmt],
                             headers={"X-Voxa-Voice": voice.info.id} | disclosure(synthesis.release))


@router.post("/v1/audio/speech")
def speech(req: SpeechRequest, request: Request):
    _check_length(req.input, request)
    if req.model not in MODEL_ALIASES:
        raise APIError(404, f"unknown speech model {req.model!r}; use one of {', '.join(MODEL_ALIASES)}",
                       "model_not_found", "model")
    voice = tts.load_voice(voice_id(req.voice, MODEL_ALIASES[req.model], request.app.state.config.voice_map))
    settings = {"speed": req.speed} if req.speed is not None else {}
    applied = {}
    if req.instructions:  # never a reason to refuse: what an engine can do is done, and said
        applied = instructed(req.instructions, voice.engine.settings, settings)
        settings |= applied
    # pcm is 24 kHz 16-bit mono, as OpenAI documents it
    rate = 24000 if req.response_format == "pcm" else None
    # checks the input, then opens the synthesis: audited, its watermark payload fixed
    synthesis = voice.stream(req.input, sample_rate=rate, origin="server", actor=request.state.actor, **settings)
    response = _respond(synthesis, voice, req.response_format, rate or voice.sample_rate, request)
    if req.instructions:
        response.headers["X-Voxa-Instructions-Applied"] = ",".join(f"{k}={v}" for k, v in applied.items()) or "none"
    return response


# pace words in OpenAI-style instructions ("Speak slowly and calmly.") -> a speed factor
_PACE = ((("very slowly", "very slow"), 0.75), (("slowly", "slower", "slow ", "unhurried", "calm"), 0.85),
         (("very quickly", "very fast"), 1.3), (("quickly", "faster", "fast", "brisk", "rapid", "hurried"), 1.15))


def instructed(text: str, offered: dict, given: dict) -> dict:
    """The settings an ``instructions`` text asks for that the voice's engine offers: today the
    pace (speed), unless the request set ``speed`` itself. Style (tone, accent, emotion) has no
    knob in voxa's engines and is left out; the response header says what was applied."""
    low = " " + text.lower() + " "
    if "speed" in given or "speed" not in offered:
        return {}
    for words, factor in _PACE:
        if any(w in low for w in words):
            return {"speed": factor}
    return {}


@router.get("/v1/audio/voices")
def voices(request: Request):
    """The voices this server speaks: every installed voice, and OpenAI's names with the voice
    each one means here."""
    from ..tts.engine import all_voices
    from ..tts.openai_voices import default_map

    mapped = default_map() | request.app.state.config.voice_map
    out = [{"id": v.id, "name": v.name, "engine": v.engine, "language": v.language, "sample_rate": v.sample_rate}
           for v in all_voices() if v.installed and get_engine_ok(v.engine)]
    out += [{"id": name, "name": name, "voice": target, "openai": True} for name, target in sorted(mapped.items())]
    return {"object": "list", "data": out}


def get_engine_ok(name: str) -> bool:
    from ..tts.engine import get_engine

    return get_engine(name).missing() is None


@router.post("/v1/audio/speech/clone")
async def speech_clone(request: Request, reference: UploadFile = File(...), consent_id: str = Form(""),
                       input: str = Form(...), response_format: str = Form("wav"),
                       engine: Optional[str] = Form(None), language: str = Form("en")):
    """Speak ``input`` in the voice of the ``reference`` upload, under consent ``consent_id``.
    The same gate as ``voxa speak --clone-from``: a refusal is 403 (and audited); with no cloning
    engine configured on the server (``VOXA_CLONE_MODEL``), 400 says so."""
    import os

    from ..errors import ConsentError
    from ..tts.clone import load_clone
    from .transcriptions import read_audio

    if response_format not in audio.MEDIA_TYPES:
        raise APIError(400, f"response_format must be one of {', '.join(audio.MEDIA_TYPES)}", "invalid_request",
                       "response_format")
    _check_length(input, request)
    config = request.app.state.config
    data = await read_audio(reference, config, "reference", max_s=config.max_reference_s)
    try:  # the consent record first, then the reference, decoded only up to max_reference_s
        voice = await run_in_threadpool(lambda: load_clone(
            data, consent_id=consent_id or None, engine=engine, model_dir=os.environ.get("VOXA_CLONE_MODEL"),
            language=language, actor=request.state.actor, origin="server", max_reference_s=config.max_reference_s))
    except ConsentError as e:
        raise APIError(403, str(e), e.code, "consent_id") from None
    synthesis = voice.stream(input, origin="server", actor=request.state.actor)
    return _respond(synthesis, voice, response_format, voice.sample_rate, request)


def voice_id(name: str, engine: str | None, voice_map: dict[str, str] | None = None) -> str:
    """The installed voice a request names, as its id (one cache entry per voice, however it is
    spelled). Over HTTP a voice is a name, never a file path, and a voice that is not installed
    is refused rather than fetched. OpenAI's voice names mean the voices they are mapped to
    (``voice_map``, else ``voxa.tts.openai_voices.default_map``)."""
    from ..tts.engine import resolve
    from ..tts.openai_voices import default_map, is_openai

    if is_openai(name) and not engine:
        mapped = (voice_map or {}).get(name.lower()) or default_map().get(name.lower())
        if mapped is None:
            raise APIError(400, f"voice {name!r} is not mapped to an installed voice on this server",
                           "voice_not_available", "voice")
        name = mapped
    if name.lower().endswith(".onnx") or "/" in name or "\\" in name:
        raise APIError(400, f"voice {name[:100]!r} is not available on this server: a voice is a name "
                            "such as heart or piper:joe, not a file", "voice_not_available", "voice")
    info = resolve(name, engine)
    if not info.installed:
        raise APIError(400, f"voice {info.id} is not installed on this server", "voice_not_available", "voice")
    return info.id


def disclosure(release) -> dict:
    """Headers that say the audio is synthetic and which watermark payload it carries."""
    return {"X-Voxa-Synthetic": "true", "X-Voxa-Watermark": release.watermark,
            "X-Voxa-Watermark-Payload": str(release.payload)}
