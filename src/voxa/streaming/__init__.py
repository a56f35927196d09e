"""Live recognition: audio in as it arrives, interim and final words out.

* :mod:`.recognizer`: one ``Recognizer`` per stream: VAD, utterances, interims, the speculative
  final, endpointing, LocalAgreement commits for long utterances, the lookback of finals.
* :mod:`.scheduler`: one ``Scheduler`` per model, shared by all streams: batches their decodes
  on one worker thread, finals first, interims within half the decoder's time.
* :mod:`.wire`: events as the JSON of Deepgram's live API, which ``WS /v1/listen`` speaks.
* here: :func:`listen`, the Python API, and :func:`scheduler_for`.

Why not re-decode a growing 30 s window as whisper_streaming does: every update then costs a
full 30 s encoder pass plus all the words again (3.6 s commit latency with tiny.en in
../shared/MODELS.md). Here the VAD decides where utterances end, decodes are only of speech,
and the encoder runs on a 10, 15 or 20 s window when the audio fits, which CTranslate2 allows
and which kept tiny.en's LibriSpeech WER within noise of the 30 s window (17.4% and 16.4% against
16.6% on 40 test-other utterances) at half the cost.

Accuracy (``benchmarks/streaming.py``, accuracy pass: all 725 s of English read speech with
references in ../shared/eval, 300 ms endpointing, tiny.en): streaming WER 14.6% against 11.8%
offline (1.24x). The lookback of finals is most of what closes the gap: without it 18.6%, with
3 s 18.0%, 5 s 17.0%, 10 s 14.6%, 15 s 14.3%, 20 s 14.9%. Words the aligner gives no time (a
phrase said again, piled onto one instant) are dropped by ``asr.Whisper.decode_clips``.

Measured and left out: the recent final words as Whisper's prompt instead of a prefix (worse:
24.1% against 17.9%), no prefix with the lookback audio (19.9% against 16.1% on test-other), the
prefix without its final full stop, beam 3 or 5 for finals (at 300 ms endpointing), the full
30 s encoder window for finals, more pre-roll, a later speculative decode, decoding the piece alone as well and keeping
whichever has the higher mean word probability (15.3%, or 14.4% with a 0.1 margin, against 14.6%
on all of it): all within noise or worse. Holding the
endpoint up to 1 s at a pause that smart-turn (voxa.turn) scores unfinished (16.8% against 16.1%
on test-other), or whose words end on a function word (15.0% against 14.6% on all of it), did
not help either. A piece ending at a 300 ms pause is final before the words after it are heard.
Longer endpointing alone closes a quarter to a third of the gap to offline on all 725 s (greedy finals: 14.62%
at 300 ms, 13.97% at 500, 13.78% at 700, 13.65% at 1000, against 11.79% offline); with it, beam 3
for finals closes most of the rest (12.56% at 500 ms, 12.12% at 700, 12.37% at 1000), though at 300 ms it
gave 14.74%. So finals take beam 3 from 500 ms endpointing (``StreamOptions.beam``;
``benchmarks/results/streaming-endpointing.md``). At 400 ms, greedy, it is 13.40% (1.14x), and
that is the default (``ENDPOINTING_MS``). A longer endpoint leaves less of the 1 s latency budget
for decoding: 8 tiny.en streams keep their final p90 under 1 s at 400 ms (884 ms; 876 and 970 ms in
two more runs) but not at 500 ms (1.05 s). That holds since a stale speculative final, one still
queued when speech resumes, is decoded as an interim without its lookback (``Recognizer._demote``):
before, at 400 ms, 8 streams' p90 was 1.19 and 1.46 s.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..audio import SAMPLE_RATE
from .recognizer import Event, Job, Recognizer, StreamOptions
from .scheduler import Scheduler
from .wire import message

__all__ = ["Event", "Job", "Recognizer", "Scheduler", "StreamOptions", "listen", "message", "paced",
           "scheduler_for"]

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

    from .. import audio as audio_io
    from ..asr import load_model

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
