"""Packing speech into Whisper's 30-second windows, and unpacking the results.

Whisper's encoder always looks at 30 s. A 4-second utterance decoded alone wastes 26 s of
encoder work; that is where most of the time goes on short files. voxa cuts every input into
speech regions (VAD), packs regions from many inputs into full windows separated by short
stretches of digital silence, decodes the windows in batches, and then maps every word back to
the region, input and time it came from.

The mapping uses word-level alignment (cross-attention DTW) where a segment spans a join, so a
sentence that Whisper ran across two regions is split at the join; elsewhere Whisper's own
segment timestamps suffice.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE
from .types import Segment, Word

WINDOW_S = 30.0


@dataclass
class Piece:
    """A stretch of speech from one input."""

    file: int
    start: float  # seconds in the original recording
    audio: np.ndarray
    retries: int = 0  # times this stretch came back undecoded
    solo: bool = False  # decode in a window of its own (packing lost its words once)

    @property
    def duration(self) -> float:
        return self.audio.size / SAMPLE_RATE


@dataclass
class Window:
    """Up to 30 s of audio made of pieces, all to be decoded in one language."""

    language: str | None  # None: detect from this window (then it holds one input only)
    pieces: list[Piece] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)  # piece start inside the window (s)
    length: float = 0.0
    judge_only: bool = False  # only its language is wanted; its pieces are decoded later, packed

    def fits(self, piece: Piece, gap: float) -> bool:
        extra = piece.duration + (gap if self.pieces else 0.0)
        return self.length + extra <= WINDOW_S - 0.05

    def add(self, piece: Piece, gap: float) -> None:
        if self.pieces:
            self.length += gap
        self.offsets.append(self.length)
        self.pieces.append(piece)
        self.length += piece.duration

    def audio(self) -> np.ndarray:
        """The window's samples, zero-padded to 30 s (as Whisper pads)."""
        out = np.zeros(int(WINDOW_S * SAMPLE_RATE), dtype=np.float32)
        for piece, off in zip(self.pieces, self.offsets):
            i = int(round(off * SAMPLE_RATE))
            n = min(piece.audio.size, out.size - i)
            out[i : i + n] = piece.audio[:n]
        return out

    def locate(self, t: float) -> int:
        """Index of the piece a window time belongs to (nearest piece for times in gaps)."""
        best, best_d = 0, float("inf")
        for k, (piece, off) in enumerate(zip(self.pieces, self.offsets)):
            if off <= t <= off + piece.duration:
                return k
            d = min(abs(t - off), abs(t - off - piece.duration))
            if d < best_d:
                best, best_d = k, d
        return best

    def spans_join(self, start: float, end: float, tolerance: float = 0.3) -> bool:
        """Does [start, end] overlap more than one piece by more than ``tolerance``?"""
        hits = 0
        for piece, off in zip(self.pieces, self.offsets):
            overlap = min(end, off + piece.duration) - max(start, off)
            hits += overlap > tolerance
        return hits > 1

    def to_original(self, k: int, t: float) -> float:
        piece, off = self.pieces[k], self.offsets[k]
        return round(float(piece.start + min(max(t - off, 0.0), piece.duration)), 3)


def pack(pieces: list[Piece], gap: float, language: str | None, *, together: bool = True,
         ordered: bool = False) -> list[Window]:
    """First-fit decreasing: long pieces first, each into the first window with room.
    Keeps pieces of one input in time order inside a window. ``together=False`` gives every
    piece a window of its own (what decoding one input at a time amounts to). ``ordered``: next
    fit in time order instead, so the first windows hold the earliest speech (for results that
    stream out as windows are decoded)."""
    windows: list[Window] = []
    if ordered:
        for piece in sorted(pieces, key=lambda p: (p.file, p.start)):
            if not windows or piece.solo or windows[-1].pieces[0].solo or not together \
                    or not windows[-1].fits(piece, gap):
                windows.append(Window(language))
            windows[-1].add(piece, gap)
        return windows
    for piece in sorted(pieces, key=lambda p: -p.duration):
        if piece.solo or not together:
            windows.append(Window(language))
            windows[-1].add(piece, gap)
            continue
        for w in windows:
            if w.fits(piece, gap) and not w.pieces[0].solo:
                w.add(piece, gap)
                break
        else:
            w = Window(language)
            w.add(piece, gap)
            windows.append(w)
    for w in windows:  # re-lay each window in (input, time) order; length is unchanged
        order = sorted(w.pieces, key=lambda p: (p.file, p.start))
        w.pieces, w.offsets, w.length = [], [], 0.0
        for p in order:
            w.add(p, gap)
    return windows


def leftovers(window: Window, covered: float, *, min_rest: float, max_retries: int = 2,
              voiced: Callable[[np.ndarray], bool] | None = None) -> list[Piece]:
    """Pieces, or tails of pieces, that lie after ``covered`` (window time), i.e. audio the
    decoder did not reach; they go back into the queue, as Whisper seeks to its last timestamp.
    With ``voiced``, a tail goes back only if it holds speech: a tail of silence decoded alone
    is where Whisper invents a closing "Bye."."""
    out = []
    for piece, off in zip(window.pieces, window.offsets):
        if piece.retries >= max_retries:
            continue
        cut = max(covered - off, 0.0)
        if piece.duration - cut < min_rest:
            continue
        i = int(cut * SAMPLE_RATE)
        if voiced is not None and not voiced(piece.audio[i:]):
            continue
        out.append(Piece(piece.file, piece.start + cut, piece.audio[i:], piece.retries + 1))
    return out


