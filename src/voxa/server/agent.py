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
    """The app's agent: made on first use without its models (settings and tools only, quick),
    so session slots can be counted before anything heavy happens; see :func:`loaded`."""
    if getattr(app.state, "agent", None) is None:
        from ..agent import Agent

        app.state.agent = Agent(app.state.config.agent, preload=False)
    return app.state.agent


async def loaded(app, agent) -> None:
    """Load the agent's models once (off the event loop: it takes seconds). A WebSocket is
    accepted before this, so its handshake never waits for models on a busy machine."""
    lock = app.state.__dict__.setdefault("agent_lock", asyncio.Lock())
    async with lock:
        if not agent.ready:
            await run_in_threadpool(agent.preload)


async def accept_loaded(ws, agent, subprotocol: str | None, error_text) -> bool:
    """Accept a session's WebSocket, then load the agent's models; if they cannot load, send
    ``error_text(message)`` (the socket's protocol's error) and close with 1011."""
    await ws.accept(subprotocol=subprotocol)
    try:
        await loaded(ws.app, agent)
        return True
    except VoxaError as e:
        await ws.send_text(error_text(f"the agent cannot start: {e}"))
        await ws.close(1011, "the agent cannot start")
        return False


async def _open(app):
    """The agent, with a session slot taken (raises Refused: 503 if its settings are wrong,
    429 if busy)."""
    try:
        agent = await get_agent(app)
    except VoxaError as e:
        raise Refused(503, f"the agent cannot start: {e}", code="agent_unavailable") from None
    try:
        agent.acquire()
    except VoxaError as e:
        raise Refused(429, str(e), code="rate_limit_exceeded") from None
    return agent


async def _worker(app, agent, transport, actor: str, protocol=None):
    """One session's pipeline, decoding on the app's shared scheduler for the model
    (``protocol``: see :func:`voxa.agent.pipeline.build`)."""
    from ..agent.pipeline import build
    from ..asr import load_model

    engine = await run_in_threadpool(load_model, agent.config.stt_model)
    return build(agent, transport, actor=actor, on_latency=_observe(app), scheduler=_scheduler(app, engine),
                 protocol=protocol)


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


MAX_SDP = 64 * 1024
SDP_NEEDS = (("m=audio ", "an audio section (m=audio)"), ("a=ice-ufrag:", "ICE credentials (a=ice-ufrag)"),
             ("a=ice-pwd:", "ICE credentials (a=ice-pwd)"), ("a=fingerprint:", "a DTLS fingerprint (a=fingerprint)"))


def sdp_problem(sdp: str) -> str | None:
    """Why ``sdp`` cannot be a browser's WebRTC audio offer (None when it can): checked before a
    session slot is taken, so junk never holds one."""
    if len(sdp) > MAX_SDP:
        return f"the SDP offer is over {MAX_SDP // 1024} KB"
    lines = [line.strip() for line in sdp.strip().splitlines()]
    if not lines or lines[0] != "v=0":
        return "the SDP offer must start with v=0"
    bad = next((line for line in lines if len(line) < 2 or line[1] != "=" or not line[0].isalpha()), None)
    if bad is not None:
        return f"the SDP offer has a malformed line {bad[:40]!r}"
    for prefix, what in SDP_NEEDS:
        if not any(line.startswith(prefix) for line in lines):
            return f"the SDP offer has no {what}"
    return None


async def _packets_in(pc) -> int:
    stats = await pc.getStats()
    return sum(getattr(s, "packetsReceived", 0) or 0 for s in stats.values() if getattr(s, "type", "") == "inbound-rtp")


async def watch_peer(conn, worker, config, *, poll_s: float = 0.5) -> str:
    """End a WebRTC session whose peer never connects (``connect_timeout_s``), fails or closes,
    or stops sending audio packets for ``drop_timeout_s`` (a browser sends them all the time,
    silence included). Returns the reason once it has cancelled the session."""
    loop = asyncio.get_running_loop()
    start = last_change = loop.time()
    connected, packets = False, -1
    while True:
        await asyncio.sleep(poll_s)
        now, state = loop.time(), conn.pc.connectionState
        if state in ("failed", "closed"):
            reason = f"the peer connection {state}"
            break
        if state == "connected":
            connected = True
            n = await _packets_in(conn.pc)
            if n != packets:
                packets, last_change = n, now
            elif now - last_change > config.drop_timeout_s:
                reason = f"no audio from the peer for {config.drop_timeout_s:g} s"
                break
        elif not connected and now - start > config.connect_timeout_s:
            reason = f"the peer did not connect within {config.connect_timeout_s:g} s"
            break
        elif connected and now - last_change > config.drop_timeout_s:
            reason = f"the peer connection is {state}"
            break
    log.info("ending an agent session: %s", reason)
    await worker.cancel(reason=reason)
    return reason


@router.post("/offer")
async def offer(request: Request):
    """WebRTC signalling: the browser's SDP offer in, the answer out; the session then runs
    on the peer connection (audio both ways, events on the client's ``agent`` data channel).
    A junk offer is a 400 and takes no session; a session whose peer never connects, or
    leaves, is ended within seconds (:func:`watch_peer`)."""
    app = request.app
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        return respond(400, "expected a JSON body {\"sdp\": <the offer's SDP>, \"type\": \"offer\"}",
                       "invalid_request", "sdp")
    if (problem := sdp_problem(body["sdp"])) is not None:
        return respond(400, problem, "invalid_sdp", "sdp")
    try:
        agent = await _open(app)
    except Refused as r:
        return respond(r.status, r.message, r.code)
    started = False
    try:
        try:
            await loaded(app, agent)
        except VoxaError as e:
            return respond(503, f"the agent cannot start: {e}", "agent_unavailable")
        from pipecat.transports.base_transport import TransportParams
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
        from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

        conn = SmallWebRTCConnection(ice_servers=list(agent.config.ice_servers))
        try:
            await conn.initialize(sdp=body["sdp"], type="offer")
        except Exception as e:  # aiortc's SDP parse errors
            await conn.disconnect()
            return respond(400, f"the SDP offer could not be used: {e}", "invalid_sdp", "sdp")
        transport = SmallWebRTCTransport(webrtc_connection=conn, params=TransportParams(
            audio_in_enabled=True, audio_out_enabled=True, audio_in_sample_rate=16000,
            audio_out_sample_rate=_out_rate(agent)))
        actor = getattr(request.state, "actor", None) or f"client:{request.client.host if request.client else '?'}"
        worker = await _worker(app, agent, transport, actor)
        answer = conn.get_answer()
        tasks = app.state.__dict__.setdefault("agent_tasks", set())  # keep a reference while it runs
        loop = asyncio.get_running_loop()
        task = loop.create_task(_run(app, agent, worker))
        started = True
        watchdog = loop.create_task(watch_peer(conn, worker, agent.config))
        task.add_done_callback(lambda _: watchdog.cancel())
        for t in (task, watchdog):
            tasks.add(t)
            t.add_done_callback(tasks.discard)
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

        if not await accept_loaded(ws, agent, subprotocol, lambda m: json.dumps({"type": "error", "message": m})):
            return
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
