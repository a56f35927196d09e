"""Every way synthetic audio leaves voxa carries the watermark, and its payload leads to the
synthesis's audit record: the Python API, the command line, the server. Real hibari speech,
long enough (about 15 s) for a reliable read; real recordings must show no mark."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

import voxa
from voxa.safety import audit, watermark
from voxa.safety.detect import detect

from .test_cli import voxa_cli

LONG = ("Synthetic speech from voxa carries a watermark on every sample. The mark is quiet, it survives "
        "compression, and its payload points to one record of the audit log. Anyone can check a recording "
        "with the detect command, and see who made it, when, and with which voice.")
SRC = Path(voxa.__file__).parent


def _check(audio, rate, payload, origin):
    found = watermark.detect(audio, rate)
    assert found.present and found.payload == payload
    rec = audit.find(payload)
    assert rec.event == "synthesis" and rec.origin == origin and rec.voice == "hibari:heart"
    return rec


def test_python_api_outputs_are_marked():
    s = voxa.speak(LONG)
    assert s.duration > 12
    rec = _check(s.audio, s.sample_rate, s.payload, "api")
    assert rec.text_sha256 == audit.text_hash(LONG)
    chunks = list(voxa.speak_stream(LONG, sample_rate=16000))
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and len(chunks) > 1
    rec = next(r for r in audit.records(since=s.payload) if json.loads(r.detail)["id"] in ids)
    _check(np.concatenate([c.audio for c in chunks]), 16000, rec.payload, "api")
    a = asyncio.run(voxa.aspeak(LONG))
    _check(a.audio, a.sample_rate, a.payload, "api")
    assert len({s.payload, rec.payload, a.payload}) == 3


def test_command_line_outputs_are_marked(tmp_path):
    rc, _, err = voxa_cli("speak", LONG, "-o", tmp_path / "a.wav", "-q")
    assert rc == 0, err
    d = detect(tmp_path / "a.wav")
    assert d.present and d.record["origin"] == "cli" and d.record["payload"] == d.payload
    rc, mp3, err = voxa_cli("speak", LONG, "-o", "-", "--stream", "-f", "mp3", "-q", raw=True)
    assert rc == 0, err
    d2 = detect(mp3)
    assert d2.present and d2.payload > d.payload and d2.record["origin"] == "cli"
    rc, out, err = voxa_cli("watermark", "detect", tmp_path / "a.wav")
    assert rc == 0 and f"payload {d.payload}" in out and "hibari:heart" in out


def test_real_recordings_show_no_mark(eval_dir):
    for name in ("faster-whisper/jfk.flac", "aeneas/example7-de.mp3", "pyannote-audio/ami-debug/trn00.wav"):
        d = detect(eval_dir / name)
        assert not d.present and d.payload is None, name
    rc, out, err = voxa_cli("watermark", "detect", eval_dir / "faster-whisper/jfk.flac")
    assert rc == 1 and "no watermark found" in out
    rc, out, err = voxa_cli("watermark", "detect", eval_dir / "faster-whisper/jfk.flac", "--json")
    assert rc == 1 and json.loads(out)["present"] is False


def test_marks_of_every_version_are_read(eval_dir):
    """voxa writes the current scheme and still reads the ones it shipped before, each with its
    payload and its version's name; a mark of one version is not read as another."""
    x = voxa.audio.decode(eval_dir / "faster-whisper/jfk.flac")
    assert watermark.CURRENT is watermark.SCHEMES[0] and watermark.NAME == "voxa-stdm-2"
    assert len({sc.name for sc in watermark.SCHEMES}) == len(watermark.SCHEMES) >= 2
    for k, sc in enumerate(watermark.SCHEMES):
        payload = 0x5EED0000 + k
        y = watermark.embed(x, 16000, payload, sc)
        found = watermark.detect(y, 16000)
        assert found.present and found.payload == payload and found.scheme == sc.name
        others = [o for o in watermark.SCHEMES if o is not sc]
        spectra = watermark._spectra(y, 16000)
        assert not any(watermark._detect(spectra, o).present for o in others)
    assert watermark.embed(x, 16000, 7).tobytes() == watermark.embed(x, 16000, 7, watermark.CURRENT).tobytes()


def test_short_output_is_said_to_be_too_short():
    s = voxa.speak("Hi.")
    d = detect(s.audio if s.sample_rate == 16000 else voxa.audio.resample(s.audio, s.sample_rate, 16000))
    assert not d.present and "too short" in d.note


def test_server_speech_is_marked_and_disclosed(tmp_path):
    openai = pytest.importorskip("openai")
    from voxa.server.config import ServerConfig

    from .conftest import start_server

    url = start_server(ServerConfig(api_keys=("k1",)))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k1", max_retries=0)
    for fmt in ("wav", "mp3", "opus"):
        with client.audio.speech.with_streaming_response.create(model="tts-1", voice="heart", input=LONG,
                                                                response_format=fmt) as r:
            assert r.headers["x-voxa-synthetic"] == "true"
            payload = int(r.headers["x-voxa-watermark-payload"])
            r.stream_to_file(tmp_path / f"s.{fmt}")
        d = detect(tmp_path / f"s.{fmt}")
        assert d.present and d.payload == payload, fmt
        assert d.record["origin"] == "server" and d.record["actor"] == audit.key_id("k1")
    r = _post(f"{url}/v1/audio/watermark/detect", {}, {"file": ("s.mp3", (tmp_path / "s.mp3").read_bytes())})
    assert r[0] == 200 and r[1]["present"] and r[1]["record"]["seq"] == r[1]["payload"]
    r = _post(f"{url}/v1/audio/watermark/detect", {}, {"file": ("x.wav", b"not audio")})
    assert r[0] == 400 and r[1]["error"]["message"]
    r = _post(f"{url}/v1/audio/speech/clone", {"input": "Hello.", "consent_id": ""},
              {"reference": ("ref.wav", (tmp_path / "s.wav").read_bytes())})
    assert r[0] == 403 and r[1]["error"]["code"] == "consent_refused"
    last = list(audit.records(event="refusal"))[-1]
    assert last.origin == "server" and json.loads(last.detail)["reason"] == "missing"