# Whisper sometimes skips part of an utterance inside a packed window. The word alignment
# shows it: the skipped audio is absorbed by one word stretched over seconds, or the piece
# gets words far more sparsely than speech runs (2-3.5 words/s). A short piece Whisper skipped
# whole may still get a word: the aligner pulls the next piece's first word back into it
# ("THOU ALSO THOU ALSO", 2.8 s, came out as "Because", 0.35 words/s; the other 59 pieces of
# the 60 LibriSpeech files run at 1.45 words/s or more).
MIN_WORD_RATE = 1.2  # pieces of 3 s and more
SHORT_MIN_WORD_RATE = 0.6  # pieces of 1.5-3 s
MAX_WORD_S = 2.0


def starved(window: Window, segments: list[tuple[int, Segment]]) -> set[int]:
    """Pieces of a packed window that got suspiciously few words."""
    if len(window.pieces) < 2:
        return set()
    counts: dict[int, int] = {}
    bad = set()
    for k, seg in segments:
        counts[k] = counts.get(k, 0) + len(seg.words or seg.text.split())
        if any(w.end - w.start > MAX_WORD_S for w in seg.words or ()):
            bad.add(k)
    for k, piece in enumerate(window.pieces):
        n = counts.get(k, 0)
        if piece.solo or piece.retries >= 2:
            bad.discard(k)
            continue
        rate = n / piece.duration
        if (n == 0 and piece.duration >= 1.0) or (piece.duration >= 3.0 and rate < MIN_WORD_RATE) \
                or (piece.duration >= 1.5 and rate < SHORT_MIN_WORD_RATE):
            bad.add(k)
    return bad


def _owner(window: Window, start: float, end: float, word: str) -> int:
    """The piece a word belongs to: by its midpoint, except that a word stretched back across
    a gap (the aligner gives the silence before a word to that word) belongs to the piece its
    end lies in, unless it ends a sentence; and a sentence-final word the aligner put wholly in
    a gap ends the piece before it (tiny.en's "...his memory." was piled at one instant in the
    gap, nearer the next piece, and opened the next file's transcript)."""
    k = window.locate((start + end) / 2)
    j = window.locate(end)
    if j > k and end > window.offsets[j] and start < window.offsets[j] and not _ends_sentence(word):
        return j
    if k > 0 and _ends_sentence(word) and end <= window.offsets[k] + 0.02:
        before = window.offsets[k - 1] + window.pieces[k - 1].duration
        if start >= before - 0.02:  # in the gap between piece k - 1 and piece k
            return k - 1
    return k


_CLOSERS = "\"'”’»)]" + string.whitespace


def _ends_sentence(word: str) -> bool:
    """Does the word end a sentence (closing quotes and brackets aside: 'sleeping."')?"""
    return word.rstrip(_CLOSERS).endswith((".", "?", "!", "。", "？", "！"))


def split_words(window: Window, words: list[dict]) -> dict[int, list[Word]]:
    """Assign aligned words (window time) to pieces (see _owner); times become original."""
    out: dict[int, list[Word]] = {}
    for w in words:
        k = _owner(window, w["start"], w["end"], w["word"])
        out.setdefault(k, []).append(Word(
            start=window.to_original(k, w["start"]), end=window.to_original(k, w["end"]),
            word=w["word"], probability=round(float(w["probability"]), 4),
        ))
    return out


def sentences(words: list[Word], pause: float = 0.8, max_len: float = 12.0) -> list[list[Word]]:
    """Split a run of words into segments at sentence ends and pauses, and before
    ``max_len`` seconds, so that subtitles stay readable."""
    out: list[list[Word]] = [[]]
    for i, w in enumerate(words):
        cur = out[-1]
        if cur and (w.start - cur[-1].end > pause or w.end - cur[0].start > max_len):
            out.append([])
        out[-1].append(w)
        if _ends_sentence(w.word) and i + 1 < len(words):
            out.append([])
    return [o for o in out if o]


def unpack(window: Window, segments: list[dict], stats: dict) -> list[tuple[int, Segment]]:
    """Turn one window's decoded segments into (piece index, Segment in original time).

    A segment inside one piece keeps Whisper's text and timestamps; a segment with aligned
    words is split wherever its words fall into different pieces.
    """
    out: list[tuple[int, Segment]] = []
    for seg in segments:
        text = seg["text"]
        if not text.strip():
            continue
        if seg.get("words"):
            by_piece = split_words(window, seg["words"])
            for k, words in sorted(by_piece.items()):
                for part in sentences(words):
                    out.append((k, Segment(
                        id=0, start=part[0].start, end=part[-1].end,
                        text="".join(w.word for w in part), words=part, **stats,
                    )))
            continue
        k = window.locate((seg["start"] + seg["end"]) / 2)
        out.append((k, Segment(
            id=0, start=window.to_original(k, seg["start"]), end=window.to_original(k, seg["end"]),
            text=text, **stats,
        )))
    return out
