"""WS /v1/listen: live recognition, shaped like Deepgram's live API.

A client written for ``wss://api.deepgram.com/v1/listen`` works by changing the URL (the
article's StreamingASR listing, fixed to run with today's websockets, is
examples/streaming_asr.py). Query parameters: ``model``, ``language``, ``encoding`` (``linear16``
raw PCM with ``sample_rate`` and ``channels``; left out, or a container name such as ``webm`` or
``opus``, for containers like a browser MediaRecorder's WebM/Opus), ``interim_results``,
``endpointing`` (ms or ``false``), ``utterance_end_ms``, ``vad_events``. Parameters voxa has no use
for (``smart_format``, ``punctuate``...) are accepted and ignored. voxa's own: ``diarize=true``
(Deepgram's, with ``speaker`` on each final word) and ``wake=okay_nabu`` (any of ``voxa wake
--list``; repeat or comma-separate several): nothing is recognised until a wake word is heard,
which is announced as ``{"type": "WakeWord", "word", "phrase", "timestamp", "probability"}``;
after ``wake_idle_ms`` (8000) without speech the stream waits for a wake word again. Deepgram model names
(``nova-2``...) mean the server's default streaming model.

Binary messages carry audio; text messages carry ``{"type": "KeepAlive" | "Finalize" |
"CloseStream"}``. Out go ``Results``, ``SpeechStarted``, ``UtteranceEnd``, ``WakeWord`` and, at the close,
``Metadata`` (see ``voxa.streaming.message``).

Refused at the handshake with an HTTP status and an OpenAI-shaped JSON body: bad parameters (400),
a wrong key (401), an unknown model (404), too many streams (429). Once open, a stream ends with a
close code and a reason: 1000 after CloseStream, 1008 for undecodable audio, the stream length
cap (``max_stream_s`` of audio, enforced while a container is decoded) or the wall-clock cap
(``max_stream_wall_s``), 1009 for an oversized message, 1011 after ``idle_timeout_s`` without
audio or KeepAlive, or ``no_audio_timeout_s`` with KeepAlives but no audio.
Before any close that voxa starts, everything already received is finalised and sent.
A malformed control message gets an ``Error`` message and the stream goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..asr import load_model
from ..audio import PcmDecoder, StreamDecoder
from ..errors import AudioError, InputError, ModelError
from ..registry import known
from ..streaming import Recognizer, Scheduler, StreamOptions, message
from ..streaming.recognizer import ENDPOINTING_MS
from .config import header_token
from .errors import respond
from .models import unknown

router = APIRouter()
CONTAINERS = {"webm": "webm", "opus": "ogg", "ogg-opus": "ogg", "ogg": "ogg", "flac": "flac", "mp3": "mp3",
              "wav": "wav", "aac": None, "mp4": None, "m4a": None}
DEEPGRAM_MODELS = ("nova", "enhanced", "general")  # Deepgram's own: mean "the default here"


class Refused(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _flag(q, name: str, default: bool) -> bool:
    v = q.get(name)
    if v is None:
        return default
    if v.lower() in ("true", "1"):
        return True
    if v.lower() in ("false", "0"):
        return False
    raise Refused(400, f"{name} must be true or false, not {v!r}", name)


def _int(q, name: str, lo: int, hi: int, default: int | None, allow_false: bool = False) -> int | None:
    v = q.get(name)
    if v is None:
        return default
    if allow_false and v.lower() == "false":
        return None
    try:
        n = int(v)
    except ValueError:
        raise Refused(400, f"{name} must be an integer{' or false' if allow_false else ''}, not {v!r}", name) from None
    if not lo <= n <= hi:
        raise Refused(400, f"{name} must be between {lo} and {hi}, not {n}", name)
    return n


def _model_name(q, config) -> str:
    """The registry name of the model a stream asks for (Refused 404 for any other name)."""
    name = q.get("model") or config.stream_model
    if name.split("-")[0] in DEEPGRAM_MODELS:
        name = config.stream_model
    found = known(name, "asr")
    if found is None:
        e = unknown(name)
        raise Refused(404, e.message, "model", "model_not_found")
    return found


def parse(q, config) -> tuple[str, StreamOptions, dict]:
    """Check the query string; raises Refused."""
    encoding = (q.get("encoding") or "").lower() or None
    if encoding is not None and encoding != "linear16" and encoding not in CONTAINERS:
        raise Refused(400, f"unsupported encoding {encoding!r}: use linear16 (raw 16-bit PCM) or a container "
                           f"({', '.join(sorted(CONTAINERS))}), or leave it out to detect the container", "encoding")
    rate = _int(q, "sample_rate", 8000, 192000, None)
    channels = _int(q, "channels", 1, 8, 1)
    if encoding == "linear16" and rate is None:
        raise Refused(400, "sample_rate is required with encoding=linear16", "sample_rate")
    language = q.get("language") or None
    if language:
        language = language.split("-")[0].lower()  # BCP-47 en-US -> Whisper's en
    opts = StreamOptions(
        language=language,
        interim_results=_flag(q, "interim_results", False),
        endpointing_ms=_int(q, "endpointing", 10, 10000, ENDPOINTING_MS, allow_false=True),
        utterance_end_ms=_int(q, "utterance_end_ms", 500, 10000, None),
        vad_events=_flag(q, "vad_events", False),
        # Deepgram's diarize=true, or diarize_model (which turns it on and names a version)
        diarize=_flag(q, "diarize", False) or (q.get("diarize_model") or "").lower() in ("latest", "v1"),
    )
    if (q.get("diarize_model") or "").lower() not in ("", "latest", "v1"):
        raise Refused(400, f"unsupported diarize_model {q.get('diarize_model')!r}: use latest or v1", "diarize_model")
    if opts.diarize:
        from ..speakers import missing

        if (lack := missing()) is not None:
            raise Refused(400, f"diarize needs the diarize extra on this server ({lack} is missing): "
                               "pip install 'voxa[diarize]'", "diarize")
    given = q.getlist("wake") if hasattr(q, "getlist") else [q.get("wake") or ""]
    if any(given):  # wake=okay_nabu (repeated, or comma-separated): recognise only after it
        from ..wake import missing, parse as wake_word

        words = tuple(w.strip() for v in given for w in v.split(",") if w.strip())
        try:
            for w in words:
                wake_word(w)
        except InputError as e:
            raise Refused(400, str(e), "wake") from None
        if (lack := missing(words)) is not None:
            raise Refused(400, f"wake words need the {lack} package on this server: pip install 'voxa[wake]'", "wake")
        opts.wake = words
        idle = _int(q, "wake_idle_ms", 1000, 600000, None)
        if idle is not None:
            opts.wake_idle_s = idle / 1000
    if opts.endpointing_ms is not None:
        opts.endpointing_ms = max(opts.endpointing_ms, 64)  # the voice detector judges 32 ms frames
    return _model_name(q, config), opts, {"encoding": encoding, "sample_rate": rate, "channels": channels}


def _authorized(ws: WebSocket, config) -> tuple[bool, str | None]:
    """Keys come as ``Authorization: Bearer|Token KEY`` or, from browsers, which cannot set
    headers, as the subprotocols ``token, KEY`` (Deepgram's convention)."""
    if not config.api_keys:
        return True, None
    given = ws.headers.get("authorization", "")
    token = header_token(given, ("bearer", "token"))
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    sub = None
    if not given.partition(" ")[2] and len(protocols) == 2 and protocols[0].lower() == "token":
        token, sub = protocols[1], "token"
    return config.accepts(token), sub


def free_slot(app, config) -> set:
    """The app's open live streams (``/v1/listen`` and ``/v1/realtime`` together), when one more
    may open; raises Refused (429) when ``max_streams`` are open."""
    active = app.state.__dict__.setdefault("streams", set())
    if len(active) >= config.max_streams:
        raise Refused(429, f"too many live streams: the limit is {config.max_streams}; try again later",
                      code="rate_limit_exceeded")
    return active


@contextmanager
def holding(app, active: set, stream):
    """Count ``stream`` among the open ones (and on /metrics) for a ``with`` block."""
    active.add(stream)
    app.state.metrics.active_streams.inc()
    try:
        yield
    finally:
        active.discard(stream)
        app.state.metrics.active_streams.dec()


def _scheduler(app, engine) -> Scheduler:
    schedulers = app.state.__dict__.setdefault("schedulers", {})
    old = schedulers.get(engine.name)
    if old is None or old.engine is not engine:  # new, or the model was unloaded and loaded again
        if old is not None and not old.streams:
            old.stop()
        metrics = app.state.metrics
        schedulers[engine.name] = Scheduler(
            engine, on_batch=lambda audio_s, wall: metrics.observe_audio("stream_decode", audio_s, wall))
    return schedulers[engine.name]


@router.websocket("/v1/listen")
async def listen(ws: WebSocket):
    app = ws.app
    config = app.state.config
    ok, subprotocol = _authorized(ws, config)
    try:
        if not ok:
            raise Refused(401, "missing or wrong API key: send Authorization: Bearer <key> "
                               "(or the subprotocols 'token', '<key>')", code="invalid_api_key")
        model, opts, fmt = parse(ws.query_params, config)
        try:
            engine = await run_in_threadpool(load_model, model)
        except ModelError as e:
            raise Refused(404, str(e), "model", "model_not_found") from None
        try:
            engine.check_options(language=opts.language)
        except Exception as e:
            raise Refused(400, str(e), "language") from None
        active = free_slot(app, config)
    except Refused as r:
        await ws.send_denial_response(respond(r.status, r.message, r.code, r.param))
        return
    session = Session(ws, engine, opts, fmt, config, _scheduler(app, engine))
    try:
        with holding(app, active, session):
            await ws.accept(subprotocol=subprotocol)
            await session.run()
    finally:
        if session.rec.duration:
            app.state.metrics.audio.labels("streamed").inc(session.rec.duration)


class Session:
    """One open stream: reads messages, feeds the recogniser, sends its events back."""

    def __init__(self, ws: WebSocket, engine, opts: StreamOptions, fmt: dict, config, scheduler: Scheduler):
        self.ws, self.config, self.fmt = ws, config, fmt
        self.id = str(uuid.uuid4())
        self.model = engine.name
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue = asyncio.Queue()
        self.rec = Recognizer(scheduler, self._emit, opts)
        self.sha = hashlib.sha256()
        self.created = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.decoder = None
        if fmt["encoding"] == "linear16":
            self.pcm = PcmDecoder(fmt["sample_rate"], fmt["channels"])
        else:
            self.pcm = None
            # the stream-length cap holds while decoding: a small message cannot unpack into hours
            self.decoder = StreamDecoder(self._decoded, CONTAINERS.get(fmt["encoding"]),
                                         max_seconds=config.max_stream_s)
        self.decode_error: str | None = None

    # events come from the recogniser's threads
    def _emit(self, event) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, message(event, request_id=self.id, model=self.model))

    def _decoded(self, samples) -> None:  # container decoder thread
        if not self.rec.closed:
            self.rec.push(samples)

    async def _send(self) -> bool:
        """Send events until the end marker; False if the client stopped reading or left."""
        try:
            while (msg := await self.out.get()) is not None:
                await asyncio.wait_for(self.ws.send_text(json.dumps(msg)), self.config.idle_timeout_s)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            return False
        return True

    async def run(self) -> None:
        sender = asyncio.create_task(self._send())
        code, reason = 1000, ""
        try:
            code, reason = await self._receive()
        except WebSocketDisconnect:
            code = None  # the client left: free everything, send nothing
        except (AudioError, RuntimeError) as e:
            code, reason = 1008, f"DATA-0000: {e}"
        if code is None or sender.done():
            self._abort()
            sender.cancel()
            return
        await self._finish()
        if self.decode_error and code == 1000:  # undecodable audio found only at the end
            code, reason = 1008, f"DATA-0000: {self.decode_error}"
        await self.out.put(None)
        try:
            if await asyncio.wait_for(sender, self.config.idle_timeout_s):
                await self.ws.close(code, reason[:120])
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            sender.cancel()  # the client stopped reading or left; nothing more to do

    async def _receive(self) -> tuple[int, str]:
        cfg = self.config
        loop = asyncio.get_running_loop()
        opened = last_audio = loop.time()
        while True:
            now = loop.time()
            if now - opened > cfg.max_stream_wall_s:
                return 1008, f"BIG-0002: the stream has been open for over the {cfg.max_stream_wall_s:g} s limit"
            if now - last_audio > cfg.no_audio_timeout_s:
                return 1011, f"NET-0002: no audio for {cfg.no_audio_timeout_s:g} s (only KeepAlive)"
            idle = cfg.idle_timeout_s
            wait = min(idle, cfg.no_audio_timeout_s - (now - last_audio), cfg.max_stream_wall_s - (now - opened))
            try:
                msg = await asyncio.wait_for(self.ws.receive(), max(0.0, wait))
            except asyncio.TimeoutError:
                if wait >= idle:
                    return 1011, f"NET-0001: no audio or KeepAlive received for {idle:g} s"
                continue  # a cap is due: the checks above close the stream
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            data, text = msg.get("bytes"), msg.get("text")
            if data is not None:
                if not data:
                    return 1000, ""  # Deepgram's old way to say CloseStream
                if len(data) > cfg.max_frame_bytes:
                    return 1009, f"BIG-0000: a message of {len(data)} bytes is over the {cfg.max_frame_bytes} limit"
                last_audio = loop.time()
                await self._audio(data)
                if self.rec.error is not None:
                    return 1011, f"NET-0000: recognition failed ({self.rec.error})"
                if self.rec.duration > cfg.max_stream_s:
                    return 1008, f"BIG-0001: the stream is over the {cfg.max_stream_s:g} s limit"
                continue
            kind = self._control(text)
            if kind == "CloseStream":
                return 1000, ""
            if kind == "Finalize":
                await run_in_threadpool(self.rec.finalize)

    def _control(self, text: str | None) -> str | None:
        try:
            obj = json.loads(text or "")
            kind = obj.get("type") if isinstance(obj, dict) else None
        except ValueError:
            kind = obj = None
        if kind in ("KeepAlive", "Finalize", "CloseStream"):
            return kind
        what = "not JSON" if obj is None else f"unknown control message {str(text)[:80]!r}"
        self.out.put_nowait({"type": "Error", "err_code": "MESSAGE-0000",
                             "err_msg": f"text messages must be JSON control messages "
                                        f"(KeepAlive, Finalize, CloseStream); got {what}; audio goes in binary messages"})
        return None

    async def _audio(self, data: bytes) -> None:
        self.sha.update(data)
        if self.pcm is not None:
            samples = self.pcm(data)
            if samples.size:
                await run_in_threadpool(self.rec.push, samples)
        else:
            await run_in_threadpool(self.decoder.feed, data)
        # backpressure: a client sending faster than its audio can be decoded waits here
        while self.rec.backlog_s > self.config.max_backlog_s:
            await asyncio.sleep(0.05)

    async def _finish(self) -> None:
        """Decode what is left, send the last results and Metadata."""
        error = None
        if self.decoder is not None:
            try:
                await run_in_threadpool(self.decoder.close, 30.0)
            except AudioError as e:
                error = self.decode_error = str(e)
        elif self.pcm is not None:
            tail = self.pcm.flush()
            if tail.size:
                await run_in_threadpool(self.rec.push, tail)
        await run_in_threadpool(self.rec.close, 60.0)
        if error:
            self.out.put_nowait({"type": "Error", "err_code": "DATA-0000", "err_msg": error})
        self.out.put_nowait({"type": "Metadata", "transaction_key": "deprecated", "request_id": self.id,
                             "sha256": self.sha.hexdigest(), "created": self.created,
                             "duration": round(self.rec.duration, 3), "channels": 1, "models": [self.model]})

    def _abort(self) -> None:
        self.rec.abort()
        if self.decoder is not None:
            self.decoder.abort()
