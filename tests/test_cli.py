"""The voxa command, run as a user runs it (a subprocess), on real recordings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def voxa(*args, stdin=None, cwd=None, raw=False):
    """Run the command; stdout comes back as bytes with raw=True (audio), else as text."""
    p = subprocess.run([sys.executable, "-m", "voxa.cli", *map(str, args)], input=stdin, cwd=cwd,
                       capture_output=True, env=dict(os.environ, COLUMNS="200"))
    return p.returncode, p.stdout if raw else p.stdout.decode(), p.stderr.decode()


voxa_cli = voxa  # for tests that also import the voxa package


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


# ------------------------------------------------------------------------------ voxa speak

SPEAK = "The first sentence is short. The second one, a little longer, ends here."


def duration_of(path, fmt, rate):
    from voxa import audio

    if fmt == "pcm":
        return path.stat().st_size / 2 / rate
    return audio.decode(path).size / 16000


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "aac", "pcm"])
def test_speak_every_format_decodes_with_the_right_duration(fmt, tmp_path):
    import voxa

    expected = voxa.speak(SPEAK, seed=3).duration
    target = tmp_path / f"out.{fmt}"
    rc, _, err = voxa_cli("speak", SPEAK, "-o", target, "--set", "seed=3", "-q")
    assert rc == 0, err
    assert abs(duration_of(target, fmt, 24000) - expected) < 0.08  # codec padding only


def test_speak_stdin_to_stdout_stream(tmp_path):
    rc, wav, err = voxa_cli("speak", "-o", "-", "--stream", "-f", "wav", "-v", "hibari:heart",
                            stdin=SPEAK.encode(), raw=True)
    assert rc == 0, err
    target = tmp_path / "piped.wav"
    target.write_bytes(wav)
    assert wav[:4] == b"RIFF" and 4 < duration_of(target, "wav", 24000) < 9


def test_speak_file_with_settings_and_rate(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("Reading from a file.\n\nA second paragraph.", encoding="utf-8")
    target = tmp_path / "out.flac"
    rc, _, err = voxa_cli("speak", "--file", text, "-o", target, "--speed", "1.2", "--sample-rate", "16000")
    assert rc == 0, err
    assert "wrote" in err and "16000 Hz" in err
    import av

    with av.open(str(target)) as c:
        assert c.streams.audio[0].rate == 16000


@pytest.mark.parametrize("args, message", [
    (["speak", ""], "text is empty"),
    (["speak", "hi", "-s", "stability=0.5"], "does not support the setting 'stability'"),
    (["speak", "hi", "-s", "nonsense"], "--set needs KEY=VALUE"),
    (["speak", "hi", "--voice", "hearth"], "did you mean heart"),
    (["speak", "hi", "-l", "klingon"], "no voice for language 'klingon'"),
    (["speak", "hi", "-f", "ogg-vorbis"], "unknown format 'ogg-vorbis'"),
    (["speak", "hi", "-o", "out.xyz"], "cannot tell the format"),
    (["speak", "hi", "-o", "/nonexistent-dir/x.wav"], "no such folder"),
    (["speak", "--file", "/nonexistent.txt"], "cannot read"),
    (["speak", "hi", "--speed", "9"], "speed must be between"),
])
def test_speak_errors_are_one_line(args, message, tmp_path):
    rc, out, err = voxa_cli(*args, cwd=tmp_path)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxa: error:") and message in lines[0], err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_speak_unwritable_output(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        rc, _, err = voxa_cli("speak", "hi", "-o", locked / "x.wav")
        assert rc == 2 and "not writable" in err
    finally:
        locked.chmod(0o700)


def test_speak_output_is_a_folder(tmp_path):
    rc, _, err = voxa_cli("speak", "hi", "-o", tmp_path)
    assert rc == 2 and "is a folder" in err


def test_speak_hundred_thousand_characters_in_bounded_memory(tmp_path):
    """~100k characters (about 1.5 hours of speech) streamed to mp3: peak memory stays far
    below what holding the audio would take (1.5 h at 24 kHz float32 is ~500 MB)."""

    text = tmp_path / "book.txt"
    para = ("Chapter one begins on a cold morning in 1887. The lamps were lit, the streets were "
            "quiet, and nobody expected the letter. ")
    text.write_text((para * 4 + "\n\n") * 205, encoding="utf-8")
    assert len(text.read_text()) > 100_000
    target = tmp_path / "book.mp3"
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would count the pytest parent's memory
    code = ("import sys; from voxa.cli import main; sys.argv = ['voxa', 'speak', '--file', %r, "
            "'-o', %r, '-q']\ntry: main()\nexcept SystemExit as e: "
            "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0], "
            "file=sys.stderr); raise") % (str(text), str(target))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    peak_mb = int(p.stderr.decode().split()[-1]) / 1024
    seconds = duration_of(target, "mp3", 24000)
    assert seconds > 3600
    print(f"peak RSS {peak_mb:.0f} MB, {seconds:.0f} s of audio")
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB for {seconds / 60:.0f} min of audio"


def test_voices_lists_engines(tmp_path):
    rc, out, err = voxa_cli("voices", "--json")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    ids = {r["id"] for r in rows}
    assert "hibari:heart" in ids
    heart = next(r for r in rows if r["id"] == "hibari:heart")
    assert heart["installed"] and heart["sample_rate"] == 24000 and heart["license"] == "Apache-2.0"
    assert set(heart) >= {"engine", "name", "language", "sample_rate", "license", "installed"}
    rc, out, _ = voxa_cli("voices", "-l", "en")
    assert rc == 0 and "heart" in out and "installed" in out


def test_max_duration_holds_for_transcribe_batch_and_diarize(eval_dir, tmp_path):
    """One line, a non-zero exit, and the other inputs still done."""
    import numpy as np

    from voxa import audio

    long = tmp_path / "long.flac"
    long.write_bytes(audio.encode(np.zeros(16000 * 3600, np.float32), 16000, "flac"))  # header gives no length
    jfk = eval_dir / "faster-whisper/jfk.flac"
    rc, out, err = voxa("transcribe", long, jfk, "-m", "tiny.en", "--max-duration", "60")
    assert rc == 1 and "longer than the 60 s limit" in err and "country" in out.lower()
    assert len(err.strip().splitlines()) == 2  # the file's line and the summary
    folder = tmp_path / "corpus"
    folder.mkdir()
    for f in (long, jfk):
        (folder / f.name).write_bytes(f.read_bytes())
    rc, out, err = voxa("batch", folder, "--out", tmp_path / "out", "-m", "tiny.en", "--workers", "1",
                        "--max-duration", "60", "--retries", "0", "-q")
    assert rc == 1 and "longer than the 60 s limit" in out and "1 of 2 done" in out
    rc, out, err = voxa("diarize", long, "--max-duration", "60")
    assert rc in (1, 2) and len(err.strip().splitlines()) == 1
    assert "longer than the 60 s limit" in err or "diarize" in err  # (without the extra: its one line)


def test_diarize_without_the_extra_is_one_line(tmp_path, eval_dir):
    """Without the diarize extra (simulated: its modules cannot be imported), `voxa diarize`
    prints one line and exits 2, with no traceback."""
    script = tmp_path / "run.py"
    script.write_text("import sys\n"
                      "for m in ('resemblyzer', 'torch', 'librosa', 'scipy'):\n    sys.modules[m] = None\n"
                      "from voxa.cli import main\nmain()\n")
    p = subprocess.run([sys.executable, str(script), "diarize", str(eval_dir / "faster-whisper/jfk.flac")],
                       capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "diarize" in p.stderr


def test_transcribe_language_hint_and_allowed_list(eval_dir, tmp_path):
    """--language-hint and --languages reach the engine; the JSON says how the language was chosen."""
    odd = eval_dir / "librispeech-test-other-Resemblyzer/2414-128291-0008.flac"
    rc, _, err = voxa("transcribe", odd, "--language-hint", "en", "-f", "json", "-o", tmp_path, "-q")
    assert rc == 0, err
    got = json.loads((tmp_path / "2414-128291-0008.json").read_text())
    assert got["language"] == "en" and got["language_source"] == "hint"
    rc, _, err = voxa("transcribe", odd, "--languages", "en,xx")
    assert rc != 0 and "unknown language code 'xx'" in err and len(err.strip().splitlines()) == 1, err
