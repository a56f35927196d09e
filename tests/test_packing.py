"""Packing logic (no model): windows fill up to 30 s, map times back, find what the decoder
missed. The end-to-end effect is tested with the real model in test_asr.py."""

from __future__ import annotations

import numpy as np

from voxa.packing import WINDOW_S, Piece, Window, leftovers, pack, sentences, split_words, starved
from voxa.types import Segment, Word


def piece(file, start, seconds, **kw):
    return Piece(file, start, np.zeros(int(seconds * 16000), np.float32), **kw)


def window(*pieces: Piece) -> Window:
    """A window holding these pieces in order, one second of silence apart (voxa's gap)."""
    w = Window("en")
    for p in pieces:
        w.add(p, 1.0)
    return w


def test_pack_fills_windows_and_keeps_every_piece():
    pieces = [piece(i, 0.0, d) for i, d in enumerate([12, 3, 7, 20, 4, 9, 2.5, 14, 5])]
    windows = pack(pieces, gap=1.0, language="en")
    assert sorted(id(p) for w in windows for p in w.pieces) == sorted(id(p) for p in pieces)
    assert all(w.length <= WINDOW_S for w in windows)
    total = sum(p.duration for p in pieces)
    assert len(windows) == int(np.ceil((total + len(pieces)) / WINDOW_S))  # no wasted window
    for w in windows:  # laid out in order, gap-separated, audio fits in 30 s
        for (a, oa), (b, ob) in zip(zip(w.pieces, w.offsets), zip(w.pieces[1:], w.offsets[1:])):
            assert (a.file, a.start) < (b.file, b.start)
            assert abs(ob - (oa + a.duration + 1.0)) < 1e-9
        assert w.audio().size == 480000


def test_solo_pieces_get_their_own_window():
    pieces = [piece(0, 0, 3, solo=True), piece(1, 0, 3), piece(2, 0, 3)]
    windows = pack(pieces, gap=1.0, language="en")
    assert [len(w.pieces) for w in windows if w.pieces[0].solo] == [1]


def test_locate_and_time_mapping():
    w = window(piece(0, 100.0, 5), piece(1, 7.0, 4))
    assert w.offsets == [0.0, 6.0]
    assert w.locate(2.0) == 0 and w.locate(8.0) == 1
    assert w.locate(5.3) == 0 and w.locate(5.8) == 1  # in the gap: nearest piece
    assert w.to_original(0, 2.5) == 102.5
    assert w.to_original(1, 7.5) == 8.5
    assert w.to_original(1, 20.0) == 11.0  # clamped to the piece's end


def test_split_words_assigns_by_midpoint():
    w = window(piece(0, 0.0, 5), piece(1, 50.0, 5))
    words = [dict(word=" a", start=1.0, end=1.5, probability=0.9),
             dict(word=" b", start=4.6, end=5.2, probability=0.9),
             dict(word=" c", start=6.2, end=6.6, probability=0.9)]
    out = split_words(w, words)
    assert [x.word for x in out[0]] == [" a", " b"]
    assert out[1][0].start == 50.2 and out[1][0].end == 50.6


def test_split_words_gives_a_word_stretched_across_a_gap_to_the_piece_it_ends_in():
    # The aligner hands the silence before a word to that word: "Doctor" [4.6, 6.5] starts in
    # piece 0's tail, has its midpoint in the gap, and is really the first word of piece 1.
    w = window(piece(0, 0.0, 5), piece(1, 0.0, 5))
    words = [dict(word=" dog", start=4.0, end=4.6, probability=0.9),
             dict(word=" Doctor", start=4.6, end=6.5, probability=0.9),
             dict(word=" Smith", start=6.5, end=7.0, probability=0.9)]
    out = split_words(w, words)
    assert [x.word for x in out[0]] == [" dog"] and [x.word for x in out[1]] == [" Doctor", " Smith"]
    # ...but a sentence-final word stretched forward stays with the sentence it ends
    words[1] = dict(word=" dog.", start=4.0, end=6.3, probability=0.9)
    out = split_words(w, words[1:])
    assert [x.word for x in out[0]] == [" dog."]
    # ...closing quotes included ("...and folks are all sleeping." went to the next file)
    words[1] = dict(word=' sleeping."', start=4.0, end=6.3, probability=0.9)
    out = split_words(w, words[1:])
    assert [x.word for x in out[0]] == [' sleeping."']


