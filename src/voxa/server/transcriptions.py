"""POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI's shapes).

Response formats json, text, srt, vtt, verbose_json and diarized_json; ``stream=true`` answers
with server-sent events, one ``transcript.text.delta`` per segment as soon as it is final (windows
are decoded one at a time, in time order: ``Whisper.transcribe_stream``) and a final
``transcript.text.done``. ``diarize=true`` or the model ``gpt-4o-transcribe-diarize`` (with
``num_speakers`` or ``min_speakers``/``max_speakers``; the diarize extra) labels segments and
words with speakers: verbose_json gains ``speaker`` on each and a ``speakers`` object (turns,
overlaps, warnings); diarized_json is OpenAI's shape (speakers A, B, ...); srt and vtt carry the
labels. ``include[]=logprobs`` (json only, as OpenAI) adds ``logprobs``: one entry per word, its
log-probability from Whisper's token probabilities (voxa's decoder reports them per word).
Uploads are refused with 413 past the configured size, and audio past ``max_audio_s`` while it
is decoded (whatever its header says). Requests wait for their model in a bounded queue
(``queue.py``: 429 with Retry-After when full) holding no thread; decoding and recognition then
run in a worker thread, one request at a time per model (the CPU is the limit).
"""

from __future__ import annotations

import json
import threading
import time
from typing import List, Optional

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from .. import formats
from ..asr import load_model
from ..audio import probe_duration
from ..errors import InputError, ModelError
from ..types import Transcript
from .errors import APIError
from .models import DIARIZE_MODEL, asr_model

router = APIRouter()
FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
_locks: dict[str, threading.Lock] = {}


async def _read(upload: UploadFile, limit_mb: float, param: str = "file") -> bytes:
    limit = int(limit_mb * 1024 * 1024)
    parts, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"{param} is larger than the {limit_mb:g} MB upload limit", "file_too_large", param)
        parts.append(chunk)
    if not size:
        raise APIError(400, f"{param} is empty", "invalid_audio", param)
    return b"".join(parts)


async def read_audio(upload: UploadFile, config, param: str = "file", max_s: float | None = None) -> bytes:
    """An uploaded audio file's bytes, within the size limit and, by its header, the duration
    limit (``max_s``, default ``max_audio_s``). The header may lie or say nothing: whoever
    decodes the bytes must pass the limit on (``max_duration``, ``max_seconds``)."""
    max_s = config.max_audio_s if max_s is None else max_s
    data = await _read(upload, config.max_upload_mb, param)
    declared = await run_in_threadpool(probe_duration, data)
    if declared is not None and declared > max_s:
        raise APIError(413, f"audio is {declared:.0f} s long; the limit is {max_s:g} s per request",
                       "audio_too_long", param)
    return data


async def engine_for(model: str | None):
    """The loaded Whisper engine a request names (404 for any name the server does not offer)."""
    name = asr_model(model)
    try:
        return await run_in_threadpool(load_model, name)
    except ModelError as e:
        raise APIError(404, str(e), "model_not_found", "model") from None


