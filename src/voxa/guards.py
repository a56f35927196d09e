"""Guards against Whisper's known failure modes in its output, used by :mod:`voxa.asr`.

Whisper sometimes writes text that was not said: a phrase looping ("thank you. thank you. ..."),
the same segment again and again over silence or music, or, when decoding continues a prefix, a
phrase said again that the aligner can only pile onto one instant. A looping decode compresses
too well: ``compression_ratio`` is the test Whisper's temperature fallback applies (as in
openai/whisper and faster-whisper). The rest are cut after decoding:

* ``drop_piled``: words the aligner gives no time (two or more in a row with zero duration, or
  piled onto the end of the clip);
* ``squash_repeats``: a segment repeating the previous one more than twice is dropped, and a
  phrase looping inside one segment is cut to two copies (``collapse_loop``).
"""

from __future__ import annotations

import zlib

from .types import Segment, Word


def drop_piled(words: list[Word]) -> list[Word]:
    """Drop words the aligner gives no time: two or more in a row with zero duration, a word
    with zero duration that repeats the word before it, or words piled onto one instant at the
    end of the clip (one alone too, when it has no duration). That is text Whisper wrote with no
    audio for it, typically a word or phrase said again ("Anon. Anon." for one "Anon")."""
    n = len(words)
    while n > 0 and words[n - 1].start > words[-1].start - 0.021:
        n -= 1
    if len(words) - n >= 2 or (len(words) - n == 1 and _silent(words[-1])):
        words = words[:n]
    out, run = [], []
    for w in words:
        if _silent(w):
            if not run and out and word_key(out[-1].word) == word_key(w.word):
                continue  # the word before, said again in no time
            run.append(w)
            continue
        if len(run) < 2:
            out += run
        run = []
        out.append(w)
    return out + (run if len(run) < 2 else [])


def _silent(w: Word) -> bool:
    return w.end - w.start < 0.01


def word_key(word: str) -> str:
    """A word compared as spoken: lower case, letters and digits only."""
    return "".join(c for c in word.lower() if c.isalnum())


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


def squash_repeats(segments: list[Segment], max_repeats: int = 2) -> list[Segment]:
    """Repetition guard: drop a segment whose text repeats the previous one more than
    ``max_repeats`` times in a row, and collapse a phrase looping inside one segment."""
    out: list[Segment] = []
    run = 0
    for s in segments:
        key = _norm(s.text)
        run = run + 1 if out and key and key == _norm(out[-1].text) else 0
        if run >= max_repeats:
            continue
        s.text = collapse_loop(s.text)
        if s.words:
            keep = len(s.text.split())
            s.words = s.words[: max(keep, 1)] if keep < len(s.words) else s.words
        out.append(s)
    return out


def _norm(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def collapse_loop(text: str, max_repeats: int = 2) -> str:
    """'a b c a b c a b c a b c' -> 'a b c a b c': any n-gram (n<=12) repeated more than
    ``max_repeats`` times back to back is cut down to ``max_repeats`` copies."""
    words = text.split()
    if len(words) < 3:
        return text
    changed = False
    for n in range(1, 13):
        i = 0
        while i + n * (max_repeats + 1) <= len(words):
            unit = [_norm(w) for w in words[i : i + n]]
            j = i + n
            while j + n <= len(words) and [_norm(w) for w in words[j : j + n]] == unit:
                j += n
            reps = (j - i) // n
            if reps > max_repeats:
                del words[i + n * max_repeats : j]
                changed = True
            i += 1
    return (" " if text.startswith(" ") else "") + " ".join(words) if changed else text
