"""One agent session as a Pipecat pipeline, and the small processors voxa adds to it.

    transport in → voxa STT (interim + final) → events → user turn (Silero VAD + smart-turn)
    → LLM → voxa TTS (sentence by sentence, watermarked) → transport out → assistant memory

``Events`` sends the article's client protocol on the transport (the WebRTC data channel or the
WebSocket's text messages): ``{"type": "transcript", "text", "is_final"}`` for the user,
``{"type": "agent_response", "text"}`` for each sentence the bot speaks, ``{"type":
"interrupted"}`` on barge-in and ``{"type": "latency", ...}`` once per turn (:class:`TurnTimer`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMTextFrame,
    OutputTransportMessageUrgentFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start.base_user_turn_start_strategy import BaseUserTurnStartStrategy

log = logging.getLogger("voxa.agent")

STAGES = ("turn_decided_ms", "asr_final_ms", "llm_first_token_ms", "tts_first_audio_ms", "voice_to_voice_ms")


class SustainedSpeechStart(BaseUserTurnStartStrategy):
    """The user's turn starts when Silero hears speech; while the bot is speaking, only after
    ``interrupt_speech_s`` of continuous speech, so a short backchannel ("mm-hm", "yeah") or a
    cough does not cut the bot off. ``allow_interruptions=False``: never while the bot speaks.

    ``awake`` (the STT service's, with a wake word) says whether the user is talking to the bot:
    speech before the wake word starts no turn; speech that goes on through it starts one there.

    ``vad`` (``voxa.turn.vad_analyzer()``) tells speech from the silence Silero waits out before
    it reports a stop; without it, a 0.3 s "mm-hm" plus that 0.2 s of silence would count as
    0.5 s of speech (tests/test_agent.py found exactly that).

    ``manual`` (the OpenAI Realtime API's ``turn_detection: null``): no turn starts on speech
    at all; the client says where its turns end, and interrupts with its own events."""

    def __init__(self, *, interrupt_speech_s: float = 0.5, allow_interruptions: bool = True, vad=None,
                 awake=None, **kw):
        super().__init__(enable_interruptions=allow_interruptions, **kw)
        self.interrupt_speech_s = interrupt_speech_s
        self.allow = allow_interruptions
        self.vad = vad
        self.awake = awake or (lambda: True)  # with a wake word: no turn (nor barge-in) before it is heard
        self._bot_speaking = False
        self._since: float | None = None  # when the current speech began (VAD start minus its start time)
        self.manual = False
        self.overlap = False  # turns start on speech even while the bot speaks, without cutting it off

    def interruptions(self, allow: bool) -> None:
        """A running session's setting changed (the Realtime API's ``interrupt_response``): True,
        the rule above; False, the user's turn starts as soon as they speak, the bot's answer
        plays on, and the next answer waits for it (the protocol's gate holds it)."""
        self.allow = self._enable_interruptions = allow
        self.overlap = not allow

    async def handle_user_turn_started(self):
        self._since = None

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if self.manual:
            return ProcessFrameResult.CONTINUE
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if self._since is not None and self.awake():  # the user was already talking when the bot finished
                return await self._start()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._since = time.monotonic() - (frame.start_secs or 0.0)
            if (not self._bot_speaking or self.overlap) and self.awake():
                return await self._start()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._since = None
        elif isinstance(frame, InputAudioRawFrame) and self._since is not None and self.awake():
            if not self._bot_speaking:  # the wake word was heard inside speech already going on
                return await self._start()
            hearing = getattr(self.vad, "hearing_speech", True)
            if self.allow and hearing and time.monotonic() - self._since >= self.interrupt_speech_s:
                return await self._start()
        return ProcessFrameResult.CONTINUE

    async def _start(self) -> ProcessFrameResult:
        self._since = None
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP


class Events(FrameProcessor):
    """Sends transcripts, the bot's sentences and barge-ins to the client as JSON messages."""

    def __init__(self, role: str, **kw):
        super().__init__(**kw)
        self.role = role  # "user": after the STT; "bot": after the TTS

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        message = None
        if self.role == "user" and isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame)):
            message = {"type": "transcript", "text": frame.text, "is_final": isinstance(frame, TranscriptionFrame)}
        elif self.role == "bot" and isinstance(frame, TTSTextFrame) and frame.text.strip():
            message = {"type": "agent_response", "text": frame.text.strip()}
        elif self.role == "user" and isinstance(frame, InterruptionFrame):
            message = {"type": "interrupted"}
        if message is not None:
            await self.push_frame(OutputTransportMessageUrgentFrame(message=message))
        await self.push_frame(frame, direction)


