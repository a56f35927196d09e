"""voxa's speech synthesis as a Pipecat TTS service, through voxa's one output path.

    from voxa.agent.tts import VoxaTTSService
    tts = VoxaTTSService(voice="hibari")

Pipecat hands the service one sentence at a time as the language model writes them. Each bot
answer (Pipecat's turn context) is one :meth:`voxa.tts.Voice.open` synthesis: one audit record,
one watermark payload across all its sentences, the text logged when the answer ends or is
interrupted. So an agent's speech is watermarked and audited like every other voxa output,
and cannot bypass it. Synthesis runs in a worker thread; the event loop keeps serving.

The first piece of each answer need not be a whole sentence (:class:`FirstClauseAggregator`):
it ends at a clause (", ; :") once it has 4 words, or at 14 words. The bot starts talking
once a short clause is written and synthesized, not the whole first sentence: the bundled
model writes about 127 tokens/s on these cores, so a 25-word first sentence arrives whole
about 0.25 s after its first word.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import CancelFrame, EndFrame, TTSAudioRawFrame
from pipecat.services.tts_service import TTSService
from pipecat.utils.text import simple_text_aggregator as _sta
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType

from ..audio import to_pcm16
from ..tts import Live, load_voice


class FirstClauseAggregator(_sta.SimpleTextAggregator):
    """Pipecat's sentence aggregator, except that the first piece of each answer also ends at a
    clause mark followed by a space once it has ``min_words`` words, or at a space once it has
    ``max_words``. Later pieces are whole sentences (a sentence reads more naturally)."""

    def __init__(self, *, min_words: int = 4, max_words: int = 14, **kw):
        super().__init__(**kw)
        self.min_words, self.max_words = min_words, max_words
        self._first = True

    async def aggregate(self, text: str):
        if self._aggregation_type == TextType.TOKEN:
            async for a in super().aggregate(text):
                yield a
            return
        for char in text:
            async for a in super().aggregate(char):
                self._first = False
                yield a
            if self._first and char.isspace():
                words = len(self._text.split())
                if (words >= self.min_words and self._text.rstrip()[-1:] in ",;:") or words >= self.max_words:
                    piece, self._text = self._text.strip(), ""
                    self._lookahead_state = _sta._LookaheadState.IDLE
                    self._first = False
                    yield Aggregation(text=piece, type=TextType.SENTENCE)

    async def flush(self):
        self._first = True  # the answer ended: the next one starts afresh
        return await super().flush()

    async def handle_interruption(self):
        self._first = True
        await super().handle_interruption()

    async def reset(self):
        self._first = True
        await super().reset()


class VoxaTTSService(TTSService):
    def __init__(self, *, voice: str | None = None, actor: str | None = None, on_payload=None,
                 origin: str = "agent", **kwargs):
        self._voice = load_voice(voice)
        self._origin = origin  # the audit log's origin for this session's speech
        from pipecat.services.settings import TTSSettings

        super().__init__(push_start_frame=True, push_stop_frames=True,
                         settings=TTSSettings(model=self._voice.info.engine, voice=self._voice.info.id,
                                              language=self._voice.info.language),
                         sample_rate=kwargs.pop("sample_rate", None) or self._voice.sample_rate, **kwargs)
        self._text_aggregator = FirstClauseAggregator(aggregation_type=self._text_aggregation_mode,
                                                      language=self._text_aggregator.language)
        self._actor = actor
        self._on_payload = on_payload  # called with (context_id, payload) when an answer's synthesis opens
        self._live: dict[str, Live] = {}

    def can_generate_metrics(self) -> bool:
        return True

    @property
    def voice(self):
        return self._voice

    def use_voice(self, name: str) -> None:
        """Speak the next answers in another voice (at this session's output rate)."""
        self._voice = load_voice(name)

    async def run_tts(self, text: str, context_id: str):
        live = self._live.get(context_id)
        if live is None:
            live = await asyncio.to_thread(self._voice.open, sample_rate=self.sample_rate, origin=self._origin,
                                           actor=self._actor)
            self._live[context_id] = live
            if self._on_payload:
                self._on_payload(context_id, live.payload)
        await self.start_tts_usage_metrics(text)
        pcm = await asyncio.to_thread(live.say, text)
        await self.stop_ttfb_metrics()
        if pcm.size:
            yield TTSAudioRawFrame(to_pcm16(pcm), self.sample_rate, 1, context_id=context_id)

    async def on_turn_context_completed(self):
        # the answer is complete: what the watermark held back goes out before the stop frame
        context_id = self._turn_context_id
        live = self._live.pop(context_id, None) if context_id else None
        if live is not None:
            tail = live.finish()
            live.close()
            if tail.size and self.audio_context_available(context_id):
                await self.append_to_audio_context(
                    context_id, TTSAudioRawFrame(to_pcm16(tail), self.sample_rate, 1, context_id=context_id))
        await super().on_turn_context_completed()

    async def on_audio_context_interrupted(self, context_id: str):
        await super().on_audio_context_interrupted(context_id)
        self._close(context_id)

    async def stop(self, frame: EndFrame):
        await super().stop(frame)
        self._close_all()

    async def cancel(self, frame: CancelFrame):
        await super().cancel(frame)
        self._close_all()

    def _close(self, context_id: str) -> None:
        live = self._live.pop(context_id, None)
        if live is not None:
            live.close()

    def _close_all(self) -> None:
        for context_id in list(self._live):
            self._close(context_id)
