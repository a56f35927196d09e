"""The route's side of a Realtime conversation session: a slot of the voice agent, its models,
the transport and the pipeline (the protocol itself: :mod:`.conversation`)."""

from __future__ import annotations

import json
import logging

from fastapi import WebSocket

from ..agent import _open, _run, _worker, _ws_actor, accept_loaded
from ..errors import respond
from ..listen import Refused
from .conversation import Conversation
from .transport import Realtime, pieces
from .wire import FORMATS, Settings, TurnDetection, error, event, new_id

log = logging.getLogger("voxa.server.realtime")


async def converse(ws: WebSocket, subprotocol: str | None) -> None:
    app, config = ws.app, ws.app.state.config
    try:
        agent = await _open(app)  # one of agent.max_sessions, as /v1/agent
    except Refused as r:
        await ws.send_denial_response(respond(r.status, r.message, r.code, r.param))
        return
    started = False
    try:
        if not await accept_loaded(ws, agent, subprotocol,
                                   lambda m: json.dumps(error(m, code="server_error", kind="server_error"))):
            return
        from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

        from ..speech import voice_id

        session_id = new_id("sess")
        settings = Settings(type="realtime", beta=ws.headers.get("openai-beta", "").startswith("realtime"),
                            voice=agent.config.voice,  # the agent's own end of turn is smart-turn's:
                            turn=TurnDetection(kind="semantic_vad", eagerness="auto"))  # see policy_for
        conv = Conversation(settings, session_id, voice_id=lambda name: voice_id(name, None, config.voice_map),
                            max_event_bytes=config.max_frame_bytes * 4 // 3 + 1024)
        Serializer, _, Transport, _ = pieces()
        transport = Transport(ws, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, allowed_origins=[],
            audio_in_sample_rate=16000, audio_out_sample_rate=FORMATS[settings.output_format][1],
            serializer=Serializer(conv)), conv)
        await ws.send_text(json.dumps(event("session.created", session=conv.session_dict())))
        worker = await _worker(app, agent, transport, _ws_actor(ws), protocol=Realtime(conv, agent))
        started = True
        await _run(app, agent, worker)
    finally:
        if not started:
            agent.release()
