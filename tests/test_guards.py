"""The output guards of voxa.guards, on made-up Whisper output (their effect on real
transcription is covered in test_asr: no loops in translations, no text from silence)."""

from __future__ import annotations

from voxa.guards import collapse_loop, drop_piled, squash_repeats
from voxa.types import Segment, Word


def test_repetition_guard():
    assert collapse_loop(" I will go. I will go. I will go. I will go. I will go.") == " I will go. I will go."
    assert collapse_loop(" no no no no no no") == " no no"
    assert collapse_loop(" a normal sentence, nothing repeated") == " a normal sentence, nothing repeated"
    segs = [Segment(i, i, i + 1, " Thank you.") for i in range(5)]
    assert len(squash_repeats(segs)) == 2


def test_words_given_no_time_are_dropped():
    w = lambda t, a, b: Word(a, b, t, 0.9)  # noqa: E731
    said = [w(" The", 0.0, 0.2), w(" dose", 0.2, 0.5), w(" is", 0.5, 0.6), w(" ten.", 0.6, 1.0)]
    # the sentence again, piled onto the clip's last instant
    assert drop_piled(said + [w(" The", 1.0, 1.0), w(" dose", 1.0, 1.0), w(" is", 1.0, 1.02)]) == said
    # a phrase again with zero durations in the middle
    mid = said[:2] + [w(" the", 0.5, 0.5), w(" dose", 0.5, 0.5)] + said[2:]
    assert drop_piled(mid) == said
    # one short word is kept; so is ordinary speech
    short = said[:2] + [w(" a", 0.5, 0.5)] + said[2:]
    assert drop_piled(short) == short and drop_piled(said) == said


def test_a_word_said_again_in_no_time_is_dropped():
    """Seen live (issue 24): "Anon. Anon." for one "Anon", the second with start = end at the
    clip's end. One zero-length word at the end of the clip, or one repeating the word before
    it, has no audio: dropped. A real repetition with time for it stays."""
    w = lambda t, a, b: Word(a, b, t, 0.9)  # noqa: E731
    anon = [w(" has", 0.0, 0.3), w(" steel.", 0.3, 0.8), w(" Anon.", 1.2, 1.66)]
    assert drop_piled(anon + [w(" anon", 1.66, 1.66)]) == anon
    assert drop_piled(anon[:2] + [w(" steel", 0.8, 0.8)] + anon[2:]) == anon
    said_twice = [w(" thou", 0.0, 0.3), w(" also", 0.3, 0.7), w(" thou", 0.9, 1.2), w(" also", 1.2, 1.6)]
    assert drop_piled(said_twice) == said_twice
