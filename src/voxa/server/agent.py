"""The voice agent on the server: ``GET /agent`` (the browser page), ``POST /offer`` (WebRTC:
``{sdp, type}`` in, the answer out) and ``WS /v1/agent`` (PCM and JSON events, see
:mod:`voxa.agent.wire`). One :class:`voxa.agent.Agent` per app, created at the first session
(models load once and are shared); ``agent.max_sessions`` sessions at once, more get 429."""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.resources import files

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..errors import VoxaError
from .errors import respond
from .listen import _authorized, _scheduler

router = APIRouter()
log = logging.getLogger("voxa.server.agent")


async def get_agent(app):
    """The app's agent, made on first use (off the event loop: loading takes a few seconds)."""
    lock = app.state.__dict__.setdefault("agent_lock", asyncio.Lock())
    async with lock:
        if getattr(app.state, "agent", None) is None:
            from ..agent import Agent

            app.state.agent = await run_in_threadpool(Agent, app.state.config.agent)
    return app.state.agent


def _observe(app):
    metrics = app.state.metrics

    def observe(row: dict) -> None:
        for stage in ("turn_decided_ms", "asr_final_ms", "llm_first_token_ms", "tts_first_audio_ms",
                      "voice_to_voice_ms"):
            if row.get(stage) is not None:
                metrics.agent_latency.labels(stage.removesuffix("_ms")).observe(row[stage] / 1000.0)
        metrics.agent_turns.inc()

    return observe


@router.get("/agent", response_class=HTMLResponse, include_in_schema=False)
def page():
    return files("voxa.server").joinpath("static/agent.html").read_text(encoding="utf-8")


@router.get("/agent/config", include_in_schema=False)
def page_config(request: Request):
    cfg = request.app.state.config.agent
    return {"ice_servers": [{"urls": u} for u in cfg.ice_servers]}


@router.post("/offer")
async def offer(request: Request):
    """WebRTC signalling: the browser's SDP offer in, the answer out; the session then runs
    on the peer connection (audio both ways, events on the client's ``agent`` data channel)."""
    app = request.app
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return respond(400, "the body must be JSON: {\"sdp\": \"...\", \"type\": \"offer\"}", "invalid_request")
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        return respond(400, "expected {\"sdp\": <the offer's SDP>, \"type\": \"offer\"}", "invalid_request", "sdp")
    try:
        agent = await get_agent(app)
    except VoxaError as e:
        return respond(503, f"the agent cannot start: {e}", "agent_unavailable")
    try:
        slot = agent.session()
        slot.__enter__()
    except VoxaError as e:
        return respond(429, str(e), "rate_limit_exceeded")
    try:
        from pipecat.transports.base_transport import TransportParams
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
        from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

        from ..agent.pipeline import build
        from ..tts import load_voice

        conn = SmallWebRTCConnection(ice_servers=list(agent.config.ice_servers))
        try:
            await conn.initialize(sdp=body["sdp"], type="offer")
        except Exception as e:  # aiortc's parse errors
            raise _BadOffer(f"the SDP offer could not be used: {e}") from None
        transport = SmallWebRTCTransport(webrtc_connection=conn, params=TransportParams(
            audio_in_enabled=True, audio_out_enabled=True, audio_in_sample_rate=16000,
            audio_out_sample_rate=load_voice(agent.config.voice).sample_rate))
        engine = await run_in_threadpool(_engine, agent.config.stt_model)
        worker = build(agent, transport, actor=_request_actor(request), on_latency=_observe(app),
                       scheduler=_scheduler(app, engine))
        answer = conn.get_answer()
    except _BadOffer as e:
        slot.__exit__(None, None, None)
        return respond(400, str(e), "invalid_request", "sdp")
    except BaseException:
        slot.__exit__(None, None, None)
        raise
    sessions = app.state.__dict__.setdefault("agent_tasks", set())
    task = asyncio.get_running_loop().create_task(_run(app, worker, slot, conn))
    sessions.add(task)
    task.add_done_callback(sessions.discard)
    return answer


class _BadOffer(Exception):
    pass


async def _run(app, worker, slot, conn) -> None:
    from pipecat.workers.runner import WorkerRunner

    app.state.metrics.agent_sessions.inc()
    try:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.wait_for(runner.run(), timeout=app.state.agent.config.max_session_s)
    except TimeoutError:
        log.info("agent session reached its time limit")
    except Exception:
        log.exception("agent session failed")
    finally:
        app.state.metrics.agent_sessions.dec()
        slot.__exit__(None, None, None)
        try:
            await conn.disconnect()
        except Exception:
            pass


def _request_actor(request: Request) -> str:
    return getattr(request.state, "actor", None) or f"client:{request.client.host if request.client else 'unknown'}"


@router.websocket("/v1/agent")
async def agent_ws(ws: WebSocket):
    app = ws.app
    ok, subprotocol = _authorized(ws, app.state.config)
    if not ok:
        await ws.send_denial_response(respond(401, "missing or wrong API key: send Authorization: Bearer <key> "
                                                   "(or the subprotocols 'token', '<key>')", "invalid_api_key"))
        return
    rate = ws.query_params.get("sample_rate", "16000")
    if not rate.isdigit() or not 8000 <= int(rate) <= 48000:
        await ws.send_denial_response(respond(400, f"sample_rate must be an integer from 8000 to 48000, not {rate!r}",
                                              "invalid_request", "sample_rate"))
        return
    try:
        agent = await get_agent(app)
    except VoxaError as e:
        await ws.send_denial_response(respond(503, f"the agent cannot start: {e}", "agent_unavailable"))
        return
    try:
        slot = agent.session()
        slot.__enter__()
    except VoxaError as e:
        await ws.send_denial_response(respond(429, str(e), "rate_limit_exceeded"))
        return
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

    from ..agent.pipeline import build
    from ..agent.wire import AgentSerializer

    try:
        await ws.accept(subprotocol=subprotocol)
        loop = asyncio.get_running_loop()

        def bad_message(message: str) -> None:
            loop.create_task(ws.send_text(json.dumps({"type": "error", "message": message})))

        cfg = agent.config
        from ..tts import load_voice

        out_rate = load_voice(cfg.voice).sample_rate
        transport = FastAPIWebsocketTransport(ws, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, allowed_origins=[],
            audio_in_sample_rate=int(rate), audio_out_sample_rate=out_rate,
            serializer=AgentSerializer(int(rate), on_error=bad_message),
            session_timeout=int(agent.config.max_session_s)))
        await ws.send_text(json.dumps({"type": "session", "output_sample_rate": out_rate,
                                       "input_sample_rate": int(rate), "llm": cfg.llm.model or "smollm2-135m-instruct",
                                       "stt_model": cfg.stt_model}))
        app.state.metrics.agent_sessions.inc()
        try:
            from pipecat.workers.runner import WorkerRunner

            engine_scheduler = _scheduler(app, await run_in_threadpool(_engine, cfg.stt_model))
            worker = build(agent, transport, actor=_actor(ws), on_latency=_observe(app),
                           scheduler=engine_scheduler)
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            await runner.run()
        finally:
            app.state.metrics.agent_sessions.dec()
    finally:
        slot.__exit__(None, None, None)


def _engine(name: str):
    from ..asr import load_model

    return load_model(name)


def _actor(ws: WebSocket) -> str:
    from ..safety.audit import key_id
    from .config import header_token

    token = header_token(ws.headers.get("authorization", ""), ("bearer", "token"))
    if ws.app.state.config.api_keys and token:
        return key_id(token)
    return f"client:{ws.client.host if ws.client else 'unknown'}"

