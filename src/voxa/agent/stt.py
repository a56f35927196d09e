"""voxa's live recogniser (:mod:`voxa.streaming`) as a Pipecat STT service.

Drop it into any Pipecat pipeline in place of a cloud STT service:

    from voxa.agent.stt import VoxaSTTService
    stt = VoxaSTTService(model="tiny.en")

Audio frames go to a :class:`voxa.streaming.Recognizer` as they arrive; its interim results come
out as ``InterimTranscriptionFrame`` and its finals as ``TranscriptionFrame``. When Pipecat's VAD
reports that the user stopped, the recogniser is asked to finalize (like Deepgram's Finalize);
its answer is marked ``finalized`` so the turn strategy need not wait for a timeout. With
``wake_word`` nothing is recognised until the wake word is heard (see :mod:`voxa.wake`). Streams in
one process share one model and one batching scheduler (:func:`voxa.streaming.scheduler_for`),
however many sessions are open.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.stt_service import STTService
from pipecat.utils.time import time_now_iso8601

from ..asr import load_model
from ..audio import SAMPLE_RATE, from_pcm16, resample
from ..streaming import Recognizer, StreamOptions, scheduler_for
from ..types import StreamResult


class VoxaSTTService(STTService):
    def __init__(self, *, model: str = "tiny.en", language: str | None = "en", endpointing_ms: int = 300,
                 ttfs_p99_latency: float = 1.0, scheduler=None, wake_word: str | None = None,
                 wake_idle_s: float = 20.0, **kwargs):
        from pipecat.services.settings import STTSettings

        super().__init__(ttfs_p99_latency=ttfs_p99_latency, settings=STTSettings(model=model, language=language),
                         **kwargs)
        self._engine = load_model(model)
        self._scheduler = scheduler or scheduler_for(self._engine)  # the server passes its own (with metrics)
        self._options = StreamOptions(language=language, endpointing_ms=endpointing_ms, interim_results=True,
                                      wake=(wake_word,) if wake_word else (), wake_idle_s=wake_idle_s)
        self._language = language
        self._rec: Recognizer | None = None
        self._events: asyncio.Queue | None = None
        self._reader: asyncio.Task | None = None
        self._finalizes = 0  # finalize requests made; each brings one result marked from_finalize
        self._finalized = 0  # ... and those whose result came
        self._markers: list[tuple[int, object]] = []  # (finalize number, frame): see flush

    @property
    def awake(self) -> bool:
        """False while a wake word is awaited (``wake_word``): the user is not talking to the bot."""
        return self._rec is None or self._rec.awake

    def transcribe(self, samples, language: str | None = None) -> str:
        """A whole clip (16 kHz float32) by the same model, offline: a Realtime ``input_audio`` item."""
        return self._engine.transcribe(samples, language=language or self._language).text.strip()

    def can_generate_metrics(self) -> bool:
        return True

    async def start(self, frame: StartFrame):
        await super().start(frame)
        loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        events = self._events

        def emit(event):  # called from the scheduler's thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        self._rec = Recognizer(self._scheduler, emit, self._options)
        self._reader = self.create_task(self._read(), name="voxa-stt-results")

    async def stop(self, frame: EndFrame):
        await self._close()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        await self._close()
        await super().cancel(frame)

    async def _close(self):
        if self._rec is not None:
            self._rec.abort()  # leave the shared scheduler: nothing of this session is decoded any more
            self._rec = None
        if self._reader is not None:
            await self.cancel_task(self._reader)
            self._reader = None

    async def run_stt(self, audio: bytes):
        if self._rec is not None and not self._rec.closed:
            samples = from_pcm16(audio)
            if self.sample_rate != SAMPLE_RATE:
                samples = resample(samples, self.sample_rate, SAMPLE_RATE)
            self._rec.push(samples)  # Silero VAD on 32 ms frames (~0.15 ms each); decoding is elsewhere
        yield None

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        await super()._handle_vad_user_stopped_speaking(frame)
        if self._rec is not None and self._rec.speaking:
            self.request_finalize()
            self._finalize()

    def _finalize(self) -> None:
        self._finalizes += 1
        self._rec.finalize()

    async def flush(self, marker) -> None:
        """Finish what has been heard so far (a client's commit) and push ``marker`` (a frame)
        downstream right after the last transcript of it, so a processor further on knows that
        every word said before the flush has reached it."""
        if self._rec is None or self._rec.closed:
            await self.push_frame(marker)
            return
        self._finalize()
        self._markers.append((self._finalizes, marker))

    async def _read(self):
        while True:
            event = await self._events.get()
            if not isinstance(event, StreamResult):
                continue
            if event.is_final and event.from_finalize:
                self._finalized += 1
            if event.text:
                await self._push_result(event)
            while self._markers and self._markers[0][0] <= self._finalized:
                await self.push_frame(self._markers.pop(0)[1])

    async def _push_result(self, event: StreamResult):
        if not event.is_final:
            await self.push_frame(InterimTranscriptionFrame(event.text, self._user_id, time_now_iso8601(),
                                                            self._language, result=event))
            return
        if event.from_finalize:
            self.confirm_finalize()
        frame = TranscriptionFrame(event.text, self._user_id, time_now_iso8601(), self._language, result=event)
        frame.finalized = event.from_finalize or event.speech_final
        await self.push_frame(frame)
