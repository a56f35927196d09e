"""Sentence splitting and cleaning (voxa.tts.text)."""

from __future__ import annotations

import pytest

from voxa.errors import InputError
from voxa.tts.text import MAX_CHARS, clean, sentences, speakable, split_long


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith arrived at 9.30 a.m. He was late.", ["Dr. Smith arrived at 9.30 a.m.", "He was late."]),
    ("It costs $9.99. That is cheap.", ["It costs $9.99.", "That is cheap."]),
    ("J. K. Rowling wrote it. The U.S. economy grew 3.5% in Jan. and Feb. last year.",
     ["J. K. Rowling wrote it.", "The U.S. economy grew 3.5% in Jan. and Feb. last year."]),
    ('She said "Stop it." Then she left.', ['She said "Stop it."', "Then she left."]),
    ("Is it true? Yes! Really.", ["Is it true?", "Yes!", "Really."]),
    ("e.g. this one, i.e. that one. Next sentence here.", ["e.g. this one, i.e. that one.", "Next sentence here."]),
    ("First paragraph\n\nSecond paragraph", ["First paragraph", "Second paragraph"]),
    ("Mr. and Mrs. Jones paid more.", ["Mr. and Mrs. Jones paid more."]),
])
def test_sentence_boundaries(text, expected):
    assert list(sentences(text)) == expected


def test_long_sentence_is_cut_at_clauses():
    clause = "the river ran past the old mill and on towards the sea"
    text = "; ".join([clause] * 12) + "."
    parts = list(sentences(text))
    assert len(parts) > 1
    assert all(len(p) <= MAX_CHARS for p in parts)
    assert all(p.endswith(";") for p in parts[:-1])  # cut after clause punctuation, not mid-clause
    assert " ".join(parts).split() == text.split()  # no word lost or duplicated


def test_no_punctuation_at_all_is_cut_at_spaces():
    words = ["word"] * 3000
    parts = list(sentences(" ".join(words)))
    assert all(len(p) <= MAX_CHARS for p in parts)
    assert " ".join(parts).split() == words


def test_hundred_thousand_characters_stream_lazily():
    text = "The quick brown fox, who was tired, jumps over the lazy dog. " * 1700  # ~100k chars
    assert len(text) > 100_000
    it = sentences(text)
    assert next(it) == "The quick brown fox, who was tired, jumps over the lazy dog."
    rest = list(it)
    assert len(rest) == 1699 and set(rest) == {"The quick brown fox, who was tired, jumps over the lazy dog."}


def test_window_joins_do_not_split_sentences():
    # sentences straddling the 4000-character pysbd windows must come out whole
    text = " ".join(f"Sentence number {i} has a few more words in it." for i in range(400))
    got = list(sentences(text))
    assert got == [f"Sentence number {i} has a few more words in it." for i in range(400)]


def test_clean_removes_control_characters_and_keeps_words():
    assert clean("hello\x00 world\x07.  Yes , no ?\r\nnext\u200b") == "hello world. Yes, no?\nnext"
    assert clean("[[ˈhɛloʊ]] [[[x]]]") == "[ˈhɛloʊ] [x]"  # no raw phoneme input reaches an engine
    with pytest.raises(InputError):
        clean(b"bytes")  # type: ignore[arg-type]


def test_speakable():
    assert speakable("a") and speakable("42") and not speakable("?!... --")


def test_split_long_keeps_short_sentences():
    assert split_long("Short one.") == ["Short one."]
