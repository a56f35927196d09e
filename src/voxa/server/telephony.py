"""``WS /v1/telephony/twilio``: phone calls through Twilio Media Streams, talking to the voice agent.

TwiML ``<Connect><Stream url="wss://HOST/v1/telephony/twilio">`` opens this socket for a call. The
call is one session of the same agent as ``WS /v1/agent``: a slot of ``agent.max_sessions``, the
shared models and the pipeline of :func:`voxa.agent.pipeline.build` (:mod:`.agent`'s ``_open``,
``loaded``, ``_worker`` and ``_run``). Only the wire differs, and for it Pipecat's own
``TwilioFrameSerializer`` is used: 8 kHz μ-law in base64 ``media`` events ⇄ the pipeline's PCM
(16 kHz in, the voice's rate out, resampled by soxr), and ``clear`` on barge-in. Built with
``auto_hang_up=False``, it never calls Twilio's REST API, so voxa holds no Twilio credentials; the
call ends when the socket closes (Twilio then goes on to the TwiML after ``<Connect>``). Added here:

* the handshake, read before Pipecat gets the socket: ``connected``, then ``start`` within 5 s with
  ``mediaFormat`` audio/x-mulaw, 8000 Hz, mono. A refusal closes the socket with a code and a
  reason: 1008 (no start, no API key), 1003 (another audio format, a binary message), 1007 (not a
  JSON object), 1009 (a message over 64 KB), 1013 (the agent is busy), 1011 (it cannot start).
* the API key. Twilio sends no header of ours, so besides ``Authorization`` or the subprotocols
  (as on /v1/agent) the key may come in ``start.customParameters.api_key``, set by the TwiML's
  ``<Parameter name="api_key" value="KEY"/>``. Not as ``?token=``: a query string ends up in access
  logs, and Twilio's Stream URL does not carry one. The start message is checked before a session
  slot is taken, so a caller without a key never holds one.
* marks. A ``mark`` follows each sentence's audio; Twilio echoes it once that audio has been played
  to the caller. The sentence reaches the assistant's memory only then, so after a barge-in the
  memory keeps what the caller heard, not all that was sent (Pipecat's serializer neither sends
  marks nor reads them). A mark not echoed within 5 s is taken as played.
* ``stop`` ends the session; ``dtmf`` enters the pipeline as Pipecat's InputDTMFFrame; unknown
  events and bad media are logged and ignored; voxa's JSON events (transcripts, latency) are not
  sent to Twilio.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import deque

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from ..errors import VoxaError
from .agent import _open, _out_rate, _run, _worker, _ws_actor, loaded
from .listen import Refused, _authorized

router = APIRouter()
log = logging.getLogger("voxa.server.telephony")

MAX_MESSAGE = 64 * 1024
START_TIMEOUT_S = 5.0
MARK_WAIT_S = 5.0
FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


class Hangup(Exception):
    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(reason)
        self.code, self.reason = code, reason[:120]  # a close reason holds 123 bytes


def parse(data: str | bytes | None) -> dict:
    """One Media Streams message (raises Hangup for what no Twilio would send)."""
    if not isinstance(data, str):
        raise Hangup(1003, "Media Streams messages are JSON text, not binary")
    if len(data) > MAX_MESSAGE:
        raise Hangup(1009, f"a message is over {MAX_MESSAGE // 1024} KB")
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):
        raise Hangup(1007, "a message is not JSON") from None
    if not isinstance(msg, dict):
        raise Hangup(1007, "a message is not a JSON object")
    return msg


async def read_start(ws: WebSocket) -> dict:
    """The ``start`` message's ``start`` object, checked (``connected`` and others before it are skipped)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            raw = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        except TimeoutError:
            raise Hangup(1008, f"no start message within {START_TIMEOUT_S:g} s") from None
        if raw["type"] == "websocket.disconnect":
            raise Hangup(None)
        msg = parse(raw.get("text") if raw.get("text") is not None else raw.get("bytes"))
        if msg.get("event") != "start":
            if msg.get("event") != "connected":
                log.warning("ignoring a %r event before the start message", str(msg.get("event"))[:40])
            continue
        start = msg.get("start")
        if not isinstance(start, dict) or not isinstance(start.get("streamSid"), str) or not start["streamSid"]:
            raise Hangup(1008, "the start message has no start.streamSid")
        fmt = start.get("mediaFormat")
        if not isinstance(fmt, dict) or any(fmt.get(k) != v for k, v in FORMAT.items()):
            raise Hangup(1003, "mediaFormat must be audio/x-mulaw at 8000 Hz, 1 channel")
        if not isinstance(start.get("customParameters"), dict):
            start["customParameters"] = {}
        return start


