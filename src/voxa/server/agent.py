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
from .listen import Refused, _authorized, _scheduler

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


async def _open(app):
    """The agent, with a session slot taken (raises Refused: 503 if it cannot start, 429 if busy)."""
    try:
        agent = await get_agent(app)
    except VoxaError as e:
        raise Refused(503, f"the agent cannot start: {e}", code="agent_unavailable") from None
    try:
        agent.acquire()
    except VoxaError as e:
        raise Refused(429, str(e), code="rate_limit_exceeded") from None
    return agent


async def _worker(app, agent, transport, actor: str):
    """One session's pipeline, decoding on the app's shared scheduler for the model."""
    from ..agent.pipeline import build
    from ..asr import load_model

    engine = await run_in_threadpool(load_model, agent.config.stt_model)
    return build(agent, transport, actor=actor, on_latency=_observe(app), scheduler=_scheduler(app, engine))


async def _run(app, agent, worker) -> None:
    """Run a session to its end (client gone, a tool ended the call, or the time limit), then free its slot."""
    from pipecat.workers.runner import WorkerRunner

    app.state.metrics.agent_sessions.inc()
    try:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.wait_for(runner.run(), timeout=agent.config.max_session_s)
    except TimeoutError:
        log.info("agent session reached its time limit (%.0f s)", agent.config.max_session_s)
        await worker.cancel(reason="session time limit")
    finally:
        app.state.metrics.agent_sessions.dec()
        agent.release()


def _observe(app):
    metrics = app.state.metrics

    def observe(row: dict) -> None:
        from ..agent.pipeline import STAGES

        for stage in STAGES:
            if row.get(stage) is not None:
                metrics.agent_latency.labels(stage.removesuffix("_ms")).observe(row[stage] / 1000.0)
        metrics.agent_turns.inc()

    return observe


def _out_rate(agent) -> int:
    from ..tts import load_voice

    return load_voice(agent.config.voice).sample_rate


@router.get("/agent", response_class=HTMLResponse, include_in_schema=False)
def page():
    return files("voxa.server").joinpath("static/agent.html").read_text(encoding="utf-8")


@router.get("/agent/config", include_in_schema=False)
def page_config(request: Request):
    return {"ice_servers": [{"urls": u} for u in request.app.state.config.agent.ice_servers]}


@router.post("/offer")
async def offer(request: Request):
    """WebRTC signalling: the browser's SDP offer in, the answer out; the session then runs
    on the peer connection (audio both ways, events on the client's ``agent`` data channel)."""
    app = request.app
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        return respond(400, "expected a JSON body {\"sdp\": <the offer's SDP>, \"type\": \"offer\"}",
                       "invalid_request", "sdp")
    try:
        agent = await _open(app)
    except Refused as r:
        return respond(r.status, r.message, r.code)
    started = False
    try:
        from pipecat.transports.base_transport import TransportParams
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
        from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

        conn = SmallWebRTCConnection(ice_servers=list(agent.config.ice_servers))
        try:
            await conn.initialize(sdp=body["sdp"], type="offer")
        except Exception as e:  # aiortc's SDP parse errors
            return respond(400, f"the SDP offer could not be used: {e}", "invalid_request", "sdp")
        transport = SmallWebRTCTransport(webrtc_connection=conn, params=TransportParams(
            audio_in_enabled=True, audio_out_enabled=True, audio_in_sample_rate=16000,
            audio_out_sample_rate=_out_rate(agent)))
        actor = getattr(request.state, "actor", None) or f"client:{request.client.host if request.client else '?'}"
        worker = await _worker(app, agent, transport, actor)
        answer = conn.get_answer()
        tasks = app.state.__dict__.setdefault("agent_tasks", set())  # keep a reference while it runs
        task = asyncio.get_running_loop().create_task(_run(app, agent, worker))
        started = True
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return answer
    finally:
        if not started:
            agent.release()


@router.websocket("/v1/agent")
async def agent_ws(ws: WebSocket):
    app = ws.app
    ok, subprotocol = _authorized(ws, app.state.config)
    rate = ws.query_params.get("sample_rate", "16000")
    try:
        if not ok:
            raise Refused(401, "missing or wrong API key: send Authorization: Bearer <key> "
                               "(or the subprotocols 'token', '<key>')", code="invalid_api_key")
        if not rate.isdigit() or not 8000 <= int(rate) <= 48000:
            raise Refused(400, f"sample_rate must be an integer from 8000 to 48000, not {rate!r}", "sample_rate")
        agent = await _open(app)
    except Refused as r:
        await ws.send_denial_response(respond(r.status, r.message, r.code, r.param))
        return
    started = False
    try:
        from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

        from ..agent.wire import AgentSerializer

        await ws.accept(subprotocol=subprotocol)
        loop = asyncio.get_running_loop()

        def bad_message(message: str) -> None:
            loop.create_task(ws.send_text(json.dumps({"type": "error", "message": message})))

        out_rate = _out_rate(agent)
        transport = FastAPIWebsocketTransport(ws, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, allowed_origins=[],
            audio_in_sample_rate=int(rate), audio_out_sample_rate=out_rate,
            serializer=AgentSerializer(int(rate), on_error=bad_message)))
        cfg = agent.config
        await ws.send_text(json.dumps({"type": "session", "output_sample_rate": out_rate, "input_sample_rate": int(rate),
                                       "llm": cfg.llm.model or "smollm2-135m-instruct", "stt_model": cfg.stt_model}))
        worker = await _worker(app, agent, transport, _ws_actor(ws))
        started = True
        await _run(app, agent, worker)
    finally:
        if not started:
            agent.release()


def _ws_actor(ws: WebSocket) -> str:
    from ..safety.audit import key_id
    from .config import header_token

    token = header_token(ws.headers.get("authorization", ""), ("bearer", "token"))
    if ws.app.state.config.api_keys and token:
        return key_id(token)
    return f"client:{ws.client.host if ws.client else 'unknown'}"
