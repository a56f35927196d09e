"""Batch transcription (voxa batch): inputs, the job store, resuming after kill -9, corrupt
files, and the Ray path on a local Ray instance, all with the real tiny.en on LibriSpeech."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from voxa.batch.inputs import expand
from voxa.errors import InputError

from .test_cli import voxa_cli

LS = "librispeech-test-other-Resemblyzer"


@pytest.fixture(scope="module")
def corpus(eval_dir, tmp_path_factory):
    """24 LibriSpeech files in two folders, and one corrupt file."""
    root = tmp_path_factory.mktemp("corpus")
    files = sorted((eval_dir / LS).glob("*.flac"))[:24]
    for n, f in enumerate(files):
        (root / ("a" if n < 12 else "b")).mkdir(exist_ok=True)
        shutil.copy(f, root / ("a" if n < 12 else "b") / f.name)
    (root / "b" / "broken.wav").write_bytes(b"RIFF not really a wave file" * 10)
    return root


def _outputs(d):
    return {p.relative_to(d).as_posix(): p.read_text() for p in sorted(d.rglob("*.txt"))}


def _states(out):
    with sqlite3.connect(out / ".voxa-batch.db") as c:
        return c.execute("SELECT state, attempts, path FROM voxa_batch_jobs").fetchall()


# ------------------------------------------------------------------------------ inputs
def test_inputs_from_folders_globs_and_manifests(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "talk.wav").write_bytes(b"")
    (tmp_path / "x" / "talk.mp3").write_bytes(b"")
    (tmp_path / "x" / "notes.txt").write_text("not audio")
    got = expand(str(tmp_path))
    assert [s for _, s in got] == ["x/talk.mp3", "x/talk.wav", "y/talk"]  # a clash keeps the extension
    assert [s for _, s in expand(str(tmp_path / "*" / "*.wav"))] == ["x/talk", "y/talk"]
    (tmp_path / "m.txt").write_text(f"# corpus\nx/talk.wav\nfile://{tmp_path}/y/talk.wav\n")
    (tmp_path / "m.csv").write_text("speaker,path\nA,x/talk.wav\nB,y/talk.wav\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "x/talk.wav"}) + "\n" + json.dumps({"path": "y/talk.wav"}) + "\n")
    for m in ("m.txt", "m.csv", "m.jsonl"):
        assert [p.name for p, _ in expand(str(tmp_path / m))] == ["talk.wav", "talk.wav"], m
    (tmp_path / "y" / "again.wav").symlink_to(tmp_path / "x" / "talk.wav")  # a link is an input of its own
    assert [s for _, s in expand(str(tmp_path / "y"))] == ["again", "talk"]
    for bad, msg in ((tmp_path / "nothing-here", "no such folder"), ("https://example.com/a.wav", "only local files")):
        if isinstance(bad, str):
            (tmp_path / "u.txt").write_text(bad + "\n")
            bad = tmp_path / "u.txt"
        with pytest.raises(InputError, match=msg):
            expand(str(bad))


# ------------------------------------------------------------------------------ running
@pytest.fixture(scope="module")
def clean_run(corpus, tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("clean")
    rc, stdout, err = voxa_cli("batch", corpus, "--out", out, "-m", "tiny.en", "--group-size", "4", "-q")
    assert rc == 1, err  # the corrupt file fails; everything else is done
    return out, stdout


def test_corrupt_files_are_recorded_and_do_not_stop_the_batch(clean_run):
    out, stdout = clean_run
    assert "24 of 25 done, 1 failed" in stdout and "broken.wav: not a readable audio file" in stdout
    assert len(_outputs(out)) == 24 and "iron" in _outputs(out)["a/1688-142285-0000.txt"].lower()
    rc, status, _ = voxa_cli("batch", "status", out, "--json")
    s = json.loads(status)
    assert rc == 0 and s["done"] == 24 and s["failed"] == 1 and s["failures"][0]["attempts"] == 1
    assert 0.03 < s["audio_hours_done"] < 0.1  # about 169 s of speech


def test_resume_after_kill_9_equals_a_clean_run(corpus, clean_run, tmp_path):
    """kill -9 mid-run, run the same command again: the same transcripts as an uninterrupted run,
    no file done twice, no half-written file left."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "voxa.cli", "batch", str(corpus), "--out", str(out), "-m", "tiny.en",
           "--group-size", "4", "-q"]
    p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            done = sum(1 for s, _, _ in _states(out) if s == "done")
        except sqlite3.Error:
            continue
        if done >= 8:
            break
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    first = _states(out)
    assert 8 <= sum(1 for s, _, _ in first if s == "done") < 24, "the kill came too late to test resuming"
    rc, _, err = voxa_cli(*cmd[3:])
    assert rc == 1, err
    assert _outputs(out) == _outputs(clean_run[0])
    assert not list(out.rglob("*.tmp-*"))
    done = [(a, path) for s, a, path in _states(out) if s == "done"]
    assert len(done) == 24 and all(a == 1 for a, _ in done)  # each finished exactly once


