"""A Realtime transcription session (``intent=transcription``) on voxa's live recogniser.

Each utterance the voice detector finds is one user item: ``input_audio_buffer.speech_started``
(its ``item_id``), then ``conversation.item.input_audio_transcription.delta`` while the person
speaks, and at the end of the utterance ``speech_stopped``, ``committed``, the item
(``conversation.item.added``, beta ``conversation.item.created``) and ``...completed`` with the
whole transcript. Deltas come from the recogniser's interim results: the words two interims
in a row agree on (whisper_streaming's LocalAgreement-2, with two rules for interims close
together: ``wire.Settled``). Deltas only add text: when a later interim or the final hears a word
already sent otherwise, the words after it still go out (``wire.delta_after``), and
``completed`` carries the final transcript, which is the one to keep.

``server_vad``: ``threshold`` is Silero's speech threshold, ``silence_duration_ms`` the
endpointing pause, ``prefix_padding_ms`` the audio kept before the onset. ``semantic_vad``: its
eagerness picks the pause (high 300 ms, auto/medium 500 ms, low 1,000 ms): voxa's smart-turn
model judges a conversation's turns in the agent, not a transcription's. ``turn_detection: null``:
nothing is sent until the client's ``input_audio_buffer.commit``, which makes one item of all the
audio since the last commit.
"""

from __future__ import annotations

import asyncio
import logging

from .wire import AudioIn, BadEvent, Settings, Settled, delta_after, event, new_id, settled_text, user_item_done

log = logging.getLogger("voxa.server.realtime")