def _post(url, fields, files, key="k1"):
    """A multipart POST with the standard library: (status, JSON body)."""
    import urllib.error
    import urllib.request
    import uuid

    b = uuid.uuid4().hex
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts += [f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
              for k, (name, data) in files.items()]
    req = urllib.request.Request(url, data=b"".join(parts) + f"--{b}--\r\n".encode(), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={b}",
                                          "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_no_synthesis_without_the_audit_log(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("VOXA_SAFETY_DB", f"sqlite:///{tmp_path}/afile/x.db")
    with pytest.raises(voxa.errors.OutputError, match="cannot open the safety database"):
        voxa.speak("Nothing leaves unaudited.")
    rc, _, err = voxa_cli("speak", "Nothing leaves unaudited.", "-o", tmp_path / "x.wav", "-q")
    assert rc != 0 and err.startswith("voxa: error: cannot open the safety database") and not (tmp_path / "x.wav").exists()


def test_only_voxa_tts_calls_an_engine():
    """The structural guarantee: the only call of an engine's ``synthesize`` outside an engine's
    own ``synthesize`` is voxa.tts's ``Voice._render``, which hands the audio straight to the
    output path (Release) it is given; ``speak``, ``stream`` and the agent's ``Live`` all use it."""
    calls = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                if isinstance(call.func, ast.Attribute) and call.func.attr == "synthesize" and fn.name != "synthesize":
                    calls.append((path.relative_to(SRC).as_posix(), fn.name))
    assert calls == [("tts/__init__.py", "_render")]
    from voxa.output import Release

    r = Release(engine="hibari", voice="hibari:heart", text="x", sample_rate=24000)
    assert audit.find(r.payload).detail and r.payload > 0  # opening a release is auditing it


def test_audioseal_without_its_weights_is_a_clear_error(monkeypatch, tmp_path):
    """AudioSeal is an opt-in engine whose weights voxa never downloads: choosing it without them
    fails before anything is logged or synthesized, and says what to provide."""
    before = audit.verify().records
    monkeypatch.setenv("VOXA_WATERMARK", "audioseal")
    monkeypatch.setenv("VOXA_AUDIOSEAL_DIR", str(tmp_path))
    with pytest.raises(voxa.errors.ModelError, match="generator.pth and detector.pth"):
        voxa.speak("Marked or not at all.")
    (tmp_path / "a.wav").write_bytes(voxa.audio.encode(np.zeros(16000, np.float32), 16000))
    rc, _, err = voxa_cli("watermark", "detect", tmp_path / "a.wav")
    assert rc == 2 and "VOXA_AUDIOSEAL_DIR" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("VOXA_WATERMARK", "nonsense")
    with pytest.raises(voxa.errors.ModelError, match="choose voxa or audioseal"):
        voxa.speak("Marked or not at all.")
    assert audit.verify().records == before


def test_detection_runs_in_bounded_memory_with_its_own_cap():
    """Ten minutes of audio: the detector used to hold every frame's spectrum (~180 MB a
    minute; 3.5 h of silence took +20 GB); now its peak allocation stays under 100 MB, and a
    longer upload is refused at its own cap while decoding."""
    import tracemalloc

    from voxa import audio as audio_io
    from voxa.errors import TooLong

    rng = np.random.default_rng(0)
    ten_min = audio_io.encode((rng.normal(0, 0.003, 16000 * 600)).astype(np.float32), 16000, "flac")
    tracemalloc.start()
    try:
        d = detect(ten_min, max_seconds=900)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not d.present and d.duration == 600.0
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
    silence = audio_io.encode(np.zeros(16000 * 7200, np.float32), 16000, "flac")  # no length in its header
    with pytest.raises(TooLong, match="600 s limit"):
        detect(silence, max_seconds=600)
    from voxa.server.config import ServerConfig

    from .conftest import start_server

    url = start_server(ServerConfig(api_keys=(), max_watermark_s=60.0))
    status, body = _post(f"{url}/v1/audio/watermark/detect", {}, {"file": ("long.flac", silence)})
    assert status == 413 and body["error"]["code"] == "audio_too_long"


def test_clone_checks_consent_before_decoding_and_caps_the_reference(tmp_path, monkeypatch):
    """A 2-hour reference (1.3 MB of FLAC) with no or unknown consent is refused without being
    decoded (it used to be decoded first: +900 MB); tracemalloc sees the whole server, which
    runs in this process."""
    import tracemalloc

    from voxa import audio as audio_io
    from voxa.server.config import ServerConfig

    from .conftest import start_server

    monkeypatch.setenv("VOXA_SAFETY_DB", f"sqlite:///{tmp_path / 'safety.db'}")
    url = start_server(ServerConfig(api_keys=()))
    reference = audio_io.encode(np.zeros(16000 * 7200, np.float32), 16000, "flac")
    tracemalloc.start()
    try:
        for consent_id in ("", "no-such-consent"):
            status, body = _post(f"{url}/v1/audio/speech/clone", {"input": "Hello.", "consent_id": consent_id},
                                 {"reference": ("ref.flac", reference)})
            assert status == 403 and body["error"]["code"] == "consent_refused"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
