"""The ``WS /v1/agent`` protocol: raw audio both ways, JSON events as text messages.

Client → server: binary messages of 16-bit little-endian mono PCM at the ``sample_rate`` query
parameter (16000 by default), in real time and continuously (silence too: the voice detector
needs it to hear a pause). Text messages: ``{"type": "say", "text": ...}`` makes the bot say
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


class AgentSerializer(FrameSerializer):
    def __init__(self, sample_rate: int = 16000, on_error=None):
        super().__init__()
        self.sample_rate = sample_rate
        self.on_error = on_error  # called with a message for a bad client message

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