class TranscriptionSession:
    def __init__(self, settings: Settings, engine, scheduler, send, *, max_audio_s: float):
        self.s, self.engine, self.scheduler, self.send = settings, engine, scheduler, send
        self.max_audio_s = max_audio_s
        self.rec = None
        self.audio: AudioIn | None = None
        self.events: asyncio.Queue = asyncio.Queue()
        self.pump: asyncio.Task | None = None
        self.item: str | None = None  # the user item being spoken
        self.previous: str | None = None  # the last committed item
        self.sent = ""  # delta text sent for the current item
        self.text: list[str] = []  # finals of the current item
        self.settled = Settled()  # which words of the item's interims can go out as deltas
        self.start_ms = 0
        self.commits: list[asyncio.Future] = []  # manual commits waiting for their final
        self.used_s = 0.0
        self.fresh = 0  # samples appended since the last commit

    # ------------------------------------------------------------------ client events
    def configure(self) -> None:
        """(Re)start the recogniser with the current settings, dropping what it held."""
        from ...streaming import Recognizer, StreamOptions

        self.close()
        t = self.s.turn
        opts = StreamOptions(language=self.s.language, interim_results=True, vad_events=True,
                             threshold=t.threshold, preroll_ms=t.prefix_padding_ms,
                             endpointing_ms=t.silence_duration_ms if t.kind else None)
        if t.kind is None:
            opts.silence_end_ms = 10**9  # the client decides where an item ends
            opts.utterance_end_ms = None
        self.audio = AudioIn(self.s.input_format)
        self.settled.clear()
        loop = asyncio.get_running_loop()
        self.rec = Recognizer(self.scheduler, lambda e: loop.call_soon_threadsafe(self.events.put_nowait, e), opts)
        self.pump = asyncio.create_task(self._pump())

    async def append(self, b64: str) -> None:
        if self.rec is None:
            self.configure()
        samples = self.audio(b64)
        self.used_s += samples.size / 16000
        self.fresh += samples.size
        if self.used_s > self.max_audio_s:
            raise BadEvent(f"the session's audio is over the {self.max_audio_s:g} s limit", code="session_expired")
        if samples.size:
            await asyncio.to_thread(self.rec.push, samples)
            if self.rec.error is not None:
                await self._failed()
                return
            while self.rec is not None and self.rec.backlog_s > 30.0:  # a client faster than the decoder waits
                await asyncio.sleep(0.05)

    async def commit(self) -> None:
        if self.rec is None or self.fresh == 0:
            raise BadEvent("the input audio buffer is empty: append audio before committing",
                           code="input_audio_buffer_commit_empty")
        done = asyncio.get_running_loop().create_future()
        self.commits.append(done)
        await asyncio.to_thread(self.rec.finalize)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not done.done() and loop.time() < deadline:
            if self.rec is not None and self.rec.error is not None:
                await self._failed()
                return
            await asyncio.wait([done], timeout=0.1)
        if not done.done():
            raise BadEvent("the commit's transcription took over 60 s", code="server_error")

    async def _failed(self) -> None:
        """The model failed on this audio: ``...transcription.failed`` for the item being spoken,
        and a new recogniser for what comes next (the session goes on)."""
        error = self.rec.error
        log.warning("realtime transcription failed: %s", error)
        item = self.item or new_id("item")
        self.configure()
        self.item, self.sent, self.text, self.fresh = None, "", [], 0
        await self.send(event("conversation.item.input_audio_transcription.failed", item_id=item, content_index=0,
                              error={"type": "transcription_error", "code": "server_error",
                                     "message": f"transcription failed: {error}", "param": None}))

    async def clear(self) -> None:
        self.configure()
        self.item, self.sent, self.text, self.fresh = None, "", [], 0
        await self.send(event("input_audio_buffer.cleared"))

    def close(self) -> None:
        if self.rec is not None:
            self.rec.abort()
            self.rec = None
        if self.pump is not None:
            self.pump.cancel()
            self.pump = None
        for f in self.commits:
            f.cancel()
        self.commits, self.events = [], asyncio.Queue()

    # ------------------------------------------------------------------ recogniser events
    async def _pump(self) -> None:
        from ...types import SpeechStarted, StreamResult

        events = self.events
        while True:
            e = await events.get()
            try:
                if isinstance(e, SpeechStarted) and self.s.turn.kind is not None:
                    await self._started(int(e.timestamp * 1000))
                elif isinstance(e, StreamResult):
                    await self._result(e)
            except Exception:  # the client left mid-send: the session is being torn down
                log.debug("realtime transcription event not sent", exc_info=True)

    async def _started(self, ms: int) -> None:
        if self.item is None:
            self.item, self.sent, self.text, self.start_ms = new_id("item"), "", [], ms
            self.settled.clear()
            await self.send(event("input_audio_buffer.speech_started", audio_start_ms=ms, item_id=self.item))

    async def _result(self, r) -> None:
        if r.text and self.item is None:
            if self.s.turn.kind is not None:
                await self._started(int(r.start * 1000))
            else:
                self._open_quietly(r)
        if not r.is_final:
            await self._delta(" ".join([*self.text, self._settled(r)]).strip())
            return
        self.settled.clear()
        if r.text:
            self.text.append(r.text)
            await self._delta(" ".join(self.text).strip())
        manual = self.s.turn.kind is None
        if (r.speech_final and not manual) or r.from_finalize:
            await self._complete(int((r.start + r.duration) * 1000))
            if r.from_finalize and self.commits:
                self.commits.pop(0).set_result(True)

    def _settled(self, r) -> str:
        """The interim's words that can go out as deltas (:class:`.wire.Settled`)."""
        return self.settled(r, extending=bool(self.sent))

    def _open_quietly(self, r) -> None:
        """Manual commits: an item starts with its first words; no speech_started is sent."""
        self.item, self.sent, self.text, self.start_ms = new_id("item"), "", [], int(r.start * 1000)

    async def _delta(self, text: str) -> None:
        if self.s.turn.kind is None:
            return  # manual commits: the transcript comes after the commit
        delta = delta_after(self.sent, settled_text(text))
        if delta:
            self.sent += delta
            await self.send(event("conversation.item.input_audio_transcription.delta", item_id=self.item,
                                  content_index=0, delta=delta))

    async def _complete(self, end_ms: int) -> None:
        item = self.item or new_id("item")
        transcript = " ".join(self.text).strip()
        if self.s.turn.kind is not None:
            await self.send(event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item))
        _, events = user_item_done(item, self.previous, transcript, self.sent, (end_ms - self.start_ms) / 1000,
                                   beta=self.s.beta, deltas=self.s.turn.kind is not None)
        for ev in events:
            await self.send(ev)
        self.previous, self.item, self.sent, self.text, self.fresh = item, None, "", [], 0
