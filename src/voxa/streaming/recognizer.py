"""One live stream: audio in as it arrives, interim and final words out (see :mod:`voxa.streaming`).

Silero VAD judges every 32 ms frame (``vad.StreamingVad``), and silence is never decoded. While
someone speaks, the utterance so far is decoded again every ``interim_s`` of new audio (greedy;
in its first 1.5 s as often as the decoder allows) and sent as an interim result. When the voice
stops for ``speculate_ms`` the utterance is decoded once more, as a final would be; if the
silence then lasts ``endpointing_ms`` that decode is usually done already, so the final goes out
at the endpoint with no wait. If speech resumes instead, the decode counts as an interim, and
one not yet started is decoded as an interim, without the lookback below (``_demote``). An
utterance longer than ``commit_s`` commits the words two successive decodes agree on
(whisper_streaming's LocalAgreement-2) as a final and drops that audio, so no buffer grows
without bound.

A final is decoded with up to ``lookback_s`` (10 s) of the speech before it, and the text already
sent for that speech as Whisper's decoder prefix (``Recognizer._look_back``, called by the
scheduler as the job starts, when every earlier final of the stream is known), so a short piece
between two pauses is heard in context and Whisper only continues the text.

With ``wake`` (wake words, :mod:`voxa.wake`) nothing is recognised until one of them is heard:
the audio before it only advances the stream clock; from the detection on, the stream is
recognised until no speech has been heard for ``wake_idle_s``, then it waits for a wake word
again. Each detection is an event (:class:`voxa.types.WakeDetection`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..audio import SAMPLE_RATE
from ..guards import word_key
from ..types import SpeechStarted, StreamResult, UtteranceEnd, WakeDetection, Word
from ..vad import StreamingVad

if TYPE_CHECKING:
    from .scheduler import Scheduler

FRAME = StreamingVad.FRAME
_BEAM_FROM_MS = 500  # endpointing from which finals are decoded with a beam (StreamOptions.beam)
# The default endpointing. At 400 ms tiny.en's streaming WER is 1.14x offline against 1.24x at 300 ms, and 8
# streams still keep their final p90 under 1 s on 2 cores (benchmarks/results/streaming.md; other endpoints in
# streaming-endpointing.md).
# The article's client and voxa's agent ask for 300 ms.
ENDPOINTING_MS = 400
_MAX_CLIP_S = 28.0  # a clip with its lookback stays inside Whisper's 30 s window
_EARLY_S = 1.5  # interims as often as the decoder allows for an utterance's first seconds

Event = SpeechStarted | StreamResult | UtteranceEnd | WakeDetection


@dataclass
class StreamOptions:
    language: str | None = None  # None: detected from the first utterance (multilingual models)
    interim_results: bool = True
    endpointing_ms: int | None = ENDPOINTING_MS  # None: never speech_final on silence (utterances still end)
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
    final_beam: int | None = None  # beam for finals; None: 1 below _BEAM_FROM_MS endpointing, else 3
    diarize: bool = False  # speaker labels on the words of finals (voxa.streaming.speakers; the diarize extra)
    wake: tuple[str, ...] = ()  # wake words (voxa.wake): recognise only after one of them is heard
    wake_idle_s: float = 8.0  # after a wake word, this long without speech and it waits for one again

    def beam(self) -> int:
        """The beam finals are decoded with. Greedy when endpointing is short: there beam 3 measured
        no better (the pieces between pauses are the error); from 500 ms it took tiny.en's streaming
        WER on the shared English speech from 13.97% to 12.56% (x offline 1.18 to 1.07)."""
        if self.final_beam is not None:
            return self.final_beam
        short = self.endpointing_ms is not None and self.endpointing_ms < _BEAM_FROM_MS
        return 1 if short else 3


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


class Recognizer:
    """The state of one live stream. ``push`` audio (float32, 16 kHz mono) as it arrives;
    events reach ``emit`` in order, from the caller's thread or the scheduler's."""

    def __init__(self, scheduler: Scheduler, emit: Callable[[Event], None], options: StreamOptions | None = None):
        self.opts = o = options or StreamOptions()
        self.scheduler = scheduler
        self.labeller = None
        if o.diarize:  # finals pass through a worker that labels their words' speakers, in order
            from .speakers import Labeller

            self.labeller = Labeller(emit)
        self.emit = self.labeller or emit
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
        self._wake = None  # the wake-word detector, fed the whole stream (its clock is the stream's)
        self.awake = True
        self._heard = 0  # stream sample index of the latest speech (or of the wake word)
        if o.wake:
            from ..wake import WakeDetector

            self._wake, self.awake = WakeDetector(o.wake), False
        scheduler.register(self)

    # ------------------------------------------------------------------ input
    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            if self.closed:
                raise RuntimeError("stream is closed")
            samples = samples.astype(np.float32, copy=False)
            if self._wake is not None:
                samples = self._gate(samples)
            buf = np.concatenate([self._rest, samples])
            n = buf.size // FRAME * FRAME
            self._rest = buf[n:]
            if n == 0:
                return
            probs = self._vad(buf[:n])
            for k, p in enumerate(probs):
                self._frame(buf[k * FRAME:(k + 1) * FRAME], float(p))
            self._maybe_interim()
        self.scheduler.notify()

    def _gate(self, samples: np.ndarray) -> np.ndarray:
        """With wake words: the part of ``samples`` to recognise. Asleep, the clock advances by
        whole frames (the rest waits in ``_rest``) and nothing is kept; a detection wakes the
        stream from its time on; awake, ``wake_idle_s`` without speech puts it back to sleep."""
        hits = self._wake.push(samples)
        if self.awake:
            if self.speaking:
                self._heard = self.samples
            elif self.samples - self._heard > self.opts.wake_idle_s * SAMPLE_RATE:
                self.awake = False
                self._preroll.clear()
                self._voiced = 0
        if self.awake:
            return samples
        buf = np.concatenate([self._rest, samples])
        self._rest = np.zeros(0, dtype=np.float32)
        if not hits:
            n = buf.size // FRAME * FRAME
            self.samples += n
            self._rest = buf[n:]
            return self._rest[:0]
        hit = hits[0]
        cut = min(max(0, round(hit.time * SAMPLE_RATE) - self.samples), buf.size) // FRAME * FRAME
        self.samples += cut
        self.awake, self._heard = True, self.samples
        self._ring.clear()  # the lookback never reaches across a stretch that was not listened to
        self._history.clear()
        self.emit(hit)
        return buf[cut:]

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
                    self._demote(self._candidate)
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

    def _demote(self, job: Job) -> None:
        """A stale speculative final that has not started is worth no more than an interim: it
        loses its lookback (and so its beam and longer clip), or leaves the queue when no interims
        are wanted. Decoded as a final it would take decoder time (a clip with up to 10 s of
        lookback, and from 500 ms endpointing a beam) from the finals that count."""
        k = next((i for i, j in enumerate(self.queue) if j is job), None)
        if k is None:
            return  # decoding already, or done
        del self.queue[k]
        if self.opts.interim_results:
            job.kind, job.before = "interim", None
            if round(job.offset * SAMPLE_RATE) == self._utt_start:  # no commit has cut the utterance since
                self._decoded = max(self._decoded, job.audio.size)
            self._enqueue(job)  # and replaces an older interim still waiting, as a newer one does

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
        # The first words as soon as two interims agree on them: in an utterance's first 1.5 s
        # every new push asks for one (a newer interim replaces one still waiting, so alone a
        # stream keeps the decoder busy for that time at most); then one every interim_s.
        step = FRAME / SAMPLE_RATE if length < _EARLY_S * SAMPLE_RATE else o.interim_s
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
        self._emit_final(StreamResult(round(job.offset, 3), round(max(0.0, end - job.offset), 3), words, True,
                                      job.speech_final, job.from_finalize), job.audio, job.lookback)

    def _emit_final(self, result: StreamResult, audio, lookback: int = 0) -> None:
        """A final goes out; with speaker labels, with its own audio (an array after ``lookback``
        samples of the speech before it, or the utterance's frames; None when nothing was
        decoded), which the labeller reads on its own thread."""
        if self.labeller is None:
            self.emit(result)
        else:
            self.labeller.final(result, audio[lookback:] if isinstance(audio, np.ndarray) else audio)

    def _interim(self, job: Job, words: list[Word]) -> None:
        if job.utterance != self._utt_id or not self.speaking or job.offset * SAMPLE_RATE < self._utt_start - 1:
            return  # the utterance has moved on; its final will follow
        o = self.opts
        prev, self._prev = self._prev, words
        end = job.end / SAMPLE_RATE
        if (job.end - self._utt_start) >= o.commit_s * SAMPLE_RATE:
            agreed = agreement(prev, words, before=end - 1.0)
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
        self._emit_final(StreamResult(round(self._utt_start / SAMPLE_RATE, 3),
                                      round((new_start - self._utt_start) / SAMPLE_RATE, 3), committed, True),
                         self._utt[:drop])
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
        if self.labeller is not None:  # its last finals go out before close returns
            self.labeller.close(timeout)
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
            if self._wake is not None:  # under the lock: no push is using it
                self._wake.close()
        if self.labeller is not None:
            self.labeller.close(0)
        self.scheduler.unregister(self)

    @property
    def duration(self) -> float:
        return self.samples / SAMPLE_RATE




def agreement(prev: list[Word], new: list[Word], before: float) -> int:
    """How many leading words two hypotheses share (LocalAgreement-2), ending before ``before``."""
    n = 0
    for a, b in zip(prev, new):
        if word_key(a.word) != word_key(b.word) or b.end > before:
            break
        n += 1
    return n