class Socket:
    """The call's WebSocket as Pipecat sees it: closing uses the hang-up's code and reason (Pipecat's
    own close says 1000) and happens once."""

    def __init__(self, ws: WebSocket):
        self._ws, self.ending = ws, None

    def __getattr__(self, name):
        return getattr(self._ws, name)

    async def close(self, code: int = 1000, reason: str | None = None):
        code, reason = self.ending or (code, reason)
        if WebSocketState.DISCONNECTED not in (self._ws.application_state, self._ws.client_state):
            await self._ws.close(code, reason or None)


@router.websocket("/v1/telephony/twilio")
async def twilio(ws: WebSocket):
    app = ws.app
    config = app.state.config
    ok, subprotocol = _authorized(ws, config)
    await ws.accept(subprotocol=subprotocol)
    sock = Socket(ws)
    try:
        start = await read_start(ws)
        key = start["customParameters"].get("api_key")
        if not ok and not config.accepts(key if isinstance(key, str) else ""):
            raise Hangup(1008, 'missing or wrong API key: add <Parameter name="api_key" value="KEY"/> to the Stream')
        try:
            agent = await _open(app)
        except Refused as r:
            raise Hangup(1013 if r.status == 429 else 1011, r.message) from None
    except Hangup as h:
        if h.code is not None:
            log.info("refusing a Twilio stream: %s", h.reason)
            sock.ending = (h.code, h.reason)
            await sock.close()
        return
    started = False
    try:
        try:
            await loaded(app, agent)
        except VoxaError as e:
            log.error("the agent cannot start: %s", e)
            sock.ending = (1011, "the agent cannot start")
            await sock.close()
            return
        from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

        from ..safety.audit import key_id

        Serializer, Transport = _pipecat()
        serializer = Serializer(start, sock)
        transport = Transport(sock, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, allowed_origins=[],
            audio_in_sample_rate=16000, audio_out_sample_rate=_out_rate(agent), serializer=serializer))
        serializer.output = transport.output()
        actor = key_id(key) if config.api_keys and not ok else _ws_actor(ws)  # the key's id, never the key
        log.info("Twilio call %s (stream %s) connected", str(start.get("callSid"))[:40], start["streamSid"][:40])
        serializer.worker = await _worker(app, agent, transport, actor)
        started = True
        await _run(app, agent, serializer.worker)
    finally:
        if not started:
            agent.release()


