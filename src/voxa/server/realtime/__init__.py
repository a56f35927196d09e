"""``WS /v1/realtime``: the OpenAI Realtime API: voice conversations with the agent
(:mod:`.conversation`, routed by :mod:`.converse`), and transcription sessions (below).

The official ``openai`` SDK (``client.realtime.connect(extra_query={"intent": "transcription"})``,
and the beta ``client.beta.realtime``), Pipecat's ``OpenAIRealtimeSTTService`` and anything else
that speaks the protocol work against voxa by changing the base URL. Connect with
``?intent=transcription``; ``session.update`` (GA: ``session.type = "transcription"`` and
``session.audio.input.{format, transcription, turn_detection}``) or the beta
``transcription_session.update`` (``input_audio_format``, ``input_audio_transcription``,
``turn_detection``) configure it; ``input_audio_buffer.append|commit|clear`` feed it. What comes
back: :mod:`.transcription`. Pieces: :mod:`.wire` (audio formats, settings, event shapes).

The transcription model named by the client (``gpt-4o-transcribe``, ``whisper-1``...) means the
server's live model (``stream_model``, tiny.en by default), as on ``/v1/listen``; a voxa model
name picks that model. A connection without the transcription intent is a conversation
session: a slot of the voice agent (``agent.max_sessions``), not of ``max_streams``.

Limits as ``/v1/listen``: the key (Bearer, or the subprotocol ``openai-insecure-api-key.KEY``
that browsers send), ``max_streams`` open at once (429), ``max_stream_s`` of audio and
``max_stream_wall_s`` per session, ``max_frame_bytes`` per message, a session silent for
``idle_timeout_s`` x 6 is closed. A bad event gets an ``error`` event and the session goes on.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ...asr import load_model
from ...errors import ModelError
from ...registry import known
from ..errors import respond
from ..listen import DEEPGRAM_MODELS, Refused, _authorized, _scheduler, free_slot, holding
from .transcription import TranscriptionSession
from .wire import BadEvent, Settings, error, event, new_id, update

router = APIRouter()
log = logging.getLogger("voxa.server.realtime")

OPENAI_ASR = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe", "gpt-realtime-whisper",
              "gpt-live-transcribe", "gpt-4o-transcribe-latest", "gpt-4o-mini-transcribe-2025-03-20"}


def _key(ws: WebSocket, config) -> tuple[bool, str | None]:
    """As /v1/listen, plus the browser form: the subprotocols ``realtime``,
    ``openai-insecure-api-key.KEY`` (and ``openai-beta.realtime-v1``)."""
    ok, sub = _authorized(ws, config)
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    key = next((p.removeprefix("openai-insecure-api-key.") for p in protocols
                if p.startswith("openai-insecure-api-key.")), None)
    if key is not None:
        return (not config.api_keys or config.accepts(key)), ("realtime" if "realtime" in protocols else None)
    if sub is None and "realtime" in protocols:
        sub = "realtime"
    return ok, sub


def _model(name: str | None, config) -> str:
    name = name or config.stream_model
    if name in OPENAI_ASR or name.split("-")[0] in DEEPGRAM_MODELS:
        name = config.stream_model
    found = known(name, "asr")
    if found is None:
        raise BadEvent(f"unknown transcription model {name!r}; voxa models lists them", param="model",
                       code="model_not_found")
    return found


@router.websocket("/v1/realtime")
async def realtime(ws: WebSocket):
    app, config = ws.app, ws.app.state.config
    ok, subprotocol = _key(ws, config)
    q = ws.query_params
    try:
        if not ok:
            raise Refused(401, "missing or wrong API key: send Authorization: Bearer <key> (or the subprotocol "
                               "openai-insecure-api-key.<key>)", code="invalid_api_key")
        if q.get("intent") not in (None, "", "transcription", "conversation"):
            raise Refused(400, f"unknown intent {q.get('intent')[:40]!r}: transcription, or none for a conversation",
                          "intent", "unsupported_session_type")
    except Refused as r:
        await ws.send_denial_response(respond(r.status, r.message, r.code, r.param))
        return
    if q.get("intent") != "transcription":
        from .converse import converse

        await converse(ws, subprotocol)
        return
    try:
        active = free_slot(app, config)
    except Refused as r:
        await ws.send_denial_response(respond(r.status, r.message, r.code, r.param))
        return
    session_id = new_id("sess")
    with holding(app, active, session_id):
        await ws.accept(subprotocol=subprotocol)
        settings = Settings(type="transcription", beta=ws.headers.get("openai-beta", "").startswith("realtime"))
        out: asyncio.Queue = asyncio.Queue()
        writer = asyncio.create_task(_write(ws, out, config.idle_timeout_s))
        session = None
        try:
            async def send(ev: dict) -> None:
                out.put_nowait(ev)

            await send(event("session.created", session=settings.session(session_id)))
            session = await _serve(ws, config, settings, session_id, send, app)
        finally:
            if session is not None:
                session.close()
            out.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 5)
            except (asyncio.TimeoutError, Exception):
                writer.cancel()


async def _write(ws: WebSocket, out: asyncio.Queue, timeout: float) -> None:
    """The one writer of a session's events, in order; a client that stops reading is dropped."""
    try:
        while (ev := await out.get()) is not None:
            await asyncio.wait_for(ws.send_text(json.dumps(ev)), timeout)
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _serve(ws: WebSocket, config, settings: Settings, session_id: str, send, app):
    def new_session(engine) -> TranscriptionSession:
        return TranscriptionSession(settings, engine, _scheduler(app, engine), send, max_audio_s=config.max_stream_s)

    loop = asyncio.get_running_loop()
    opened = loop.time()
    session = None
    while True:
        left = config.max_stream_wall_s - (loop.time() - opened)
        if left <= 0:
            await send(error(f"the session has been open for over the {config.max_stream_wall_s:g} s limit",
                             code="session_expired"))
            await ws.close(1000)
            return session
        try:
            msg = await asyncio.wait_for(ws.receive(), min(left, config.idle_timeout_s * 6))
        except asyncio.TimeoutError:
            if left > config.idle_timeout_s * 6:
                await ws.close(1000)
                return session
            continue
        if msg["type"] == "websocket.disconnect":
            return session
        text = msg.get("text")
        try:
            if text is None:
                raise BadEvent("events are JSON text messages; audio goes base64 in input_audio_buffer.append",
                               code="invalid_event")
            if len(text) > config.max_frame_bytes * 4 // 3 + 1024:
                raise BadEvent(f"an event of {len(text)} bytes is over the limit", code="invalid_event")
            try:
                ev = json.loads(text)
            except ValueError:
                raise BadEvent("events must be JSON objects", code="invalid_json") from None
            if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
                raise BadEvent("events must be JSON objects with a type", code="invalid_event")
            kind, eid = ev["type"], ev.get("event_id")
            try:
                if kind in ("session.update", "transcription_session.update"):
                    wanted = copy.deepcopy(settings)  # all of it applies, or none
                    update(wanted, ev.get("session"), beta=kind.startswith("transcription_session") or settings.beta)
                    if wanted.type != "transcription":
                        raise BadEvent("this is a transcription session (session.type transcription)",
                                       param="session.type")
                    name = _model(wanted.model, config)
                    try:
                        engine = await run_in_threadpool(load_model, name)
                        engine.check_options(language=wanted.language)
                    except ModelError as e:
                        raise BadEvent(str(e), param="session.audio.input.transcription.model",
                                       code="model_not_found") from None
                    except Exception as e:
                        raise BadEvent(str(e), param="session.audio.input.transcription.language") from None
                    settings.__dict__.update(wanted.__dict__)
                    if session is not None:
                        session.close()
                    session = new_session(engine)
                    await send(event("transcription_session.updated" if kind.startswith("transcription_session")
                                     else "session.updated", session=settings.session(session_id)))
                elif kind in ("input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear"):
                    if session is None:  # no session.update yet: the defaults
                        session = new_session(await run_in_threadpool(load_model, _model(None, config)))
                    if kind.endswith("append"):
                        if not isinstance(ev.get("audio"), str):
                            raise BadEvent("input_audio_buffer.append needs audio (base64)", param="audio")
                        await session.append(ev["audio"])
                    elif kind.endswith("commit"):
                        await session.commit()
                    else:
                        await session.clear()
                else:
                    raise BadEvent(f"{kind!r} is not an event of a transcription session", code="invalid_event")
            except BadEvent as e:
                e.event_id = e.event_id or eid
                raise
        except BadEvent as e:
            await send(error(str(e), code=e.code, param=e.param, event_id=e.event_id))
            if e.code == "session_expired":
                await ws.close(1000)
                return session
