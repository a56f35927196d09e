"""Live recognition: audio in as it arrives, interim and final words out.

One ``Recognizer`` per stream, one ``Scheduler`` per model shared by all streams.

Per stream, Silero VAD judges every 32 ms frame (``vad.StreamingVad``), and silence is never
decoded. While someone speaks, the utterance so far is decoded again every ``interim_s`` of new
audio (greedy) and sent as an interim result. When the voice stops for ``speculate_ms`` the
utterance is decoded once more, as a final would be; if the silence then lasts ``endpointing_ms``
that decode is usually done already, so the final goes out at the endpoint with no wait. If
speech resumes instead, the decode counts as an interim. An utterance longer than ``commit_s``
commits the words two successive decodes agree on (whisper_streaming's LocalAgreement-2) as a
final and drops that audio, so no buffer grows without bound.

Why not re-decode a growing 30 s window as whisper_streaming does: every update then costs a
full 30 s encoder pass plus all the words again (3.6 s commit latency with tiny.en in
../shared/MODELS.md). Here the VAD decides where utterances end, decodes are only of speech,
and the encoder runs on a 10, 15 or 20 s window when the audio fits, which CTranslate2 allows
and which kept tiny.en's LibriSpeech WER within noise of the 30 s window (17.4% and 16.4% against
16.6% on 40 test-other utterances) at half the cost.

Across streams the ``Scheduler`` runs one worker thread per model. It takes at most one job per
stream per batch, oldest first, and decodes them together with ``Whisper.decode_clips``:
features, encoder, CTranslate2 ``generate`` with one prompt per item, then word alignment. Finals go first, in
batches of their own; interim batches hold at most 20 s of audio, so a final waits for at most one
short batch. Each stream has at most one job in flight and one interim waiting (a newer interim
replaces it), and when streams compete each one's interims are spaced so that interims use at
most half the decoder's time: a stream that sends faster than it can be decoded gets fewer
interims, not a longer queue.

A final is decoded with up to ``lookback_s`` (10 s) of the speech before it, and the text
already sent for that speech as Whisper's decoder prefix, so a short piece between two pauses is
heard in context and Whisper only continues the text; words timed before the utterance are
dropped, and a clip whose prefix Whisper cannot follow is decoded again alone. The lookback is
chosen when the job starts, after every earlier final of the stream is known, and only when at
most two finals are waiting: under load it would cost more than it is worth (with it on every
final, 8 tiny.en streams had a final p90 of 1.4 s instead of 0.7 s). On the 60 test-other
utterances of ../shared/eval (6 speakers, 1 s pauses, 300 ms endpointing) tiny.en's streaming WER
went from 20.6% to 16.1% with it (offline 11.5%). Words the aligner gives no time (a phrase said
again, piled onto one instant) are dropped by ``asr.Whisper.decode_clips``.

Measured and left out: the recent final words as Whisper's prompt instead of a prefix (worse:
24.1% against 17.9%), beam 5 for finals, the full 30 s encoder window for finals, more pre-roll,
a later speculative decode, 20 s of lookback (all within noise or worse). What remains is mostly
that a piece ending at a 300 ms pause is final before the words after it are heard (15% WER with
1000 ms endpointing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .audio import SAMPLE_RATE
from .types import SpeechStarted, StreamResult, UtteranceEnd, Word
from .vad import StreamingVad

log = logging.getLogger("voxa.streaming")

FRAME = StreamingVad.FRAME
_PUNCT = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~¿¡“”‘’«»。，、！？：；"
_BUSY = 0.5  # share of the decoder's time interims may take when streams compete
_INTERIM_BATCH_S = 20.0  # seconds of audio in one batch of interims
_MAX_CLIP_S = 28.0  # a clip with its lookback stays inside Whisper's 30 s window
_LOOKBACK_SLACK = 0.1  # a word after the prefix ending this soon into the utterance belongs to the lookback
_LOOKBACK_FINALS = 2  # finals get their lookback when no more than this many are waiting

Event = SpeechStarted | StreamResult | UtteranceEnd


@dataclass
class StreamOptions:
    language: str | None = None  # None: detected from the first utterance (multilingual models)
    interim_results: bool = True
    endpointing_ms: int | None = 300  # None: never speech_final on silence (utterances still end)
    utterance_end_ms: int | None = None
    vad_events: bool = False
    interim_s: float = 0.4  # decode again after this much new audio
    speculate_ms: int = 160  # start the final decode after this much silence
    commit_s: float = 15.0  # utterances longer than this commit their stable words
    max_utterance_s: float = 25.0  # hard cap: an utterance this long is finalised as it is
    threshold: float = 0.5  # Silero speech probability
    min_speech_ms: int = 64  # voiced time before an utterance starts
    preroll_ms: int = 320  # audio kept from before the onset
    silence_end_ms: int = 1000  # with endpointing off, silence that still closes an utterance
    lookback_s: float = 10.0  # finals are decoded with up to this much of the preceding speech (0: off)


@dataclass
class Job:
    stream: Recognizer
    kind: str  # interim | candidate | final | commit
    audio: np.ndarray | None
    offset: float  # stream time (s) of audio[0]
    utterance: int
    end: int  # stream sample index where the audio ends
    speech_final: bool = False
    from_finalize: bool = False
    before: np.ndarray | None = None  # audio just before the utterance, kept for the lookback
    before_start: int = 0  # its stream sample index
    prefix: str = ""  # what was said in the lookback audio that precedes the utterance in ``audio``
    lookback: int = 0  # samples of that audio; ``offset`` is where the utterance itself starts
    submitted: float = field(default_factory=time.perf_counter)


class _Said(NamedTuple):
    """A final already sent: where its audio starts (stream sample), its utterance, whether it
    closed that utterance (not a commit of part of it), and its text."""

    start: int
    utterance: int
    whole: bool
    text: str


# --------------------------------------------------------------------------- one stream
class Recognizer:
    """The state of one live stream. ``push`` audio (float32, 16 kHz mono) as it arrives;
    events reach ``emit`` in order, from the caller's thread or the scheduler's."""

    def __init__(self, scheduler: Scheduler, emit: Callable[[Event], None], options: StreamOptions | None = None):
        self.opts = o = options or StreamOptions()
        self.scheduler = scheduler
        self.emit = emit
        self.language = o.language
        self.samples = 0  # received so far: the stream clock
        self._vad = StreamingVad()
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._rest = np.zeros(0, dtype=np.float32)
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, o.preroll_ms * SAMPLE_RATE // 1000 // FRAME))
        self._voiced = 0  # frames above threshold while not in an utterance
        self._silent = 0  # frames of silence inside an utterance
        self._onset = 0  # sample index of the first voiced frame of a possible onset
        self.speaking = False
        self._utt: list[np.ndarray] = []
        self._utt_start = 0  # sample index of _utt[0]
        self._utt_id = 0
        self._decoded = 0  # utterance length (samples) at the last interim job
        self._prev: list[Word] = []  # last hypothesis, for LocalAgreement
        self._candidate: Job | None = None  # speculative final still valid
        self._candidate_words: list[Word] | None = None
        self.queue: deque[Job] = deque()
        self.inflight: Job | None = None
        self._ring: deque[np.ndarray] = deque(maxlen=int((o.lookback_s + o.max_utterance_s) * SAMPLE_RATE) // FRAME + 1)
        self._history: deque[_Said] = deque()  # the finals sent, for the lookback
        self._last_word_end: float | None = None
        self._utterance_end_sent = True
        self.closed = False
        self.error: Exception | None = None
        scheduler.register(self)

    # ------------------------------------------------------------------ input
    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            if self.closed:
                raise RuntimeError("stream is closed")
            buf = np.concatenate([self._rest, samples.astype(np.float32, copy=False)])
            n = buf.size // FRAME * FRAME
            self._rest = buf[n:]
            if n == 0:
                return
            probs = self._vad(buf[:n])
            for k, p in enumerate(probs):
                self._frame(buf[k * FRAME:(k + 1) * FRAME], float(p))
            self._maybe_interim()
        self.scheduler.notify()

    def _frame(self, frame: np.ndarray, p: float) -> None:
        o = self.opts
        start = self.samples
        self.samples += FRAME
        if self.opts.lookback_s > 0:
            self._ring.append(frame)
        if not self.speaking:
            if p >= o.threshold:
                if self._voiced == 0:
                    self._onset = start
                self._voiced += 1
            else:
                self._voiced = 0
            self._preroll.append(frame)
            if self._voiced * FRAME >= o.min_speech_ms * SAMPLE_RATE // 1000:
                self._start_utterance()
            self._check_utterance_end()
            return
        self._utt.append(frame)
        if p >= o.threshold - 0.15:
            if p >= o.threshold:
                self._silent = 0
                if self._candidate is not None:  # speech resumed: the speculative final is stale
                    self._candidate = self._candidate_words = None
            else:
                self._silent += int(self._silent > 0)
        else:
            self._silent += 1
        silent_ms = self._silent * FRAME * 1000 // SAMPLE_RATE
        length = len(self._utt) * FRAME
        if o.endpointing_ms is not None and silent_ms >= o.endpointing_ms:
            self._end_utterance(speech_final=True)
        elif o.endpointing_ms is None and silent_ms >= o.silence_end_ms:
            self._end_utterance(speech_final=False)
        elif silent_ms >= o.speculate_ms and self._candidate is None:
            self._candidate = self._submit("candidate")
        elif length >= o.max_utterance_s * SAMPLE_RATE:
            self._end_utterance(speech_final=False)

    def _start_utterance(self) -> None:
        self.speaking = True
        self._utt = list(self._preroll)
        self._preroll.clear()
        self._utt_start = self.samples - len(self._utt) * FRAME
        self._utt_id += 1
        self._decoded = 0
        self._prev = []
        self._silent = 0
        self._voiced = 0
        self._candidate = self._candidate_words = None
        if self.opts.vad_events:
            self.emit(SpeechStarted(round(self._onset / SAMPLE_RATE, 3)))

    def _end_utterance(self, *, speech_final: bool, from_finalize: bool = False) -> None:
        """Close the current utterance; its final comes from the speculative decode if that
        still covers everything said, else from a new decode."""
        cand = self._candidate
        if cand is not None and not from_finalize:
            cand.speech_final = speech_final
            if self._candidate_words is not None:
                self._final(cand, self._candidate_words)
            else:
                cand.kind = "final"  # still queued or decoding: its result becomes the final
        elif self._utt:
            self._submit("final", speech_final=speech_final, from_finalize=from_finalize)
        elif from_finalize:
            self._enqueue(Job(self, "final", None, self.samples / SAMPLE_RATE, self._utt_id, self.samples,
                              from_finalize=True))
        self.speaking = False
        tail = self._utt[-self._preroll.maxlen:]
        self._utt = []
        self._preroll.clear()
        self._preroll.extend(tail)
        self._candidate = self._candidate_words = None
        self._silent = self._voiced = 0

    # ------------------------------------------------------------------ jobs
    def _submit(self, kind: str, **flags) -> Job:
        audio = np.concatenate(self._utt) if self._utt else np.zeros(0, np.float32)
        job = Job(self, kind, audio, self._utt_start / SAMPLE_RATE, self._utt_id, self.samples, **flags)
        if kind != "interim" and self.opts.lookback_s > 0:  # keep the audio before it for _look_back
            first_kept = self.samples - len(self._ring) * FRAME
            start = max(first_kept, self._utt_start - int(self.opts.lookback_s * SAMPLE_RATE),
                        self.samples - int(_MAX_CLIP_S * SAMPLE_RATE)) // FRAME * FRAME
            frames = list(self._ring)[(start - first_kept) // FRAME:(self._utt_start - first_kept) // FRAME]
            if frames:
                job.before, job.before_start = np.concatenate(frames), start
        if kind == "interim":
            self._decoded = len(self._utt) * FRAME
        return self._enqueue(job)

    def _enqueue(self, job: Job) -> Job:
        if job.kind == "interim" and self.queue and self.queue[-1].kind == "interim":
            self.queue[-1] = job  # a newer interim replaces one not yet started
        else:
            self.queue.append(job)
        return job

    def _look_back(self, job: Job) -> None:
        """Put the preceding speech in front of a final's audio, with what was said in it as the
        decoder prefix: Whisper then hears a short piece in context and only continues the text.
        Called as the job starts, when every earlier final of the stream has been emitted."""
        hist, before = self._history, job.before
        if before is None or not hist or job.audio is None:
            return
        last = hist[-1]
        if not ((last.utterance == job.utterance - 1 and last.whole) or last.utterance == job.utterance):
            return  # an earlier final failed or was dropped: its text is not known
        k = len(hist)
        while k > 0 and hist[k - 1].start >= job.before_start:
            k -= 1
        if k == len(hist):
            return
        skip = (hist[k].start - job.before_start) // FRAME * FRAME
        job.audio = np.concatenate([before[skip:], job.audio])
        job.lookback = before.size - skip
        job.prefix = "".join(h.text for h in list(hist)[k:]).strip()

    def _maybe_interim(self) -> None:
        o = self.opts
        if not self.speaking or self._silent:
            return
        length = len(self._utt) * FRAME
        wanted = o.interim_results or length >= o.commit_s * SAMPLE_RATE
        if not wanted:
            return
        step = o.interim_s / 2 if length < 1.5 * SAMPLE_RATE else o.interim_s  # first words sooner
        step = max(step, self.scheduler.interim_period())  # under load, interims make room for finals
        if self._decoded == 0 or length - self._decoded >= step * SAMPLE_RATE:
            self._submit("interim")

    @property
    def backlog_s(self) -> float:
        """Seconds of audio waiting to be decoded (for backpressure)."""
        with self._lock:
            return sum(j.audio.size for j in self.queue if j.audio is not None) / SAMPLE_RATE

    # ------------------------------------------------------------------ results (scheduler thread)
    def done(self, job: Job, words: list[Word] | None, error: Exception | None = None) -> None:
        with self._lock:
            self.inflight = None
            if self.closed:
                pass
            elif error is not None:
                self.error = error
            elif job.kind == "final":
                self._final(job, words)
            elif job.kind == "candidate":
                if self._candidate is job:
                    self._candidate_words = words
                    self._interim(job, words)
                else:
                    self._interim(job, words)
            else:
                self._interim(job, words)
            self._idle.notify_all()

    def _final(self, job: Job, words: list[Word]) -> None:
        end = job.end / SAMPLE_RATE
        self._remember(int(job.offset * SAMPLE_RATE), job.end, job.utterance, True, words)
        if words:
            self._last_word_end = words[-1].end
            self._utterance_end_sent = False
        self.emit(StreamResult(round(job.offset, 3), round(max(0.0, end - job.offset), 3), words, True,
                               job.speech_final, job.from_finalize))

    def _interim(self, job: Job, words: list[Word]) -> None:
        if job.utterance != self._utt_id or not self.speaking or job.offset * SAMPLE_RATE < self._utt_start - 1:
            return  # the utterance has moved on; its final will follow
        o = self.opts
        prev, self._prev = self._prev, words
        end = job.end / SAMPLE_RATE
        if (job.end - self._utt_start) >= o.commit_s * SAMPLE_RATE:
            agreed = _agreement(prev, words, before=end - 1.0)
            if agreed:
                self._commit(words, agreed, end)
                return
        if o.interim_results and words:
            self.emit(StreamResult(round(job.offset, 3), round(end - job.offset, 3), words, False))

    def _commit(self, words: list[Word], n: int, end: float) -> None:
        """Emit the first n words as a final and drop their audio from the utterance."""
        keep = words[n:]
        cut = words[n - 1].end if not keep else (words[n - 1].end + keep[0].start) / 2
        drop = min(len(self._utt), max(0, int((cut * SAMPLE_RATE - self._utt_start) // FRAME)))
        new_start = self._utt_start + drop * FRAME
        committed = words[:n]
        self._remember(self._utt_start, new_start, self._utt_id, False, committed)
        self._last_word_end = committed[-1].end
        self.emit(StreamResult(round(self._utt_start / SAMPLE_RATE, 3),
                               round((new_start - self._utt_start) / SAMPLE_RATE, 3), committed, True))
        self._utt = self._utt[drop:]
        self._utt_start = new_start
        self._decoded = max(0, self._decoded - drop * FRAME)
        self._prev = [w for w in keep if w.start >= new_start / SAMPLE_RATE - 0.05]

    def _remember(self, start: int, end: int, utterance: int, whole: bool, words: list[Word]) -> None:
        """Keep a final's span and text for the lookback of later finals (only as far back as needed)."""
        if self.opts.lookback_s <= 0:
            return
        self._history.append(_Said(start, utterance, whole, "".join(w.word for w in words)))
        while self._history[0].start < end - (self.opts.lookback_s + _MAX_CLIP_S) * SAMPLE_RATE:
            self._history.popleft()

    def _check_utterance_end(self) -> None:
        o = self.opts
        if o.utterance_end_ms is None or self._utterance_end_sent or self._last_word_end is None:
            return
        if self.inflight is not None or self.queue:
            return
        if self.samples / SAMPLE_RATE - self._last_word_end >= o.utterance_end_ms / 1000:
            self._utterance_end_sent = True
            self.emit(UtteranceEnd(round(self._last_word_end, 3)))

    # ------------------------------------------------------------------ control
    def finalize(self) -> None:
        """Finish what has been said so far (the client's Finalize)."""
        with self._lock:
            self._end_utterance(speech_final=False, from_finalize=True)
        self.scheduler.notify()

    def close(self, timeout: float | None = None) -> bool:
        """Finalize, wait until every result has been emitted, and leave the scheduler.
        Returns False if the wait timed out."""
        with self._lock:
            if self.speaking and self._utt:
                self._end_utterance(speech_final=False)
        self.scheduler.notify()
        ok = self.wait(timeout)
        self.abort()
        return ok

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no decode is queued or running for this stream."""
        with self._lock:
            return self._idle.wait_for(lambda: not self.queue and self.inflight is None, timeout)

    def abort(self) -> None:
        """Drop everything (client gone): queued jobs are discarded, the stream leaves the scheduler."""
        with self._lock:
            self.closed = True
            self.queue.clear()
            self._utt = []
        self.scheduler.unregister(self)

    @property
    def duration(self) -> float:
        return self.samples / SAMPLE_RATE


def _norm(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum())


def _agreement(prev: list[Word], new: list[Word], before: float) -> int:
    """How many leading words two hypotheses share (LocalAgreement-2), ending before ``before``."""
    n = 0
    for a, b in zip(prev, new):
        if _norm(a.word) != _norm(b.word) or b.end > before:
            break
        n += 1
    return n


# --------------------------------------------------------------------------- all streams
class Scheduler:
    """Decodes jobs from every stream of one model in batches, on one worker thread."""

    def __init__(self, engine, *, batch_size: int = 8, final_beam: int = 1, on_batch=None):
        self.engine = engine
        self.batch_size = batch_size
        self.final_beam = final_beam
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

    def _run(self, batch: list[Job]) -> None:
        t0 = time.perf_counter()
        todo = [j for j in batch if j.audio is not None and j.audio.size]
        try:
            words = self.engine.decode_clips([j.audio for j in todo], [j.stream.language for j in todo],
                                             prefixes=[j.prefix for j in todo],
                                             beam_size=self.final_beam if any(j.kind != "interim" for j in todo) else 1)
            results = dict(zip(map(id, todo), words))
            # A prefix Whisper cannot follow (the earlier final was wrong) can end the text at
            # once: such clips are decoded again on their own.
            again = [j for j in todo if j.prefix and not results[id(j)][0]]
            for j in again:
                j.audio, j.lookback, j.prefix = j.audio[j.lookback:], 0, ""
            if again:
                retry = self.engine.decode_clips([j.audio for j in again], [j.stream.language for j in again],
                                                 beam_size=self.final_beam)
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


# --------------------------------------------------------------------------- wire format
def message(event: Event, *, request_id: str = "", model: str = "") -> dict:
    """An event as the JSON message of Deepgram's live API (``/v1/listen``), which voxa speaks."""
    if isinstance(event, SpeechStarted):
        return {"type": "SpeechStarted", "channel": [0, 1], "timestamp": event.timestamp}
    if isinstance(event, UtteranceEnd):
        return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": event.last_word_end}
    words = [{"word": w.word.strip().lower().strip(_PUNCT) or w.word.strip(), "start": w.start, "end": w.end,
              "confidence": w.probability, "punctuated_word": w.word.strip()} for w in event.words]
    confidence = round(sum(w.probability for w in event.words) / len(event.words), 4) if event.words else 0.0
    return {
        "type": "Results", "channel_index": [0, 1], "start": event.start, "duration": event.duration,
        "is_final": event.is_final, "speech_final": event.speech_final, "from_finalize": event.from_finalize,
        "channel": {"alternatives": [{"transcript": event.text, "confidence": confidence, "words": words}]},
        "metadata": {"request_id": request_id, "model_info": {"name": model, "version": "", "arch": "whisper"}},
    }