@functools.cache
def _pipecat():
    """The Pipecat classes for a call (made at the first call: Pipecat is the optional ``agent`` extra)."""
    from pipecat.frames.frames import (
        CancelFrame, EndFrame, InterruptionFrame, OutputTransportMessageFrame, OutputTransportMessageUrgentFrame,
        SystemFrame, TTSTextFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketOutputTransport, FastAPIWebsocketTransport

    from ..agent.wire import Pace

    class Serializer(TwilioFrameSerializer):
        def __init__(self, start: dict, sock: Socket):
            super().__init__(start["streamSid"], call_sid=start.get("callSid"), account_sid=start.get("accountSid"),
                             params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
            self.sock, self.worker, self.output, self.warnings = sock, None, None, 0
            self.pace = Pace()

        async def serialize(self, frame):
            if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
                return None  # voxa's JSON events are for its own clients
            return await super().serialize(frame)

        async def deserialize(self, data):
            if self.sock.ending:
                return None
            try:
                msg = parse(data)
            except Hangup as h:
                return await self.end(h.code, h.reason)
            event = msg.get("event")
            if event in ("media", "dtmf"):
                try:
                    frame = await super().deserialize(data)
                except (ValueError, TypeError, AttributeError) as e:  # bad base64, wrong shapes
                    return self.warn(f"ignoring a bad {event} message ({type(e).__name__})")
                if event == "media" and frame is not None:  # Twilio sends in real time; a flood waits
                    await self.pace(len(frame.audio) / 2 / frame.sample_rate)
                if event == "dtmf":
                    log.info("the caller pressed %s", getattr(getattr(frame, "button", None), "value", "?"))
                return frame
            if event == "mark":
                name = msg["mark"].get("name") if isinstance(msg.get("mark"), dict) else None
                if isinstance(name, str) and self.output is not None:
                    await self.output.played(name)
            elif event == "stop":
                await self.end(1000, "the call ended")
            elif event not in ("connected", "start"):
                self.warn(f"ignoring an unknown event {str(event)[:40]!r}")
            return None

        def warn(self, message: str) -> None:
            self.warnings += 1
            if self.warnings <= 10:  # a flood is not logged in full
                log.warning("Twilio stream %s: %s", self._stream_sid[:40], message)

        async def end(self, code: int, reason: str) -> None:
            if code != 1000:
                log.info("hanging up Twilio stream %s: %s", self._stream_sid[:40], reason)
            self.sock.ending = (code, reason)
            if self.worker is not None:
                await self.worker.cancel(reason=reason)  # Pipecat then closes the socket with this code

    class Output(FastAPIWebsocketOutputTransport):
        """Sends a mark after each sentence's audio, and holds the sentence (and every frame after it)
        back from the assistant's memory until Twilio echoes the mark; drops them on barge-in."""

        def __init__(self, *args, stream_sid: str, **kw):
            super().__init__(*args, **kw)
            self._sid, self._count = stream_sid, 0
            self._marks: dict[int, str] = {}  # frame id -> the mark sent after its audio
            self._held: deque = deque()  # (mark name or None, frame), in order
            self._timers: dict[str, asyncio.TimerHandle] = {}  # a mark not echoed is taken as played after MARK_WAIT_S

        async def write_transport_frame(self, frame):  # in step with the audio: after the sentence's own
            if isinstance(frame, TTSTextFrame):
                self._count += 1
                name = self._marks[frame.id] = f"voxa-{self._count}"
                await self._client.send(json.dumps({"event": "mark", "streamSid": self._sid, "mark": {"name": name}}))
            await super().write_transport_frame(frame)

        async def push_frame(self, frame, direction=FrameDirection.DOWNSTREAM):
            if direction == FrameDirection.DOWNSTREAM:
                if isinstance(frame, (InterruptionFrame, CancelFrame)):  # not played: forgotten
                    kept = [f for _, f in self._held if not f.interruptible]
                    self._held.clear()
                    self._marks.clear()
                    self._cancel_timers()
                    for f in kept:
                        await super().push_frame(f)
                elif isinstance(frame, EndFrame):
                    await self._release(None)
                elif not isinstance(frame, SystemFrame) and (self._held or frame.id in self._marks):
                    name = self._marks.pop(frame.id, None)
                    self._held.append((name, frame))
                    if name is not None:
                        self._timers[name] = self.get_event_loop().call_later(
                            MARK_WAIT_S, lambda: self.create_task(self.played(name)))
                    return
            await super().push_frame(frame, direction)

        async def played(self, name: str) -> None:
            """Twilio played the audio up to mark ``name`` (an unknown name, e.g. echoed after a clear, is ignored)."""
            if any(n == name for n, _ in self._held):
                await self._release(name)

        async def _release(self, name: str | None) -> None:
            """Pass on the held frames up to the one marked ``name`` and the unmarked ones after it (all for None)."""
            done = False
            while self._held and not (done and self._held[0][0] is not None):
                n, frame = self._held.popleft()
                done = done or (name is not None and n == name)
                if n is not None and (timer := self._timers.pop(n, None)):
                    timer.cancel()
                await super().push_frame(frame)

        def _cancel_timers(self):
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

        async def cleanup(self):
            self._cancel_timers()
            await super().cleanup()

    class Transport(FastAPIWebsocketTransport):
        def __init__(self, sock: Socket, params):
            super().__init__(sock, params)
            self._output = Output(self, self._client, self._params, stream_sid=params.serializer._stream_sid,
                                  name=self._output_name)

    return Serializer, Transport
