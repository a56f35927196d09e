"""Which language an input is in, when none is given (used by :mod:`voxa.asr`).

Whisper names the language from the first decoder step over an encoder output. Paying an
encoder pass of its own for every input (faster-whisper's way, and voxa's before) costs as
much as decoding a short file, and a file decoded alone in its window is never packed. So:

1. **Probe, packed.** The first 30 s of speech of every input with no language go into windows
   packed with other such inputs. The encoder runs once per window; the language of each
   piece is read from the encoder frames of that piece alone (a slice of the window's output),
   and the window is decoded in the language of the pieces that are sure of theirs.
   A window that holds one input only (one short file, or the start of a long one) is judged
   on the whole window and decoded in place.
2. **More audio.** An input whose evidence stays below ``THRESHOLD`` gets windows of its own
   (its next 30 s of speech each, up to ``MAX_WINDOWS``), and the votes of all of them,
   weighted by seconds of speech, decide.
   When most inputs of the call are sure of one language (80% of them, at least two), an
   input needs ``AGAINST_PRIOR`` (0.8) rather than 0.5 to be decided as another.
3. **Prior, then hint.** Still unsure: the language most inputs of the same call were sure of
   (the corpus prior), if this input gives it some weight; then the caller's ``language_hint``;
   then the best guess. ``Transcript.language_source`` says which rule decided
   (``detected``, ``voted``, ``prior``, ``hint``, ``guess``; ``given`` for a given language).

``languages`` (an allowed list) limits every step to those languages.

Calibration (``benchmarks/langid.py`` → ``benchmarks/results/langid.md``, 91 shared recordings in
9 languages): a window of its own names the right language for 88 (every wrong answer under
0.45, every right one over 0.6); a slice of a shared window for 84 (wrong ones 0.16-0.40, but
in other packings a slice was wrong at 0.82, hence the odd-one-out rule); voxa's whole rule for
91 of 91 (89 detected, 2 by the prior). Hence ``THRESHOLD`` 0.5.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

THRESHOLD = 0.5  # top language's share of the votes needed to decide without more evidence
MAX_WINDOWS = 3  # windows of its own an unsure input may get (30 s of speech each)
PRIOR_MIN = 0.02  # the prior only picks a language the input gave at least this weight
PRIOR_INPUTS = 2  # sure inputs needed before their language is a prior
# The evidence an input needs to be decided against a corpus prior (most inputs of the call sure
# of another language; else the prior rule of decide() applies). On another machine's int8 kernels
# one archaic English reading (LibriSpeech 2033-164914-0001, "whomsoever thou ceasest to awake")
# came out Latin at 0.64 packed with 23 English files, while right answers in windows of their own
# go as low as 0.63: no threshold alone tells them apart, the prior does. benchmarks/langid.py:
# 91 of 91 with it.
AGAINST_PRIOR = 0.8


@dataclass
class Vote:
    """Evidence about one input's language: probabilities weighted by seconds of speech."""

    weights: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    windows: int = 0  # windows of its own judged so far (slices of shared windows do not count)
    slices: int = 0  # pieces judged from a slice of a shared window

    def add(self, probs: list[tuple[str, float]], seconds: float) -> None:
        seconds = max(seconds, 0.1)
        for lang, p in probs:
            self.weights[lang] += p * seconds
        self.seconds += seconds

    def clear(self) -> None:
        self.weights, self.seconds, self.slices = Counter(), 0.0, 0

    def ranked(self, allowed: tuple[str, ...] | None = None) -> list[tuple[str, float]]:
        """Languages by share of the evidence (restricted to ``allowed`` and renormalised)."""
        w = {k: v for k, v in self.weights.items() if not allowed or k in allowed}
        total = sum(w.values())
        if not w or total <= 0:
            return [(allowed[0], 0.0)] if allowed else []
        return sorted(((k, v / total if allowed else v / self.seconds) for k, v in w.items()),
                      key=lambda kv: -kv[1])

    def sure(self, allowed: tuple[str, ...] | None = None, *, prior: Counter | None = None
             ) -> tuple[str, float] | None:
        ranked = self.ranked(allowed)
        if ranked and ranked[0][1] >= _bar(ranked[0][0], prior):
            return ranked[0]
        return None


def _bar(lang: str, prior: Counter | None) -> float:
    """The evidence needed to decide ``lang`` without more: ``AGAINST_PRIOR`` when most inputs
    of the call (80% of those sure so far, at least ``PRIOR_INPUTS``) are sure of another
    language, else ``THRESHOLD``."""
    sure = sum(prior.values()) if prior else 0
    if sure < PRIOR_INPUTS:
        return THRESHOLD
    top, count = prior.most_common(1)[0]
    return AGAINST_PRIOR if lang != top and count >= 0.8 * sure else THRESHOLD


def decide(vote: Vote, *, allowed: tuple[str, ...] | None, prior: Counter, hint: str | None
           ) -> tuple[str, float, str]:
    """The language of an input whose evidence is all in: (language, probability, rule)."""
    ranked = vote.ranked(allowed)
    if ranked and ranked[0][1] >= _bar(ranked[0][0], prior):
        return ranked[0][0], ranked[0][1], "voted" if vote.windows > 1 else "detected"
    share = dict(ranked)
    if sum(prior.values()) >= PRIOR_INPUTS:
        for lang, _ in prior.most_common():
            if (not allowed or lang in allowed) and share.get(lang, 0.0) >= PRIOR_MIN:
                return lang, share.get(lang, 0.0), "prior"
            break
    if hint and (not allowed or hint in allowed):
        return hint, share.get(hint, 0.0), "hint"
    if ranked:
        return ranked[0][0], ranked[0][1], "guess"
    return (allowed[0] if allowed else "en"), 0.0, "guess"


def piece_frames(offset: float, duration: float, total: int) -> tuple[int, int]:
    """Encoder frames (50 per second) that hold a piece placed at ``offset`` in a window."""
    a = max(0, min(total - 1, int(offset * 50)))
    return a, max(a + 1, min(total, int((offset + duration) * 50) + 1))
