"""All live streams of one model: their decodes in batches, on one worker thread.

It takes at most one job per stream per batch, oldest first, and decodes them together with
``Whisper.decode_clips``: features, encoder, CTranslate2 ``generate`` with one prompt per item,
then word alignment. Finals go first, in batches of their own; interim batches hold at most 20 s
of audio, so a final waits for at most one short batch. Each stream has at most one job in flight
and one interim waiting (a newer interim replaces it), and when streams compete each one's
interims are spaced so that interims use at most half the decoder's time: a stream that sends
faster than it can be decoded gets fewer interims, not a longer queue.

A final's lookback (see :mod:`.recognizer`) costs a longer clip and the prefix tokens, so it is
given only when at most two finals are waiting: with it on every final, 8 tiny.en streams had a
final p90 of 1.4 s instead of 0.7 s. ``decode_clips`` caps the tokens by the clip's duration:
before, a clip Whisper looped on ran to 448 tokens and held up every stream in its batch for up to
1.9 s (8 streams' final p90 was 1.7-1.9 s; with the cap, 0.5-0.7 s).
"""

from __future__ import annotations

import logging
import threading
import time

from ..audio import SAMPLE_RATE
from ..types import Word
from .recognizer import Job, Recognizer

log = logging.getLogger("voxa.streaming")

_BUSY = 0.5  # share of the decoder's time interims may take when streams compete
_INTERIM_BATCH_S = 20.0  # seconds of audio in one batch of interims
_LOOKBACK_SLACK = 0.1  # a word after the prefix ending this soon into the utterance belongs to the lookback
_LOOKBACK_FINALS = 2  # finals get their lookback when no more than this many are waiting


class Scheduler:
    """Decodes jobs from every stream of one model in batches, on one worker thread."""

    def __init__(self, engine, *, batch_size: int = 8, final_beam: int | None = None, on_batch=None):
        self.engine = engine
        self.batch_size = batch_size
        self.final_beam = final_beam  # None: each stream's StreamOptions.beam()
        self.on_batch = on_batch  # callback(audio_seconds, wall_seconds), for metrics
        self._streams: list[Recognizer] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._job_cost = 0.05  # seconds of decoding per job, a moving average

    def interim_period(self) -> float:
        """How often each speaking stream may ask for an interim so that decoding stays within
        _BUSY of the worker's time, leaving room for finals."""
        speaking = sum(1 for r in self._streams if r.speaking)
        if speaking <= 1:  # no other stream's final to make room for: as often as a decode takes
            return 0.0  # (a newer interim replaces one waiting; a period here only rounds up to pushes)
        return speaking * self._job_cost / _BUSY

    def register(self, rec: Recognizer) -> None:
        with self._cond:
            self._streams.append(rec)
            if self._thread is None or not self._thread.is_alive():
                self._stop = False
                self._thread = threading.Thread(target=self._loop, name="voxa-stream-decoder", daemon=True)
                self._thread.start()

    def unregister(self, rec: Recognizer) -> None:
        with self._cond:
            if rec in self._streams:
                self._streams.remove(rec)

    @property
    def streams(self) -> int:
        with self._cond:
            return len(self._streams)

    def notify(self) -> None:
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _take(self) -> list[Job]:
        ready = []
        for rec in self._streams:
            with rec._lock:
                if rec.queue and rec.inflight is None:
                    ready.append(rec.queue[0])
        if not ready:
            return []
        finals = [j for j in ready if j.kind != "interim"]
        # Finals go first and alone: a final waits for at most one batch of interims.
        group = sorted(finals or ready, key=lambda j: j.submitted)
        if not finals:  # interim batches are capped by audio, so that wait stays short
            budget, take = _INTERIM_BATCH_S * SAMPLE_RATE, []
            for j in group:
                if take and budget < j.audio.size:
                    break
                budget -= j.audio.size
                take.append(j)
            group = take
        batch = []
        # Lookback makes a final dearer: only finals decoded with at most one other get it.
        cheap = len(finals) <= _LOOKBACK_FINALS
        for job in group[: self.batch_size]:
            rec = job.stream
            with rec._lock:
                if rec.queue and rec.queue[0] is job and rec.inflight is None:
                    rec.queue.popleft()
                    rec.inflight = job
                    if cheap:
                        rec._look_back(job)
                    job.before = None
                    batch.append(job)
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
                while not batch:
                    if self._stop:
                        return
                    self._cond.wait(0.5)
                    batch = self._take()
            self._run(batch)

    def _beam(self, jobs: list[Job]) -> int:
        """One beam per batch (one generate call): the widest any of its finals asks for; interims
        are greedy."""
        finals = [j for j in jobs if j.kind != "interim"]
        if not finals:
            return 1
        return self.final_beam or max(j.stream.opts.beam() for j in finals)

    def _run(self, batch: list[Job]) -> None:
        t0 = time.perf_counter()
        todo = [j for j in batch if j.audio is not None and j.audio.size]
        try:
            beam = self._beam(todo)
            words = self.engine.decode_clips([j.audio for j in todo], [j.stream.language for j in todo],
                                             prefixes=[j.prefix for j in todo], beam_size=beam)
            results = dict(zip(map(id, todo), words))
            # A prefix Whisper cannot follow (the earlier final was wrong) can end the text at
            # once: such clips are decoded again on their own.
            again = [j for j in todo if j.prefix and not results[id(j)][0]]
            for j in again:
                j.audio, j.lookback, j.prefix = j.audio[j.lookback:], 0, ""
            if again:
                retry = self.engine.decode_clips([j.audio for j in again], [j.stream.language for j in again],
                                                 beam_size=beam)
                results.update(zip(map(id, again), retry))
        except Exception as e:  # a model failure must not kill the worker: report it to the streams
            log.exception("streaming decode failed")
            for j in batch:
                j.stream.done(j, None, e)
            return
        if todo:
            cost = (time.perf_counter() - t0) / len(todo)
            self._job_cost = 0.8 * self._job_cost + 0.2 * cost
        if self.on_batch and todo:
            self.on_batch(sum(j.audio.size for j in todo) / SAMPLE_RATE, time.perf_counter() - t0)
        for j in batch:
            ws, lang = results.get(id(j), ([], None))
            if j.stream.language is None and lang and j.audio is not None and j.audio.size >= 2 * SAMPLE_RATE:
                j.stream.language = lang
            base = j.offset - j.lookback / SAMPLE_RATE  # stream time of the clip's start
            j.stream.done(j, [Word(round(max(w.start + base, j.offset), 3), round(w.end + base, 3), w.word,
                                   w.probability) for w in ws if w.end + base > j.offset + _LOOKBACK_SLACK])
        with self._cond:
            self._cond.notify()