class TurnTimer(BaseObserver):
    """Per-turn latency, measured from the end of the user's speech (Silero's stop time minus
    its silence window): when the turn was decided, the ASR final, the LLM's first token,
    the TTS's first audio, and voice-to-voice (the first bot audio the output transport
    sends). ``report`` gets one dict per answered turn."""

    def __init__(self, report: Callable[[dict], None], **kw):
        super().__init__(**kw)
        self.report = report
        self._seen: set[int] = set()
        self._reset()
        self.turn = 0

    def _reset(self):
        self.speech_end = self.decided = self.final = self.first_token = self.first_audio = None
        self.text = ""

    async def on_push_frame(self, data: FramePushed):
        frame = data.frame
        if frame.id in self._seen:
            return
        self._seen.add(frame.id)
        if len(self._seen) > 50_000:
            self._seen.clear()
        now = time.time()
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.speech_end = None
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self.speech_end = frame.timestamp - frame.stop_secs if frame.timestamp else now - frame.stop_secs
        elif isinstance(frame, TranscriptionFrame):
            self.final = now
            self.text = (self.text + " " + frame.text).strip() if self.decided is None else self.text
        elif isinstance(frame, UserStoppedSpeakingFrame) and self.speech_end is not None:
            self.decided, self.first_token, self.first_audio = now, None, None
        elif isinstance(frame, LLMTextFrame) and self.decided and self.first_token is None:
            self.first_token = now
        elif isinstance(frame, TTSAudioRawFrame) and self.decided and self.first_audio is None:
            self.first_audio = now
        elif isinstance(frame, InterruptionFrame) and self.decided and self.first_audio is None:
            pass  # the user went on talking: this turn's answer is dropped; the next decision restarts it
        elif isinstance(frame, BotStartedSpeakingFrame) and self.decided and self.speech_end is not None:
            self.turn += 1
            ms = lambda t: round((t - self.speech_end) * 1000.0, 1) if t else None  # noqa: E731
            self.report({"type": "latency", "turn": self.turn, "user_text": self.text,
                         "turn_decided_ms": ms(self.decided), "asr_final_ms": ms(self.final),
                         "llm_first_token_ms": ms(self.first_token), "tts_first_audio_ms": ms(self.first_audio),
                         "voice_to_voice_ms": ms(now)})
            self._reset()


def build(agent, transport, *, actor: str | None = None, on_latency=None, greeting: bool = True, scheduler=None,
          protocol=None):
    """The pipeline worker for one session on ``transport`` (a Pipecat transport).

    ``protocol`` puts another client protocol on the same session (the OpenAI Realtime API,
    :mod:`voxa.server.realtime.conversation`): its ``user_events()`` and ``bot_events()``
    processors take the places of :class:`Events`, its ``gate()`` processor goes between the
    user's turn and the LLM, its ``system_prompt`` and ``voice`` (when set) take the places of
    the agent's settings, and ``attach(stt=, llm=, tts=, context=, worker=, vad=, turn_analyzer=,
    policy=, start=, assistant=)`` is called once the pipeline is made (``start``: the
    :class:`SustainedSpeechStart`; ``assistant``: the assistant context aggregator). No greeting
    is spoken."""
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    from .. import turn
    from .llm import make_llm
    from .stt import VoxaSTTService
    from .tts import VoxaTTSService

    cfg = agent.config
    stt = VoxaSTTService(model=cfg.stt_model, language=cfg.language, scheduler=scheduler,
                         wake_word=cfg.wake_word, wake_idle_s=cfg.wake_idle_s)
    llm = make_llm(cfg.llm, system_prompt=getattr(protocol, "system_prompt", None) or cfg.system_prompt)
    tts = VoxaTTSService(voice=getattr(protocol, "voice", None) or cfg.voice, actor=actor,
                         origin=getattr(protocol, "origin", "agent"))
    context = LLMContext(tools=agent.tools_schema()) if agent.tools else LLMContext()
    vad = turn.vad_analyzer(cfg.turn)
    ends = turn.analyzer(cfg.turn)
    start = SustainedSpeechStart(interrupt_speech_s=cfg.interrupt_speech_s,
                                 allow_interruptions=cfg.allow_interruptions, vad=vad, awake=lambda: stt.awake)
    strategies = UserTurnStrategies(start=[start], stop=[turn.stop_strategy(cfg.turn, ends)])
    user, assistant = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(user_turn_strategies=strategies, vad_analyzer=vad))
    user_events, bot_events = (protocol.user_events(), protocol.bot_events()) if protocol else (Events("user"), Events("bot"))
    gate = [protocol.gate()] if protocol else []  # between the user's turn and the LLM
    pipeline = Pipeline([transport.input(), stt, user_events, user, *gate, llm, tts, bot_events,
                         transport.output(), assistant])

    worker: PipelineWorker | None = None

    def report(row: dict) -> None:
        log.info(json.dumps(row))
        if on_latency:
            on_latency(row)
        if worker is not None:
            asyncio.get_running_loop().create_task(worker.queue_frame(OutputTransportMessageUrgentFrame(message=row)))

    worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=16000,
                                                            audio_out_sample_rate=tts.voice.sample_rate,
                                                            enable_metrics=True),
                            observers=[TurnTimer(report)], enable_rtvi=False, idle_timeout_secs=None)
    if protocol is not None:
        greeting = False
        protocol.attach(stt=stt, llm=llm, tts=tts, context=context, worker=worker, vad=vad, turn_analyzer=ends,
                        policy=cfg.turn, start=start, assistant=assistant)

    @transport.event_handler("on_client_disconnected")
    async def _gone(transport, client):  # free the session at once: recogniser, synthesis, slot
        await worker.cancel(reason="client disconnected")

    if greeting and cfg.greeting:
        say = cfg.greeting

        @transport.event_handler("on_client_connected")
        async def _greet(transport, client):
            await worker.queue_frame(TTSSpeakFrame(say))

    return worker
