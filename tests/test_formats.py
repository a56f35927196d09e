from __future__ import annotations

import json

import pytest

from voxa import formats
from voxa.errors import InputError, OutputError
from voxa.types import Segment, Transcript, Word


@pytest.fixture
def t():
    return Transcript("talk.wav", "en", 0.99, 3725.5, [
        Segment(0, 0.0, 2.5, " Hello there.", words=[Word(0.0, 0.5, " Hello", 0.9), Word(0.6, 2.5, " there.", 0.8)]),
        Segment(1, 3661.25, 3662.0, " Bye.", speaker="SPEAKER_01"),
    ])


def test_srt(t):
    assert formats.to_srt(t) == ("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
                                 "2\n01:01:01,250 --> 01:01:02,000\n[SPEAKER_01] Bye.\n")


def test_vtt(t):
    out = formats.to_vtt(t)
    assert out.startswith("WEBVTT\n")
    assert "01:01:01.250 --> 01:01:02.000\n<v SPEAKER_01>Bye." in out


def test_tsv_txt_json_rttm(t):
    assert formats.to_tsv(t).splitlines()[1:] == ["0\t2500\tHello there.", "3661250\t3662000\t[SPEAKER_01] Bye."]
    assert formats.to_txt(t) == "Hello there.\n[SPEAKER_01] Bye.\n"
    d = json.loads(formats.to_json(t))
    assert d["text"] == "Hello there. Bye." and d["segments"][0]["words"][1]["word"] == " there."
    assert formats.to_rttm(t).strip() == "SPEAKER talk 1 3661.250 0.750 <NA> <NA> SPEAKER_01 <NA> <NA>"


def test_parse():
    assert formats.parse("all") == ["txt", "srt", "vtt", "json", "tsv"]
    assert formats.parse("srt, JSON") == ["srt", "json"]
    with pytest.raises(InputError, match="unknown output format"):
        formats.parse("docx")


def test_write_is_atomic_and_checks_folder(t, tmp_path):
    paths = formats.write(t, tmp_path / "out", ["srt", "json"], "talk")
    assert [p.name for p in paths] == ["talk.srt", "talk.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["talk.json", "talk.srt"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        formats.check_dir(blocker / "sub")
