"""The ``WS /v1/agent`` protocol: raw audio both ways, JSON events as text messages.

Client → server: binary messages of 16-bit little-endian mono PCM at the ``sample_rate`` query
parameter (16000 by default), in real time and continuously (silence too: the voice detector
needs it to hear a pause). Audio more than 10 s ahead of real time is read only as real time
catches up (:class:`Pace`). Text messages: ``{"type": "say", "text": ...}`` makes the bot say
something; anything else gets an ``error`` event.

Server → client: binary messages of 16-bit PCM at ``output_sample_rate`` (the voice's rate,
sent in the first ``session`` event), paced in real time; text messages are JSON events:
``session``, ``transcript`` (``text``, ``is_final``), ``agent_response`` (``text``),
``interrupted`` (drop any bot audio still buffered), ``latency`` (per turn, see
:class:`voxa.agent.pipeline.TurnTimer`) and ``error``.
"""

from __future__ import annotations

import json

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSSpeakFrame,
)
from pipecat.serializers.base_serializer import FrameSerializer


MAX_AHEAD_S = 10.0  # audio a client may send ahead of real time


class Pace:
    """Keeps a client's audio to real time plus ``MAX_AHEAD_S``: awaited after each piece of audio,
    it sleeps while the client is further ahead, and the socket is not read meanwhile, so a
    flood waits in the client's socket instead of growing the pipeline's queues."""

    def __init__(self, max_ahead_s: float = MAX_AHEAD_S):
        self.max_ahead_s, self.t0, self.seconds = max_ahead_s, None, 0.0

    async def __call__(self, seconds: float) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        if self.t0 is None:
            self.t0 = loop.time()
        self.seconds += seconds
        ahead = self.seconds - (loop.time() - self.t0)
        if ahead > self.max_ahead_s:
            await asyncio.sleep(ahead - self.max_ahead_s)


class AgentSerializer(FrameSerializer):
    def __init__(self, sample_rate: int = 16000, on_error=None):
        super().__init__()
        self.sample_rate = sample_rate
        self.on_error = on_error  # called with a message for a bad client message
        self.pace = Pace()

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, OutputAudioRawFrame):
            return frame.audio
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            return json.dumps(frame.message)
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, (bytes, bytearray)):
            if len(data) % 2:
                return self._error("audio messages must hold whole 16-bit samples (an even number of bytes)")
            await self.pace(len(data) / 2 / self.sample_rate)
            return InputAudioRawFrame(audio=bytes(data), sample_rate=self.sample_rate, num_channels=1) if data else None
        try:
            msg = json.loads(data)
        except json.JSONDecodeError:
            return self._error("text messages must be JSON objects")
        if not isinstance(msg, dict):
            return self._error("text messages must be JSON objects")
        if msg.get("type") == "say" and isinstance(msg.get("text"), str) and msg["text"].strip():
            return TTSSpeakFrame(msg["text"][:2000])
        return self._error(f"unknown message type {msg.get('type')!r}: send audio as binary messages, "
                           "or {\"type\": \"say\", \"text\": ...}")

    def _error(self, message: str) -> None:
        if self.on_error:
            self.on_error(message)
        return None
