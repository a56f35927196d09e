"""Speaker labels on live recognition (voxa.streaming.speakers): the ordering logic alone, then
the real models on a conversation built from shared LibriSpeech readers, through voxa.listen and
through WS /v1/listen?diarize=true as a Deepgram client sees it."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from voxa import diarization as dz
from voxa.streaming.speakers import Labeller
from voxa.types import SpeechStarted, StreamResult, Word

from .conftest import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import diarization as bench  # noqa: E402  (the conversation and the accuracy measure)


@pytest.fixture(scope="module")
def models():
    if dz.missing():
        pytest.skip(f"the diarize extra is not installed ({dz.missing()} is missing)")
    dz.ready()


def test_labeller_keeps_order_and_survives_a_failure():
    """Events leave in the order they came, finals after their labels; a labelling error still
    lets the final's words out (without speakers)."""
    out, release = [], threading.Event()

    class Slow:
        def label(self, pcm, offset, words):
            release.wait(5)
            if words[0].word.strip() == "boom":
                raise RuntimeError("model failed")
            for w in words:
                w.speaker = "SPEAKER_00"

    lab = Labeller(out.append, Slow())
    first = StreamResult(0.0, 1.0, [Word(0.1, 0.5, " hi", 0.9)], True)
    lab.final(first, np.zeros(16000, np.float32))
    lab(SpeechStarted(1.2))
    lab.final(StreamResult(1.2, 0.5, [Word(1.3, 1.4, " boom", 0.9)], True), [np.zeros(8000, np.float32)])
    assert out == []  # the SpeechStarted waits behind the final being labelled
    release.set()
    lab.close(5)
    assert [type(e).__name__ for e in out] == ["StreamResult", "SpeechStarted", "StreamResult"]
    assert out[0].words[0].speaker == "SPEAKER_00" and out[2].words[0].speaker is None


def test_listen_labels_two_readers(eval_dir, models):
    """Two LibriSpeech readers taking turns (8 turns, 79 s): every final word carries a label,
    two labels in all, and they name the right reader (one-to-one), stable across the stream."""
    import voxa

    pcm, truth = bench.conversation(eval_dir)
    words = [w for e in voxa.listen(pcm, "tiny.en", interim_results=False, diarize=True)
             if getattr(e, "is_final", False) for w in e.words]
    assert len(words) > 100 and all(w.speaker for w in words)
    assert sorted({w.speaker for w in words}) == ["SPEAKER_00", "SPEAKER_01"]
    assert words[0].speaker == "SPEAKER_00"  # named in order of appearance
    assert bench.attributed_accuracy(words, truth) > 0.95


def _stream(url: str, pcm: np.ndarray, query: str) -> tuple[list[dict], int]:
    from websockets.sync.client import connect

    msgs = []
    ws_url = url.replace("http://", "ws://") + "/v1/listen?encoding=linear16&sample_rate=16000&" + query
    with connect(ws_url, max_size=None) as ws:
        data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
        for i in range(0, len(data), 16000):
            ws.send(data[i:i + 16000])
        ws.send(json.dumps({"type": "CloseStream"}))
        for raw in ws:
            msgs.append(json.loads(raw))
    return msgs, ws.close_code


def test_listen_endpoint_words_carry_deepgram_speakers(eval_dir, models):
    """The Deepgram shape: every word of a final has an integer ``speaker``; the first reader
    is 0 and the second 1; a silent stream with diarize=true ends normally with no words; an
    unknown diarize_model is refused at the handshake."""
    pytest.importorskip("websockets")
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from voxa.server.config import ServerConfig

    url = start_server(ServerConfig(api_keys=()))
    pcm, truth = bench.conversation(eval_dir, turns=4)
    msgs, code = _stream(url, pcm, "diarize=true&model=tiny.en")
    words = [w for m in msgs if m.get("type") == "Results" and m["is_final"]
             for w in m["channel"]["alternatives"][0]["words"]]
    assert code == 1000 and len(words) > 30 and all(isinstance(w["speaker"], int) for w in words)
    first = [w["speaker"] for w in words if w["end"] <= truth[0][1]]
    second = [w["speaker"] for w in words if truth[1][0] <= w["start"] <= truth[1][1]]
    assert set(first) == {0} and set(second) == {1}, (first, second)

    msgs, code = _stream(url, np.zeros(16000 * 4, np.float32), "diarize_model=latest&model=tiny.en")
    assert code == 1000 and not any(m["channel"]["alternatives"][0]["words"] for m in msgs
                                    if m.get("type") == "Results")
    with pytest.raises(InvalidStatus) as e:
        connect(url.replace("http://", "ws://") + "/v1/listen?diarize_model=v2")
    assert e.value.response.status_code == 400 and "diarize_model" in e.value.response.body.decode()
    assert urllib.request.urlopen(f"{url}/health").status == 200
