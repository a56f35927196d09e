"""Wake words (voxa.wake): the bundled models on synthesized wake words inside real recordings,
no false accepts on real speech, streaming in any piece size, `voxa wake`, and wake-gated live
recognition (voxa.listen and WS /v1/listen?wake=...)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pymicro_wakeword")
pytest.importorskip("pyopen_wakeword")

import voxa  # noqa: E402
import voxa.wake as ww  # noqa: E402
from voxa import audio  # noqa: E402
from voxa.errors import InputError  # noqa: E402
from voxa.types import WakeDetection  # noqa: E402

LS = "librispeech-test-other-Resemblyzer"
SR = 16000


def said(text: str, voice: str) -> np.ndarray:
    s = voxa.speak(text, voice=voice)
    return audio.resample(s.audio, s.sample_rate, SR)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@pytest.fixture(scope="module")
def jarvis():
    """'Hey Jarvis.' by the two bundled neural voices."""
    pytest.importorskip("piper")
    return {v: said("Hey Jarvis.", v) for v in ("hibari:heart", "piper:joe")}


@pytest.mark.parametrize("word", ["hey_jarvis", "oww:hey_jarvis"])
def test_a_wake_word_between_real_utterances_is_found_once_at_its_time(eval_dir, jarvis, word):
    before = audio.decode(eval_dir / LS / "1688-142285-0003.flac")
    after = audio.decode(eval_dir / LS / "1688-142285-0005.flac")
    for voice, phrase in jarvis.items():
        x = np.concatenate([before, silence(0.5), phrase, silence(0.3), after])
        end = (before.size + SR // 2 + phrase.size) / SR  # where the phrase ends
        hits = ww.detect(x, [word])
        assert len(hits) == 1, (voice, hits)
        assert hits[0].word == word and hits[0].phrase == "Hey Jarvis"
        assert end - 1.0 < hits[0].time < end + 0.6, (voice, hits[0].time, end)


def test_no_false_accept_on_real_speech(eval_dir):
    """The default word on real read and meeting speech with no wake word in it."""
    files = sorted((eval_dir / LS).glob("*.flac"))[:20] + sorted((eval_dir / "pyannote-audio/ami-debug").glob("*.wav"))
    assert files
    for f in files:
        assert ww.detect(f, [ww.DEFAULT_WORD, "oww:okay_nabu"]) == [], f


def test_streaming_in_any_piece_size_gives_the_same_detections(jarvis):
    x = np.concatenate([silence(1.0), jarvis["piper:joe"], silence(3.0), jarvis["hibari:heart"], silence(1.0)])
    whole = ww.detect(x, ["hey_jarvis", "oww:hey_jarvis"])
    assert len(whole) == 4  # two phrases 3 s apart, each heard by both engines
    for piece in (160, 333, 4000):  # 10 ms, an odd size, 250 ms
        d = ww.WakeDetector(["hey_jarvis", "oww:hey_jarvis"])
        hits = []
        for i in range(0, x.size, piece):
            hits += d.push(x[i:i + piece])
        d.close()
        for word in ("hey_jarvis", "oww:hey_jarvis"):
            t = [h.time for h in hits if h.word == word]
            assert len(t) == 2 and np.allclose(t, [h.time for h in whole if h.word == word], atol=0.1), (piece, word)
    pcm = audio.to_pcm16(x)  # 16-bit PCM bytes, split inside a sample
    d = ww.WakeDetector(["hey_jarvis"])
    hits = d.push(pcm[:12345]) + d.push(pcm[12345:])
    assert len(hits) == 2


@pytest.mark.parametrize("word", ["hey_jarvis", "oww:hey_jarvis"])
def test_one_utterance_gives_one_detection_and_the_refractory_time_holds(jarvis, word):
    """A phrase keeps the probability past the cut-off for half a second or more (piper's voice
    is sampled afresh each time, so how long varies): it is still one detection, even with no
    refractory time at all."""
    for voice, phrase in jarvis.items():
        x = np.concatenate([silence(0.5), phrase, silence(0.2), phrase, silence(0.5)])
        assert len(ww.detect(x, [word])) == 1, voice  # the second comes within 2 s
        for refractory in (0.5, 0.0):
            hits = ww.detect(x, [word], refractory_s=refractory)
            assert len(hits) == 2 and hits[1].time - hits[0].time > phrase.size / SR, (voice, refractory, hits)


def test_names_and_bad_input():
    assert ww.parse("okay_nabu") == ("micro", "okay_nabu")
    assert ww.parse("oww:Okay-Nabu") == ("oww", "okay_nabu")
    assert ww.parse("hey_rhasspy") == ("oww", "hey_rhasspy")  # openWakeWord only
    assert {r["name"] for r in ww.words()} == set(ww.names()) and len(ww.names()) == 9
    for bad in ("hey_siri", "micro:hey_rhasspy", "foo:alexa", ""):
        with pytest.raises(InputError):
            ww.parse(bad)
    with pytest.raises(InputError):
        ww.WakeDetector([])
    with pytest.raises(InputError):
        ww.WakeDetector(["alexa"], threshold=1.5)
    assert ww.detect(np.zeros(0, np.float32)) == [] and ww.detect(silence(0.01)) == []


def test_voxa_wake_command(tmp_path, jarvis):
    f = tmp_path / "jarvis.wav"
    audio.write(f, np.concatenate([silence(0.5), jarvis["hibari:heart"], silence(0.5)]), SR)
    cmd = [sys.executable, "-m", "voxa.cli", "wake"]
    r = subprocess.run(cmd + [str(f), "-w", "hey_jarvis", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["detections"]
    assert [h["word"] for h in hits] == ["hey_jarvis"] and 1.0 < hits[0]["time"] < 2.5
    quiet = tmp_path / "quiet.wav"
    audio.write(quiet, silence(2.0), SR)
    r = subprocess.run(cmd + [str(quiet)], capture_output=True, text=True)
    assert r.returncode == 1 and "no wake word" in r.stdout  # nothing heard
    r = subprocess.run(cmd + [str(f), "-w", "hey_siri"], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "hey_siri" in r.stderr
    r = subprocess.run(cmd + ["--list"], capture_output=True, text=True)
    assert r.returncode == 0 and "hey_rhasspy" in r.stdout


def _commanded(eval_dir, jarvis):
    """Speech, the wake word, a command, 10 s of silence, speech again."""
    first = audio.decode(eval_dir / LS / "1688-142285-0005.flac")
    command = audio.decode(eval_dir / LS / "1688-142285-0003.flac")
    x = np.concatenate([silence(0.5), first, silence(1.0), jarvis["piper:joe"], silence(0.4), command,
                        silence(10.0), first, silence(1.0)])
    wake_end = (SR // 2 + first.size + SR + jarvis["piper:joe"].size) / SR
    return x, wake_end


def test_live_recognition_starts_at_the_wake_word_and_sleeps_after_silence(eval_dir, jarvis, tiny):
    x, wake_end = _commanded(eval_dir, jarvis)
    events = list(voxa.listen(x, "whisper-tiny.en", wake=("hey_jarvis",), interim_results=False))
    wakes = [e for e in events if isinstance(e, WakeDetection)]
    finals = [e for e in events if not isinstance(e, WakeDetection) and e.is_final and e.text]
    assert len(wakes) == 1 and abs(wakes[0].time - wake_end) < 0.8
    assert finals and all(f.start >= wakes[0].time - 0.4 for f in finals)  # stream times: nothing before it
    text = " ".join(f.text for f in finals).lower()
    assert "account of himself" in text  # the command
    assert "said" in text and text.count("account") == 1  # and not the speech before, nor after the idle time
    plain = list(voxa.listen(x, "whisper-tiny.en", interim_results=False))
    assert sum(1 for e in plain if e.is_final and e.text) > len(finals)  # without wake= all of it


def test_listen_socket_with_a_wake_word(eval_dir, jarvis, tiny):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from voxa.server.config import ServerConfig

    from .conftest import start_server
    from .test_listen import Q, finals_text, pcm16, stream, ws_url

    url = start_server(ServerConfig(api_keys=()))
    x, wake_end = _commanded(eval_dir, jarvis)
    chunks = [pcm16(x[i:i + 3200]) for i in range(0, x.size, 3200)]
    msgs, _, code, _ = stream(url, chunks, query=Q + "&wake=hey_jarvis&interim_results=false")
    wakes = [m for _, m in msgs if m["type"] == "WakeWord"]
    assert code == 1000 and len(wakes) == 1 and wakes[0]["word"] == "hey_jarvis"
    assert abs(wakes[0]["timestamp"] - wake_end) < 0.8
    text = finals_text(msgs).lower()
    assert "account of himself" in text and text.count("account") == 1
    finals = [m for _, m in msgs if m["type"] == "Results" and m["is_final"] and m["channel"]["alternatives"][0]["words"]]
    assert finals[0]["start"] >= wakes[0]["timestamp"] - 0.4
    for query, words in ((Q + "&wake=hey_siri", "hey_siri"), (Q + "&wake=alexa&wake_idle_ms=5", "wake_idle_ms")):
        with pytest.raises(InvalidStatus) as e:
            connect(ws_url(url, query))
        assert e.value.response.status_code == 400 and words in json.loads(e.value.response.body)["error"]["message"]
