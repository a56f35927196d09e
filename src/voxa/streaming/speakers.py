"""Speaker labels on live recognition (``/v1/listen?diarize=true``, ``voxa.listen(..., diarize=True)``).

Every final's audio goes through the diarization models (``voxa.speakers``): segmentation-3.0
says which local speakers talk in it (10 s at a time), CAM++ embeds each from where it talks
alone, and an online clustering over the stream's embeddings names them. A local speaker joins
the stream speaker whose centroid it is most like (a Hungarian assignment within one final, so
two voices of one final stay two speakers), or starts a new one when none is within
``threshold`` (cosine distance; 0.45 did best of 0.35-0.55 on the shared AMI clips streamed
live, and every value there kept two LibriSpeech readers apart). Labels never change once sent: SPEAKER_00, SPEAKER_01, ... in
order of appearance (Deepgram's wire gives their numbers). A word takes the local speaker most
active over its span; a word no local speaker covers takes its neighbour's.

``Labeller`` runs this on a worker thread per stream, so the decoding scheduler that serves
every stream never waits for it, and passes the stream's events on in the order they came. The
recogniser hands it each final with the audio that final was decoded from.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import numpy as np

from ..audio import SAMPLE_RATE
from ..speakers import CHUNK, FBANK_HOP, FBANK_WIN, FRAME_RF, FRAME_STEP, fbank, fbank_grid, segmenter, speaker_encoder
from ..types import StreamResult, Word

log = logging.getLogger("voxa.streaming")


class LiveSpeakers:
    """Online speaker clustering for one stream."""

    def __init__(self, threshold: float = 0.45, max_speakers: int = 16, min_embed_s: float = 0.5,
                 none_bias: float = -1.0, pair_bias: float = 1.5):
        self.threshold, self.max_speakers, self.min_embed_s = threshold, max_speakers, min_embed_s
        self.none_bias, self.pair_bias = none_bias, pair_bias
        self.sums: list[np.ndarray] = []  # per speaker: sum of its embeddings, weighted by seconds

    @property
    def names(self) -> list[str]:
        return [f"SPEAKER_{k:02d}" for k in range(len(self.sums))]

    def label(self, pcm: np.ndarray, offset: float, words: list[Word]) -> None:
        """Set ``speaker`` on ``words`` (stream times) of the audio ``pcm`` that starts at
        ``offset`` seconds into the stream."""
        from ..diarization import binarize

        if not words or pcm.size < FBANK_WIN:
            return
        frame_owner: list[tuple[int, np.ndarray, np.ndarray]] = []  # (chunk start, local->global, activity)
        for s0 in range(0, pcm.size, CHUNK):
            piece = pcm[s0:s0 + CHUNK]
            x = np.zeros((1, CHUNK), np.float32)
            x[0, :piece.size] = piece
            logp = segmenter()(x)[0]
            act = binarize(logp, self.none_bias, self.pair_bias)
            frame_owner.append((s0, self._match(piece, binarize(logp)), act))
        for w in words:
            w.speaker = self._word_speaker(w, offset, frame_owner)
        for i, w in enumerate(words):  # words no speaker covers: the nearest labelled neighbour's
            if w.speaker is None:
                near = sorted((abs(i - j), v.speaker) for j, v in enumerate(words) if v.speaker is not None)
                w.speaker = near[0][1] if near else None
        if all(w.speaker is None for w in words):  # nothing embeddable per speaker: the whole clip as one
            k = self._assign([self._embed(pcm)], [pcm.size / SAMPLE_RATE])[0] if pcm.size >= SAMPLE_RATE // 2 else -1
            for w in words:
                w.speaker = self.names[k] if k >= 0 else None

    def _embed(self, pcm: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
        feats = fbank(pcm)
        return speaker_encoder()(feats if frames is None else feats[frames])

    def _match(self, piece: np.ndarray, plain: np.ndarray) -> np.ndarray:
        """Global speaker (or -1) of each of the chunk's 3 local speakers."""
        feats = fbank(piece)
        grid = np.clip(fbank_grid(len(feats)), 0, len(plain) - 1)
        act = plain[grid]
        alone = act.sum(1) == 1
        local, embs, secs = [], [], []
        for s in range(3):
            use = np.flatnonzero((act[:, s] > 0) & alone)
            if use.size * FBANK_HOP / SAMPLE_RATE >= self.min_embed_s:
                local.append(s)
                embs.append(speaker_encoder()(feats[use]))
                secs.append(use.size * FBANK_HOP / SAMPLE_RATE)
        out = np.full(3, -1)
        if local:
            out[local] = self._assign(embs, secs)
        return out

    def _assign(self, embs: list[np.ndarray], secs: list[float]) -> list[int]:
        """Stream speaker of each embedding (one final's voices get different speakers);
        centroids move with what they take."""
        from scipy.optimize import linear_sum_assignment

        got = [-1] * len(embs)
        if self.sums:
            cents = np.stack([s / (np.linalg.norm(s) + 1e-9) for s in self.sums])
            sim = np.stack(embs) @ cents.T
            for r, k in zip(*linear_sum_assignment(-sim)):
                if 1.0 - sim[r, k] <= self.threshold:
                    got[r] = int(k)
        for r, e in enumerate(embs):
            if got[r] < 0:
                if len(self.sums) < self.max_speakers:
                    self.sums.append(np.zeros_like(e))
                    got[r] = len(self.sums) - 1
                else:  # no room for another: the most similar one
                    got[r] = int(np.argmax([e @ s for s in self.sums]))
            self.sums[got[r]] = self.sums[got[r]] + secs[r] * e
        return got

    def _word_speaker(self, w: Word, offset: float, frame_owner) -> str | None:
        a, b = (w.start - offset) * SAMPLE_RATE, (w.end - offset) * SAMPLE_RATE
        score: dict[int, float] = {}
        for s0, glob, act in frame_owner:
            lo = int(np.floor((a - s0 - FRAME_RF / 2) / FRAME_STEP))
            hi = int(np.ceil((b - s0 - FRAME_RF / 2) / FRAME_STEP)) + 1
            lo, hi = max(lo, 0), min(hi, len(act))
            if hi <= lo:
                continue
            for s in range(3):
                if glob[s] >= 0:
                    score[int(glob[s])] = score.get(int(glob[s]), 0.0) + float(act[lo:hi, s].sum())
        if not score or max(score.values()) <= 0:
            return None
        return self.names[max(score, key=score.get)]


class Labeller:
    """Puts speaker labels on a stream's finals on a worker thread and passes every event on,
    in order, to ``emit``."""

    def __init__(self, emit: Callable, speakers: LiveSpeakers | None = None):
        self._emit = emit
        self.speakers = speakers or LiveSpeakers()
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="voxa-speakers", daemon=True)
        self._thread.start()

    def __call__(self, event) -> None:
        """Any event: passed on after the finals queued before it."""
        self._q.put((event, None))

    def final(self, event: StreamResult, audio) -> None:
        """A final and the audio it was decoded from (16 kHz; an array or a list of frames)."""
        self._q.put((event, audio))

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            event, audio = item
            if isinstance(audio, list):
                audio = np.concatenate(audio) if audio else None
            if audio is not None and audio.size and event.words:
                try:
                    self.speakers.label(audio, event.start, event.words)
                except Exception:  # the words still go out, without speakers
                    log.exception("speaker labels failed for a final at %.2f s", event.start)
                    for w in event.words:
                        w.speaker = None
            self._emit(event)

    def close(self, timeout: float | None = None) -> None:
        """Pass on what is queued, then stop."""
        self._q.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
