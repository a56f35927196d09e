"""The Pipecat side of a Realtime conversation session (:mod:`.conversation` is the protocol's
state): the serializer for the socket, the processor that reports the user's side, the output
transport that reports the response in step with its audio, and :class:`Realtime`, the
``protocol`` :func:`voxa.agent.pipeline.build` takes."""

from __future__ import annotations

import functools
import json
import logging

from ...agent.wire import Pace
from ...types import StreamResult
from .conversation import Conversation
from .wire import BadEvent, Settled, delta_after, error, event, new_id, settled_text, user_item_done

log = logging.getLogger("voxa.server.realtime")


@functools.cache
def pieces():
    """The protocol's Pipecat classes (made once, on first use: Pipecat is the optional ``agent`` extra)."""
    from dataclasses import dataclass

    from pipecat.frames.frames import (
        BotStoppedSpeakingFrame, DataFrame, InputAudioRawFrame, InterimTranscriptionFrame, InterruptionFrame,
        LLMMessagesAppendFrame, OutputAudioRawFrame, TranscriptionFrame, UserStoppedSpeakingFrame,
        VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.serializers.base_serializer import FrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketOutputTransport, FastAPIWebsocketTransport

    from ...audio import to_pcm16

    @dataclass
    class Mark(DataFrame):
        """A client's ``input_audio_buffer.commit`` or ``.clear`` with manual turns, pushed by the
        recogniser after the last words said before it (``VoxaSTTService.flush``)."""

        action: str = "commit"

    class Serializer(FrameSerializer):
        def __init__(self, conv: Conversation):
            super().__init__()
            self.conv = conv
            self.pace = Pace()  # at most MAX_AHEAD_S ahead of real time

        async def serialize(self, frame):
            conv = self.conv
            if isinstance(frame, OutputAudioRawFrame):
                events = conv.audio_delta(frame.audio, frame.sample_rate)
                await conv.send(*events[:-1])
                return json.dumps(events[-1]) if events else None
            return None  # voxa's own agent events (latency, transcripts) are not Realtime events

        async def deserialize(self, data):
            conv = self.conv
            eid = None
            try:
                if not isinstance(data, str):
                    raise BadEvent("events are JSON text messages; audio goes base64 in input_audio_buffer.append",
                                   code="invalid_event")
                if len(data) > conv.max_event_bytes:
                    raise BadEvent(f"an event of {len(data)} bytes is over the limit", code="invalid_event")
                try:
                    ev = json.loads(data)
                except (ValueError, RecursionError):
                    raise BadEvent("events must be JSON objects", code="invalid_json") from None
                if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
                    raise BadEvent("events must be JSON objects with a type", code="invalid_event")
                eid = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
                if ev["type"] == "input_audio_buffer.append":
                    if not isinstance(ev.get("audio"), str):
                        raise BadEvent("input_audio_buffer.append needs audio (base64)", param="audio")
                    x = conv.audio(ev["audio"])
                    conv.fresh_ms += x.size / 16
                    await self.pace(x.size / 16000)
                    return InputAudioRawFrame(audio=to_pcm16(x), sample_rate=16000, num_channels=1) if x.size else None
                await conv.handle(ev)
            except BadEvent as e:
                await conv.send(error(str(e), code=e.code, param=e.param, event_id=e.event_id or eid))
            return None

    class UserEvents(FrameProcessor):
        """The user's side: speech started/stopped, transcription deltas, the committed item."""

        def __init__(self, conv: Conversation):
            super().__init__()
            self.conv = conv
            self.item: dict | None = None
            self.finals: list[str] = []
            self.settled = Settled()  # which words of the item's interims can go out as deltas
            self.sent = ""
            self.start_ms = 0
            self.since_ms = 0  # manual turns: where the audio of the next commit starts

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            conv = self.conv
            if (conv.s.turn.kind is None or isinstance(frame, Mark)) and await self._manual(frame, direction):
                return
            try:
                if isinstance(frame, InterruptionFrame) and conv.response is not None:
                    await conv.send(*conv.finish("cancelled"))  # the user took the turn: the answer stops
                elif isinstance(frame, VADUserStartedSpeakingFrame):
                    await self._open(int(conv.audio.ms - 1000 * (frame.start_secs or 0.0)))
                elif isinstance(frame, VADUserStoppedSpeakingFrame) and self.item is not None:
                    end = int(conv.audio.ms - 1000 * (frame.stop_secs or 0.0))
                    await conv.send(event("input_audio_buffer.speech_stopped", audio_end_ms=max(end, self.start_ms),
                                          item_id=self.item["id"]))
                elif isinstance(frame, InterimTranscriptionFrame) and direction == FrameDirection.DOWNSTREAM:
                    await self._delta(" ".join([*self.finals, self._settled(frame)]).strip())
                elif isinstance(frame, TranscriptionFrame) and direction == FrameDirection.DOWNSTREAM:
                    if self.item is None:
                        await self._open(conv.audio.ms)
                    self.finals.append(frame.text.strip())
                    self.settled.clear()
                    await self._delta(" ".join(self.finals).strip())
                elif isinstance(frame, UserStoppedSpeakingFrame) and direction == FrameDirection.UPSTREAM \
                        and self.item is not None:
                    await self._commit()
            except Exception:  # the client left mid-send
                log.debug("realtime event not sent", exc_info=True)
            await self.push_frame(frame, direction)

        async def _manual(self, frame, direction) -> bool:
            """Manual turns (``turn_detection: null``): the words wait for the client's commit, and
            neither speech events nor the transcripts go on (no turn starts on speech). True when
            the frame is used up here."""
            if isinstance(frame, Mark):
                if frame.action == "commit":
                    await self._commit_manual()
                else:
                    self.item, self.finals = None, []
                self.since_ms = self.conv.audio.ms
                return True
            if isinstance(frame, TranscriptionFrame) and direction == FrameDirection.DOWNSTREAM:
                self.finals.append(frame.text.strip())
                return True
            if isinstance(frame, (VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)):
                await self.push_frame(frame, direction)  # on, but no speech_started / stopped events
                return True
            return isinstance(frame, InterimTranscriptionFrame) and direction == FrameDirection.DOWNSTREAM

        async def _commit_manual(self) -> None:
            conv, text = self.conv, " ".join(self.finals).strip()
            self.item, self.finals, self.sent = None, [], ""
            item, events = user_item_done(new_id("item"), conv.previous, text, "",
                                          (conv.audio.ms - self.since_ms) / 1000, beta=conv.s.beta)
            conv.remember(item)
            try:
                await conv.send(*events)
            except Exception:  # the client left mid-send
                log.debug("realtime event not sent", exc_info=True)
            if text:  # the LLM's context gets the turn; response.create asks for the answer
                await self.push_frame(LLMMessagesAppendFrame(messages=[{"role": "user", "content": text}],
                                                             run_llm=False))

        async def _open(self, ms: int) -> None:
            if self.item is None:
                self.item = {"id": new_id("item")}  # the user item being spoken (made whole at its commit)
                self.finals, self.sent, self.start_ms = [], "", max(ms, 0)
                self.settled.clear()
                await self.conv.send(event("input_audio_buffer.speech_started", audio_start_ms=self.start_ms,
                                           item_id=self.item["id"]))

        def _settled(self, frame) -> str:
            """The words of an interim that can go out as deltas, as in transcription sessions
            (:class:`.wire.Settled`; voxa's STT service puts the recogniser's result on the frame)."""
            result = getattr(frame, "result", None)
            if not isinstance(result, StreamResult):
                return ""
            return self.settled(result, extending=bool(self.sent))

        async def _delta(self, text: str) -> None:
            delta = delta_after(self.sent, settled_text(text)) if self.item is not None else ""
            if delta:
                self.sent += delta
                await self.conv.send(event("conversation.item.input_audio_transcription.delta",
                                           item_id=self.item["id"], content_index=0, delta=delta))

        async def _commit(self) -> None:
            conv, item_id = self.conv, self.item["id"]
            self.item = None
            item, events = user_item_done(item_id, conv.previous, " ".join(self.finals).strip(), self.sent,
                                          (conv.audio.ms - self.start_ms) / 1000, beta=conv.s.beta)
            conv.remember(item)
            conv.fresh_ms = 0
            await conv.send(*events)

    class Output(FastAPIWebsocketOutputTransport):
        """Sends the response's events in step with its audio."""

        def __init__(self, *args, conv: Conversation, **kw):
            super().__init__(*args, **kw)
            self.conv = conv

        async def write_transport_frame(self, frame):
            await self.conv.send(*self.conv.on_frame(frame))
            await super().write_transport_frame(frame)

        async def push_frame(self, frame, direction=FrameDirection.DOWNSTREAM):
            if isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
                await self.conv.send(*self.conv.on_frame(frame))
            await super().push_frame(frame, direction)

    class Transport(FastAPIWebsocketTransport):
        def __init__(self, ws, params, conv: Conversation):
            super().__init__(ws, params)
            self._output = Output(self, self._client, self._params, conv=conv, name=self._output_name)
            conv.client = self._client

    return Serializer, UserEvents, Transport, Mark


class Realtime:
    """The ``protocol`` for :func:`voxa.agent.pipeline.build`."""

    origin = "realtime"

    def __init__(self, conv: Conversation, agent):
        self.conv = conv
        self.system_prompt = conv.s.instructions or None
        self.voice = None
        self.base_tools = list(agent.tools)

    def user_events(self):
        _, UserEvents, _, _ = pieces()
        return UserEvents(self.conv)

    def bot_events(self):
        from pipecat.processors.filters.identity_filter import IdentityFilter

        return IdentityFilter()

    def gate(self):
        """Between the user's turn and the LLM: with ``create_response: false`` a finished turn
        starts no answer; only ``response.create`` (or a function's output) does. A turn that
        ends while an answer plays (``interrupt_response: false``) starts its answer when that
        one is done (:meth:`Conversation.finish` releases it)."""
        from pipecat.frames.frames import LLMContextFrame
        from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

        conv = self.conv

        class Gate(FrameProcessor):
            async def process_frame(self, frame, direction):
                await super().process_frame(frame, direction)
                if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
                    if conv.runs > 0:
                        conv.runs -= 1
                    elif not conv.s.turn.create_response:
                        return  # the turn is in the context; the client asks for the answer
                    if conv.response is not None:
                        conv.held = frame  # one answer at a time
                        return
                await self.push_frame(frame, direction)

        conv.gate = Gate()  # response.cancel interrupts from here: where the user's turn would
        return conv.gate

    def attach(self, *, stt, llm, tts, context, worker, vad=None, turn_analyzer=None, policy=None,
               start=None, assistant=None) -> None:
        conv = self.conv
        if assistant is not None:
            @assistant.event_handler("on_assistant_turn_stopped")
            async def _said(aggregator, message):
                conv.assistant_said()

        conv.stt, conv.llm, conv.tts, conv.context, conv.worker = stt, llm, tts, context, worker
        conv.vad, conv.turn_analyzer, conv.policy = vad, turn_analyzer, policy
        conv.start, conv.mark = start, pieces()[3]
        conv.allow_interruptions = start.allow if start is not None else True
        conv.base_tools = self.base_tools
