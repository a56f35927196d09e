"""voxa finetune: the CTranslate2 <-> PyTorch round trip on the 60 shared LibriSpeech files, a short
real fine-tune end to end (CLI, then the model by name in `voxa models`, `voxa transcribe` and the
server), resume after kill -9, and bad data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

from voxa.finetune import data as corpus  # noqa: E402

from .conftest import librispeech  # noqa: E402

VOXA = [sys.executable, "-m", "voxa.cli"]


def speaker_manifest(eval_dir: Path, out: Path, speaker: str = "1688") -> Path:
    """One LibriSpeech speaker's 10 utterances as a .jsonl manifest, in sentence case."""
    files, refs = librispeech(eval_dir)
    with open(out, "w") as f:
        for p, ref in zip(files, refs):
            if p.stem.startswith(speaker + "-"):
                text = re.sub(r"\bi\b", "I", ref.lower())
                f.write(json.dumps({"audio": str(p), "text": text[:1].upper() + text[1:] + "."}) + "\n")
    return out


def run(*args, env=None, **kw):
    return subprocess.run([*VOXA, *map(str, args)], capture_output=True, text=True, env=env or os.environ.copy(), **kw)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
def test_the_round_trip_gives_the_same_transcripts(eval_dir, tmp_path, name):
    """CT2 -> Hugging Face PyTorch -> CT2 with no training: the same transcripts on all 60 files."""
    import voxa
    from voxa import registry
    from voxa.finetune.convert import export_ct2, load_hf, read_ct2_model

    _, base = registry.resolve(name)
    out = export_ct2(load_hf(base), base, tmp_path / "rt")
    files, _ = librispeech(eval_dir)
    before = [t.text for t in voxa.load_model(name).transcribe_many(files, language="en")]
    after = [t.text for t in voxa.load_model(str(out)).transcribe_many(files, language="en")]
    assert len(files) == 60 and before == after
    _, a = read_ct2_model(base / "model.bin")
    _, b = read_ct2_model(out / "model.bin")
    assert all((a[k] == b[k]).all() for k in a)  # every stored number comes back