def test_a_sentence_final_word_left_in_a_gap_ends_the_piece_before():
    # tiny.en on two clips of a sonnet: "...his memory." aligned at one instant in the gap,
    # nearer the next piece, became the first word of the next file's transcript
    w = window(piece(0, 0.0, 5.74), piece(1, 0.0, 5.83))
    words = [dict(word=" his", start=5.2, end=5.5, probability=0.9),
             dict(word=" memory.", start=6.38, end=6.38, probability=0.5),
             dict(word=" Thou", start=6.8, end=7.1, probability=0.9)]
    out = split_words(w, words)
    assert [x.word for x in out[0]] == [" his", " memory."] and [x.word for x in out[1]] == [" Thou"]
    words[1] = dict(word=" Thou", start=6.38, end=6.5, probability=0.9)  # a first word starting early
    out = split_words(w, words[:2])
    assert [x.word for x in out[1]] == [" Thou"]


def test_leftovers_requeue_what_the_decoder_did_not_reach():
    w = window(piece(0, 10.0, 8), piece(1, 0.0, 8))  # offset 9..17
    rest = leftovers(w, covered=12.0, min_rest=0.3)
    assert len(rest) == 1 and rest[0].file == 1
    assert rest[0].start == 3.0 and abs(rest[0].duration - 5.0) < 1e-3 and rest[0].retries == 1
    assert leftovers(w, covered=16.9, min_rest=1.0) == []


def test_starved_flags_skipped_speech():
    w = window(piece(0, 0.0, 10), piece(1, 0.0, 10))
    normal = [Word(i * 0.4, i * 0.4 + 0.3, " w", 0.9) for i in range(25)]
    stretched = [Word(0.0, 0.3, " to", 0.1), Word(0.3, 7.0, " save", 0.8), Word(7.0, 7.3, " it", 0.9)]
    segs = [(0, Segment(0, 0, 10, "x", words=normal)), (1, Segment(0, 0, 10, "x", words=stretched))]
    assert starved(w, segs) == {1}
    assert starved(w, segs[:1]) == {1}  # piece 1 got no words at all


def test_starved_flags_a_short_piece_left_with_a_stray_word():
    """A 2.8 s piece Whisper skipped whole, left with one word the aligner pulled back from the
    next piece (0.35 words/s), is flagged; a short piece of a few words is not, nor is one
    short word on its own in a piece of 1.2 s."""
    w = window(*(piece(n, 0.0, d) for n, d in enumerate((8.0, 2.8, 2.5, 1.2, 8.0))))
    segs = [(0, Segment(0, 0, 8, "x", words=[Word(i * 0.4, i * 0.4 + 0.3, " w", 0.9) for i in range(18)])),
            (1, Segment(0, 1.8, 2.4, " Because", words=[Word(1.8, 2.4, " Because", 0.6)])),
            (2, Segment(0, 0.2, 2.3, " Thou also thou also", words=[Word(0.2 + i * 0.5, 0.6 + i * 0.5, " w", 0.9) for i in range(4)])),
            (3, Segment(0, 0.2, 0.8, " Yes.", words=[Word(0.2, 0.8, " Yes.", 0.9)])),
            (4, Segment(0, 0, 8, "x", words=[Word(i * 0.4, i * 0.4 + 0.3, " w", 0.9) for i in range(18)]))]
    assert starved(w, segs) == {1}


def test_sentences_split_at_full_stops_and_pauses():
    ws = [Word(0, 0.3, " Hi.", 1), Word(0.4, 0.6, " I", 1), Word(0.7, 0.9, " am", 1),
          Word(2.5, 2.8, " here", 1)]
    assert [[w.word for w in s] for s in sentences(ws)] == [[" Hi."], [" I", " am"], [" here"]]
    ws[0] = Word(0, 0.3, ' "Hi."', 1)
    assert [[w.word for w in s] for s in sentences(ws)][0] == [' "Hi."']


def test_together_false_gives_one_window_per_piece():
    pieces = [piece(i, 0.0, 3) for i in range(4)]
    assert [len(w.pieces) for w in pack(pieces, 1.0, "en", together=False)] == [1, 1, 1, 1]
