"""The voxa command, run as a user runs it (a subprocess), on real recordings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def voxa(*args, stdin=None):
    p = subprocess.run([sys.executable, "-m", "voxa.cli", *map(str, args)], input=stdin,
                       capture_output=True, env=dict(os.environ, COLUMNS="200"))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_transcribe_prints_text(eval_dir):
    rc, out, err = voxa("transcribe", eval_dir / "faster-whisper/jfk.flac", "-m", "tiny.en")
    assert rc == 0, err
    assert "ask not what your country can do for you" in out.lower()


def test_stdin_and_srt(eval_dir):
    data = (eval_dir / "faster-whisper/jfk.flac").read_bytes()
    rc, out, err = voxa("transcribe", "-", "-m", "tiny.en", "-f", "srt", stdin=data)
    assert rc == 0, err
    assert out.startswith("1\n00:00:0") and "-->" in out


def test_all_formats_to_folder(eval_dir, tmp_path):
    rc, out, err = voxa("transcribe", eval_dir / "faster-whisper/jfk.flac", eval_dir / "pocketsphinx/goforward.wav",
                        "-m", "tiny.en", "-f", "all", "-o", tmp_path, "--word-timestamps")
    assert rc == 0, err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{s}.{e}" for s in ("jfk", "goforward") for e in ("txt", "srt", "vtt", "json", "tsv"))
    d = json.loads((tmp_path / "jfk.json").read_text())
    assert d["language"] == "en" and d["segments"][0]["words"][0]["start"] >= 0


def test_translate_from_german(eval_dir):
    rc, out, err = voxa("transcribe", eval_dir / "picovoice-leopard/test_de.wav", "--task", "translate", "-f", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["language"] == "de" and d["task"] == "translate" and d["text"]


def test_models_lists_bundled():
    rc, out, err = voxa("models")
    assert rc == 0
    assert "whisper-base" in out and "whisper-tiny.en" in out and "MIT" in out


@pytest.fixture
def bad_files(tmp_path, eval_dir):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello, not audio\n" * 20)
    data = (eval_dir / "faster-whisper/jfk.flac").read_bytes()
    (tmp_path / "trunc.flac").write_bytes(data[: len(data) // 3])
    (tmp_path / "zero.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
                                        b"\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")
    return tmp_path


@pytest.mark.parametrize("name, message", [
    ("missing.wav", "no such file"), (".", "is a directory"), ("empty.wav", "empty file"),
    ("text.wav", "not a readable audio file"), ("trunc.flac", "truncated"), ("zero.wav", "no audio"),
])
def test_bad_file_one_line_nonzero(bad_files, name, message):
    rc, out, err = voxa("transcribe", bad_files / name, "-m", "tiny.en")
    assert rc == 1
    lines = err.strip().splitlines()
    assert message in lines[0] and lines[0].startswith("voxa: error: ")
    assert lines[1:] == ["voxa: 1 of 1 inputs failed"]


@pytest.mark.parametrize("args, message", [
    (["-m", "no-such-model"], "unknown model 'no-such-model'"),
    (["--language", "xx"], "unknown language code 'xx'"),
    (["-f", "docx"], "unknown output format"),
    (["-o", "/proc/voxa-cannot-write"], "cannot create output folder"),
    (["--beam-size", "abc"], "Invalid value for '--beam-size'"),
    (["--task", "summarise"], "unknown task"),
])
def test_bad_options_one_line_exit_2(eval_dir, args, message):
    rc, out, err = voxa("transcribe", eval_dir / "pocketsphinx/goforward.wav", *args)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err


def test_one_bad_file_does_not_stop_the_others(eval_dir, bad_files):
    out_dir = bad_files / "out"
    rc, out, err = voxa("transcribe", eval_dir / "pocketsphinx/goforward.wav", bad_files / "text.wav",
                        eval_dir / "faster-whisper/jfk.flac", "-m", "tiny.en", "-o", out_dir, "-f", "txt")
    assert rc == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["goforward.txt", "jfk.txt"]
    assert "text.wav: not a readable audio file" in err and "1 of 3 inputs failed" in err