# --------------------------------------------------------------------------- Python API
_SCHEDULERS: dict[str, Scheduler] = {}
_SCHEDULERS_LOCK = threading.Lock()


def scheduler_for(engine) -> Scheduler:
    """The process's shared scheduler for a loaded model."""
    with _SCHEDULERS_LOCK:
        if engine.name not in _SCHEDULERS:
            _SCHEDULERS[engine.name] = Scheduler(engine)
        return _SCHEDULERS[engine.name]


def paced(blocks, pace: float):
    """Yield 16 kHz blocks no sooner than they would exist live: a block once it has been
    spoken, at ``pace`` times real time (0: as fast as they come)."""
    t0, sent = time.perf_counter(), 0
    for block in blocks:
        sent += len(block)
        if pace:
            wait = t0 + sent / SAMPLE_RATE / pace - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield block


def listen(source, model: str | None = "tiny.en", *, pace: float = 0.0, chunk_s: float = 0.1, **options):
    """Recognise a recording as if it were live, yielding events as they come.

    ``source`` is anything ``voxa.audio`` reads, or an iterable of float32 16 kHz chunks.
    ``pace=1`` feeds it at the pace it was spoken (2: twice as fast); the default 0 feeds it as
    fast as the voice detector reads it (interims then come in bursts). Options: StreamOptions.

        for event in voxa.listen("call.wav", interim_results=False):
            print(event.text)
    """
    import queue

    from . import audio as audio_io
    from .asr import load_model

    rec_opts = StreamOptions(**options)
    engine = load_model(model)
    events: queue.Queue = queue.Queue()
    rec = Recognizer(scheduler_for(engine), events.put, rec_opts)
    failure: list[BaseException] = []

    def feed():
        try:
            blocks = source if not isinstance(source, (str, bytes, bytearray, np.ndarray)) and \
                hasattr(source, "__iter__") and not hasattr(source, "read") else \
                audio_io.stream(source, block_seconds=chunk_s)
            for block in paced(blocks, pace):
                rec.push(np.asarray(block, dtype=np.float32))
            rec.close()
        except BaseException as e:  # reported to the consumer below
            failure.append(e)
            rec.abort()
        finally:
            events.put(None)

    threading.Thread(target=feed, name="voxa-listen-feed", daemon=True).start()
    while (event := events.get()) is not None:
        yield event
    if failure:
        raise failure[0]
    if rec.error is not None:
        raise rec.error