@pytest.mark.slow
def test_a_short_finetune_runs_end_to_end_and_is_served_by_name(eval_dir, tmp_path):
    """A few real steps on one speaker's recordings: the model is exported, listed, and
    transcribes through the CLI and the server by its name."""
    manifest = speaker_manifest(eval_dir, tmp_path / "spk.jsonl")
    r = run("finetune", manifest, "--out", "spk1688-tiny", "--base", "whisper-tiny.en", "--max-steps", "3",
            "--batch-size", "4", "--val-fraction", "0.2", "--seed", "7", "--json", "-q", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["steps"] == 3 and report["train"] == 8 and report["validation"] == 2
    assert report["settings"]["seed"] == 7  # --seed reaches the split, LoRA's start and the Trainer
    assert 0 <= report["wer_after"] < 50 and report["base"] == "whisper-tiny.en"
    models = run("models", timeout=120)
    assert "spk1688-tiny" in models.stdout and "fine-tuned from" in models.stdout
    jfk = eval_dir / "faster-whisper" / "jfk.flac"
    said = run("transcribe", "-m", "spk1688-tiny", jfk, timeout=300)
    assert said.returncode == 0 and "ask not what your country can do for you" in said.stdout.lower(), said.stderr

    from openai import OpenAI

    from voxa.server.config import ServerConfig

    from .conftest import start_server

    url = start_server(ServerConfig(api_keys=()))
    client = OpenAI(base_url=url + "/v1", api_key="none")
    assert "spk1688-tiny" in {m.id for m in client.models.list().data}
    with open(jfk, "rb") as f:
        text = client.audio.transcriptions.create(model="spk1688-tiny", file=f).text
    assert "ask not what your country can do for you" in text.lower()


@pytest.mark.slow
def test_a_killed_finetune_resumes_from_its_last_checkpoint(eval_dir, tmp_path):
    """kill -9 after the first checkpoint; the same command again continues from it and finishes.
    The WER is measured on a validation set of the user's own (``--val``, another speaker's
    recordings): all of DATA trains."""
    from voxa.finetune.train import work_dir

    manifest = speaker_manifest(eval_dir, tmp_path / "spk.jsonl")
    val = speaker_manifest(eval_dir, tmp_path / "val.jsonl", speaker="3005")
    val.write_text("".join(val.read_text().splitlines(keepends=True)[:3]))
    args = ["finetune", manifest, "--out", "resumed-tiny", "--base", "whisper-tiny.en", "--max-steps", "6",
            "--save-steps", "2", "--batch-size", "2", "--val", val, "--json", "-q"]
    proc = subprocess.Popen([*VOXA, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    work = work_dir("resumed-tiny")
    deadline = time.time() + 600
    while not list(work.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()[-2000:]  # still training: killed mid-run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted(int(p.parent.name.split("-")[1]) for p in work.glob("checkpoint-*/trainer_state.json"))[-1]
    assert first < 6
    r = run(*args, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming from checkpoint-{first} (step {first} of 6)" in r.stderr
    report = json.loads(r.stdout)
    assert report["steps"] == 6 and report["train"] == 10 and report["validation"] == 3
    assert all(Path(h).name.startswith("3005-") for h in report["held_out"])
    assert not work.exists()  # done: checkpoints removed


def test_the_reported_wer_decodes_each_recording_alone(eval_dir):
    """The WER before and after that voxa finetune reports does not depend on which recordings are
    measured together: each is decoded on its own, as in training (packed, Whisper reads the text
    of the recording before it in the window, and that moves a short clip's words)."""
    import voxa
    from voxa.evaluate import wer
    from voxa.finetune.train import _wer

    files, refs = librispeech(eval_dir)
    short = [(p, r) for p, r in zip(files, refs) if len(r.split()) < 12][:12]
    examples = [corpus.Example(p, r) for p, r in short]
    engine = voxa.load_model("whisper-tiny.en")
    alone = [engine.transcribe(p, language="en", pack=False).text for p, _ in short]  # one call each
    assert _wer("whisper-tiny.en", examples, "en") == pytest.approx(100.0 * wer([r for _, r in short], alone))


def test_bad_data_gets_one_clear_line_and_exit_2(eval_dir, tmp_path):
    """Missing transcript, empty transcript, empty audio, manifest naming a missing file or lacking
    a column, a recording over 30 s, too few recordings, a bad model name, a validation set that is
    not one or shares recordings with the training data: each one line, exit 2, before any model
    is loaded."""
    import numpy as np
    import soundfile as sf

    files, _ = librispeech(eval_dir)

    def folder(name, setup):
        d = tmp_path / name
        d.mkdir()
        setup(d)
        return d

    def two(d, text="hello there"):
        for i in range(2):
            (d / f"u{i}.flac").write_bytes(files[i].read_bytes())
            (d / f"u{i}.txt").write_text(text)

    no_txt = folder("no_txt", lambda d: (two(d), (d / "u1.txt").unlink()))
    empty_txt = folder("empty_txt", lambda d: two(d, "  "))
    empty_audio = folder("empty_audio", lambda d: (two(d), sf.write(d / "u1.flac", np.zeros(100, np.float32), 16000)))
    long_audio = folder("long_audio", lambda d: (two(d), sf.write(d / "u1.flac", np.zeros(16000 * 40, np.float32), 16000)))
    one = folder("one", lambda d: (two(d), (d / "u1.flac").unlink(), (d / "u1.txt").unlink()))
    missing_file = tmp_path / "m.jsonl"
    missing_file.write_text(json.dumps({"audio": "nope.flac", "text": "x"}) + "\n")
    no_column = tmp_path / "m.csv"
    no_column.write_text("path,words\na.flac,hello\n")
    cases = [
        (no_txt, "without a transcript"), (empty_txt, "empty transcripts"), (empty_audio, "empty recordings"),
        (long_audio, "over 30 s"), (one, "at least 2"), (missing_file, "do not exist"),
        (no_column, "columns audio and text"), (tmp_path / "nothing", "no such file"),
    ]
    for data, message in cases:
        r = run("finetune", data, "--out", "bad", timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (data, r.stderr)
        assert lines[0].startswith("voxa: error: ")
    r = run("finetune", no_txt, "--out", "whisper-base", timeout=120)
    assert r.returncode == 2 and "bundled model's name" in r.stderr
    two_ok = folder("two_ok", two)
    r = run("finetune", two_ok, "--out", "bad", "--val", two_ok / "u0.txt", timeout=120)  # not a data set
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run("finetune", two_ok, "--out", "bad", "--val", two_ok, timeout=120)
    assert r.returncode == 2 and "both the training data and the validation set" in r.stderr, r.stderr
    r = run("finetune", two_ok, "--out", "de-tiny", "--base", "whisper-tiny.en", "--language", "de", timeout=300)
    assert r.returncode == 2 and "English only" in r.stderr.strip().splitlines()[-1], r.stderr[-500:]


def test_split_and_augment():
    """The held-out split is seeded and never empty; augmented copies stay within the window."""
    import numpy as np

    examples = [corpus.Example(Path(f"{i}.flac"), "x") for i in range(10)]
    train, val = corpus.split(examples, 0.2, seed=1)
    assert len(val) == 2 and len(train) == 8 and not {e.path for e in val} & {e.path for e in train}
    assert [e.path for e in corpus.split(examples, 0.2, seed=1)[1]] == [e.path for e in val]
    assert len(corpus.split(examples[:2], 0.1)[1]) == 1
    x = np.sin(np.arange(16000 * 3) / 10).astype(np.float32) * 0.5
    y = corpus.augment(x, np.random.default_rng(0))
    assert 0.85 * x.size < y.size < 1.15 * x.size and np.abs(y).max() <= 1.0 and not np.allclose(y[:x.size // 2],
                                                                                                 x[:x.size // 2])


def test_lora_starts_from_the_seed():
    """LoRA's starting weights come from the run's seed: the same settings give the same model
    (they were drawn before the Trainer seeded, so two runs of one command differed)."""
    import torch

    from voxa import registry
    from voxa.finetune.convert import load_hf
    from voxa.finetune.train import Settings, adapt

    _, base = registry.resolve("whisper-tiny.en")

    def lora(seed, before):
        torch.manual_seed(before)  # whatever drew random numbers before
        m = adapt(load_hf(base), Settings(freeze_encoder=True, seed=seed))
        return {k: v.clone() for k, v in m.state_dict().items() if "lora_A" in k}

    a, b, c = lora(0, before=1), lora(0, before=2), lora(1, before=1)
    assert a and a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    assert all("decoder" in k for k in a)  # encoder frozen: adapters on the decoder only