def test_rerun_retries_failures_a_bounded_number_of_times(clean_run, corpus):
    out, _ = clean_run
    for attempts in (2, 3, 3):
        rc, stdout, _ = voxa_cli("batch", corpus, "--out", out, "-m", "tiny.en", "--group-size", "4", "-q",
                                 "--retries", "2")
        assert rc == 1 and "24 of 25 done" in stdout and f"failed ({attempts}x)" in stdout
    rc, _, err = voxa_cli("batch", corpus, "--out", out, "-m", "base", "-q")
    assert rc == 2 and "other settings" in err and len(err.strip().splitlines()) == 1


def test_ray_path_gives_the_local_results(corpus, clean_run, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    out = tmp_path / "ray"
    rc, stdout, err = voxa_cli("batch", corpus, "--out", out, "-m", "tiny.en", "--group-size", "4", "-q",
                               "--ray", "auto", "--workers", str(min(os.cpu_count() or 1, 4)))  # the clean run's
    # split: one thread per worker (CTranslate2's results can differ with its thread count)
    assert rc == 1 and "24 of 25 done" in stdout, err
    assert _outputs(out) == _outputs(clean_run[0])


def test_diarized_batch_writes_speakers_and_rttm(eval_dir, tmp_path, tiny):
    pytest.importorskip("resemblyzer", reason="the diarize extra is not installed")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(eval_dir / "pyannote-audio/ami-debug/trn03.wav", src)
    rc, stdout, err = voxa_cli("batch", src, "--out", tmp_path / "out", "-m", "tiny.en", "--diarize",
                               "--max-speakers", "3", "-f", "srt", "-q")
    assert rc == 0, err
    assert "[SPEAKER_0" in (tmp_path / "out" / "trn03.srt").read_text()
    rows = (tmp_path / "out" / "trn03.rttm").read_text().splitlines()
    assert rows and all(r.startswith("SPEAKER trn03 1 ") for r in rows)
    rc, _, err = voxa_cli("batch", src, "--out", tmp_path / "o2", "--num-speakers", "2")
    assert rc == 2 and "need --diarize" in err


def test_a_lost_worker_retries_its_group_within_the_attempts(tmp_path, monkeypatch):
    """The driver's retry rule, with a stand-in executor whose first call for one group dies: the
    group is tried again in the same run; a group that always dies stops at max_attempts."""
    import voxa.batch as b
    from voxa.batch import pool as P
    from voxa.batch.work import Outcome
    from voxa.types import Transcript

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (src / name).write_bytes(b"")
    calls = []

    class Flaky:
        def __init__(self, *a):
            pass

        def submit(self, paths, options, speakers):
            calls.append(tuple(paths))
            return tuple(paths), len(calls)

        def wait(self, handles):
            return handles[:1]

        def result(self, handle):
            paths, n = handle
            if "c.wav" in paths[0] or n == 1:  # c always dies; the first call dies once
                raise P.WorkerLost("a worker process died")
            return [Outcome(p, Transcript(p, "en", 1.0, 1.5), None) for p in paths]

        def close(self):
            pass

    monkeypatch.setattr(b, "LocalPool", Flaky)
    s = b.run(str(src), tmp_path / "out", model="tiny.en", workers=1, group_size=1, max_attempts=3)
    assert s["done"] == 2 and s["failed"] == 1 and s["failures"][0]["attempts"] == 3
    assert "worker process died" in s["failures"][0]["error"]
    assert calls.count((str(src / "a.wav"),)) == 2 and calls.count((str(src / "c.wav"),)) == 3
    assert sorted(p.name for p in (tmp_path / "out").glob("*.txt")) == ["a.txt", "b.txt"]