def verbose(t: Transcript, words: bool) -> dict:
    spk = t.speakers is not None
    out = {"task": t.task, "language": t.language or "", "duration": t.duration, "text": t.text,
           # voxa's additions: how sure the language is (voxa.langid); clients that do not know them ignore them
           "language_probability": t.language_probability, "language_source": t.language_source,
           "segments": [{"id": s.id, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
                         "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                         "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                        | ({"speaker": s.speaker} if spk else {}) for s in t.segments]}
    if words:
        out["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end}
                        | ({"speaker": w.speaker} if spk else {})
                        | ({"speakers": w.speakers} if spk and w.speakers else {}) for w in t.words]
    if spk:
        d = t.speakers.to_dict()
        out["speakers"] = {k: d[k] for k in ("speakers", "turns", "overlaps", "warnings")}
    return out


def _speakers(diarize: bool, num: Optional[int], lo: Optional[int], hi: Optional[int]) -> Optional[dict]:
    """The diarization options of a request (400 for hints without diarize=true or that contradict)."""
    hints = {"num_speakers": num, "min_speakers": lo, "max_speakers": hi}
    if not diarize:
        given = [k for k, v in hints.items() if v is not None]
        if given:
            raise APIError(400, f"{given[0]} needs diarize=true", "invalid_request", given[0])
        return None
    from .. import diarization

    try:
        diarization.check(num, lo, hi)
    except InputError as e:
        raise APIError(400, str(e), "invalid_request", "num_speakers" if num is not None else "min_speakers") from None
    diarization.ready()  # loaded once; without the diarize extra: a clear 400 before any upload work
    return hints


async def _handle(request: Request, task: str, file: UploadFile, model: str, language: Optional[str],
                  prompt: Optional[str], response_format: str, temperature: float,
                  granularities: List[str], stream: bool, speakers: Optional[dict] = None,
                  include: List[str] = ()):
    if response_format not in FORMATS:
        raise APIError(400, f"response_format must be one of {', '.join(FORMATS)}", "invalid_request", "response_format")
    if response_format == "diarized_json" and speakers is None:
        raise APIError(400, f"response_format diarized_json needs model {DIARIZE_MODEL} or diarize=true",
                       "invalid_request", "response_format")
    if [i for i in include if i != "logprobs"]:
        raise APIError(400, f"include may only hold logprobs, not {[i for i in include if i != 'logprobs'][0]!r}",
                       "invalid_request", "include[]")
    logprobs = "logprobs" in include
    if logprobs and (response_format != "json" or stream):
        raise APIError(400, "include[]=logprobs works with response_format json, without stream (as OpenAI's)",
                       "invalid_request", "include[]")
    if not 0.0 <= temperature <= 1.0:
        raise APIError(400, "temperature must be between 0 and 1", "invalid_request", "temperature")
    bad = [g for g in granularities if g not in ("word", "segment")]
    if bad:
        raise APIError(400, f"timestamp_granularities must be word or segment, not {bad[0]!r}",
                       "invalid_request", "timestamp_granularities[]")
    words = "word" in granularities or logprobs
    config = request.app.state.config
    engine = await engine_for(model)
    opts = dict(task=task, language=language or None, initial_prompt=prompt or None, word_timestamps=words,
                max_duration=config.max_audio_s)
    if temperature > 0:
        opts["temperatures"] = tuple(t for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if t >= temperature)
    engine.check_options(**opts)  # bad language or task: 400 before any decoding
    lock = _locks.setdefault(engine.name, threading.Lock())
    queue = request.app.state.queues.get(engine.name)
    await queue.acquire()  # 429 when too many wait; waiting holds no thread
    t0 = time.monotonic()
    try:
        data = await read_audio(file, config)
    except BaseException:
        queue.release()
        raise

    def run() -> Transcript:
        with lock:  # a request whose client left may still be decoding
            if speakers is not None:
                from .. import diarization

                return diarization.transcribe(data, engine, **speakers, **opts)
            return engine.transcribe(data, **opts)

    def run_stream():
        """Segments as each window is decoded, then the Transcript (diarization needs the
        whole recording first, so with speakers it is run() in one piece)."""
        if speakers is not None:
            yield run()
            return
        with lock:
            yield from engine.transcribe_stream(data, **opts)

    if stream:
        async def events():
            try:
                async for event in iterate_in_threadpool(_events(run_stream)):
                    yield event
            finally:
                queue.release(time.monotonic() - t0)

        return StreamingResponse(events(), media_type="text/event-stream")
    try:
        t = await run_in_threadpool(run)
    finally:
        queue.release(time.monotonic() - t0)
    request.app.state.metrics.observe_audio("transcribed", t.duration, time.monotonic() - t0)
    if response_format == "json":
        return {"text": t.text} | ({"logprobs": word_logprobs(t)} if logprobs else {})
    if response_format == "diarized_json":
        return diarized(t)
    if response_format == "verbose_json":
        return verbose(t, words)
    if response_format == "text":
        return PlainTextResponse(t.text + "\n")
    return PlainTextResponse(formats.render(t, response_format),
                             media_type="text/vtt" if response_format == "vtt" else "text/plain")


def word_logprobs(t: Transcript) -> list[dict]:
    """OpenAI's ``logprobs`` entries, one per word (Whisper's probability of the word's tokens)."""
    import math

    return [{"token": w.word, "logprob": round(math.log(max(w.probability, 1e-12)), 6),
             "bytes": list(w.word.encode("utf-8"))} for w in t.words]


def diarized(t: Transcript) -> dict:
    """OpenAI's diarized_json: segments of one speaker each, speakers named A, B, ... in order
    of appearance."""
    names: dict[str, str] = {}
    for s in t.segments:
        if s.speaker and s.speaker not in names:
            n = len(names)
            names[s.speaker] = chr(65 + n) if n < 26 else f"S{n}"
    return {"task": "transcribe", "duration": t.duration, "text": t.text,
            "segments": [{"type": "transcript.text.segment", "id": f"seg_{s.id}", "start": s.start, "end": s.end,
                          "text": s.text.strip(), "speaker": names.get(s.speaker or "", "A")} for s in t.segments],
            "usage": {"type": "duration", "seconds": t.duration}}


def _events(run_stream):
    """Server-sent events: a delta per segment as it is final, then done with the whole text."""
    from ..errors import VoxaError
    from .errors import body, status_of

    def delta(seg) -> str:
        return f"data: {json.dumps({'type': 'transcript.text.delta', 'delta': seg.text.strip() + ' '})}\n\n"

    try:
        for item in run_stream():
            if isinstance(item, Transcript):
                if item.speakers is not None:  # diarized: its segments come all at once, labelled
                    yield from (delta(seg) for seg in item.segments)
                yield f"data: {json.dumps({'type': 'transcript.text.done', 'text': item.text})}\n\n"
            elif item.text.strip():
                yield delta(item)
    except VoxaError as e:  # headers are sent already: the error travels as an event
        yield f"data: {json.dumps({'type': 'error'} | body(status_of(e), str(e), e.code))}\n\n"


@router.post("/v1/audio/transcriptions")
async def transcriptions(
    request: Request, file: UploadFile = File(...), model: str = Form(...), language: Optional[str] = Form(None),
    prompt: Optional[str] = Form(None), response_format: str = Form("json"), temperature: float = Form(0.0),
    timestamp_granularities: List[str] = Form([], alias="timestamp_granularities[]"), stream: bool = Form(False),
    diarize: bool = Form(False), num_speakers: Optional[int] = Form(None), min_speakers: Optional[int] = Form(None),
    max_speakers: Optional[int] = Form(None), include: List[str] = Form([], alias="include[]"),
):
    speakers = await run_in_threadpool(_speakers, diarize or model == DIARIZE_MODEL, num_speakers, min_speakers,
                                       max_speakers)
    return await _handle(request, "transcribe", file, model, language, prompt, response_format, temperature,
                         timestamp_granularities, stream, speakers, include)


@router.post("/v1/audio/translations")
async def translations(
    request: Request, file: UploadFile = File(...), model: str = Form(...), prompt: Optional[str] = Form(None),
    response_format: str = Form("json"), temperature: float = Form(0.0),
):
    return await _handle(request, "translate", file, model, None, prompt, response_format, temperature, [], False)
