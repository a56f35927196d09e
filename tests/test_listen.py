"""WS /v1/listen against a live server, with a real recording, and `voxa listen`.

Deepgram's protocol: query parameters, binary audio, JSON control messages, JSON results,
Metadata at the close. Bad input: refused at the handshake with an HTTP status and OpenAI's
error JSON, or (once open) an Error message or a close code with a reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from voxa import audio  # noqa: E402
from voxa.server.config import ServerConfig  # noqa: E402

from .conftest import start_server, wer  # noqa: E402

JFK = "faster-whisper/jfk.flac"
Q = "encoding=linear16&sample_rate=16000"


@pytest.fixture(scope="module")
def url():
    return start_server(ServerConfig(api_keys=()))


def ws_url(http: str, query: str = Q) -> str:
    return http.replace("http://", "ws://") + "/v1/listen?" + query


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def collect(ws) -> list[dict]:
    out = []
    try:
        for raw in ws:
            out.append(json.loads(raw))
    except ConnectionClosed:
        pass
    return out


def stream(url: str, chunks: list[bytes], pace: float = 0.0, query: str = Q, close: bool = True):
    """Send chunks (each pace seconds apart), then CloseStream; returns (messages with arrival
    times, the time the last audio went out, close code, reason)."""
    got: list[tuple[float, dict]] = []
    with connect(ws_url(url, query), max_size=None) as ws:
        t0 = time.perf_counter()

        def read():
            try:
                for raw in ws:
                    got.append((time.perf_counter() - t0, json.loads(raw)))
            except ConnectionClosed:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for c in chunks:
                ws.send(c)
                if pace:
                    time.sleep(pace)
            if close:
                ws.send(json.dumps({"type": "CloseStream"}))
        except ConnectionClosed:  # the server closed first (a limit): its code and reason are checked
            pass
        sent = time.perf_counter() - t0
        reader.join(60)
        return got, sent, ws.close_code, ws.close_reason


def finals_text(msgs) -> str:
    return " ".join(m["channel"]["alternatives"][0]["transcript"] for _, m in msgs
                    if m.get("type") == "Results" and m["is_final"]).strip()


def active_streams(url: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    return float(re.search(r"^voxa_active_streams (\S+)", text, re.M).group(1))


def test_real_time_stream_interims_finals_metadata(url, eval_dir, tiny):
    pcm = audio.decode(eval_dir / JFK)
    pcm = np.concatenate([np.zeros(8000, np.float32), pcm, np.zeros(16000, np.float32)])
    chunks = [pcm16(pcm[i:i + 1600]) for i in range(0, pcm.size, 1600)]  # 100 ms each
    msgs, sent, code, _ = stream(url, chunks, pace=0.1,
                                 query=Q + "&interim_results=true&endpointing=300&vad_events=true")
    results = [(t, m) for t, m in msgs if m["type"] == "Results"]
    interims = [(t, m) for t, m in results if not m["is_final"] and m["channel"]["alternatives"][0]["words"]]
    assert interims and interims[0][0] < sent / 2, "no interim while the audio was still arriving"
    finals = [m for _, m in results if m["is_final"]]
    assert finals and all(m["speech_final"] for m in finals)
    offline = tiny.transcribe(eval_dir / JFK).text
    assert wer([offline], [finals_text(msgs)]) < 0.15
    w = finals[0]["channel"]["alternatives"][0]["words"][0]
    assert set(w) >= {"word", "start", "end", "confidence", "punctuated_word"}
    assert any(m["type"] == "SpeechStarted" for _, m in msgs)
    assert msgs[-1][1]["type"] == "Metadata" and msgs[-1][1]["duration"] == pytest.approx(pcm.size / 16000, abs=0.05)
    assert code == 1000


def test_webm_opus_container_as_a_browser_sends_it(url, eval_dir):
    import io

    import av

    pcm = audio.decode(eval_dir / JFK)
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as c:
        st = c.add_stream("libopus", rate=48000)
        st.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            (np.clip(audio.resample(pcm, 16000, 48000), -1, 1) * 32767).astype(np.int16).reshape(1, -1),
            format="s16", layout="mono")
        frame.sample_rate = 48000
        for p in [*st.encode(frame), *st.encode(None)]:
            c.mux(p)
    data = buf.getvalue()
    msgs, _, code, _ = stream(url, [data[i:i + 4000] for i in range(0, len(data), 4000)], query="encoding=webm")
    assert "country" in finals_text(msgs).lower() and code == 1000


def test_finalize_and_keepalive(url, eval_dir):
    pcm = audio.decode(eval_dir / JFK)[: 16000 * 2]  # "And so my fellow..." cut mid-sentence
    with connect(ws_url(url, Q + "&endpointing=false"), max_size=None) as ws:
        ws.send(pcm16(pcm))
        ws.send(json.dumps({"type": "KeepAlive"}))
        ws.send(json.dumps({"type": "Finalize"}))
        msg = json.loads(ws.recv(30))
        assert msg["type"] == "Results" and msg["is_final"] and msg["from_finalize"]
        assert "fellow" in msg["channel"]["alternatives"][0]["transcript"].lower()
        ws.send(json.dumps({"type": "CloseStream"}))
        rest = collect(ws)
    assert rest[-1]["type"] == "Metadata" and ws.close_code == 1000


def test_article_client_options_are_accepted(url, eval_dir):
    """The article's StreamingASR asks for model=nova-2&smart_format=true&interim_results=true
    &endpointing=300 and sends a container; it must work by changing only the URL."""
    data = (eval_dir / JFK).read_bytes()
    msgs, _, code, _ = stream(url, [data[i:i + 8000] for i in range(0, len(data), 8000)],
                              query="model=nova-2&smart_format=true&interim_results=true&endpointing=300")
    assert "fellow americans" in finals_text(msgs).lower() and code == 1000


@pytest.mark.parametrize("query, status, words", [
    ("encoding=aiff-raw", 400, "unsupported encoding"),
    ("encoding=linear16", 400, "sample_rate is required"),
    (Q + "&sample_rate=0", 400, "sample_rate must be between"),
    (Q + "&interim_results=maybe", 400, "interim_results must be true or false"),
    (Q + "&endpointing=soon", 400, "endpointing must be an integer or false"),
    (Q + "&channels=0", 400, "channels must be between"),
    (Q + "&utterance_end_ms=-5", 400, "utterance_end_ms"),
    (Q + "&model=whisper-huge", 404, "whisper-huge"),
    (Q + "&language=de", 400, "English-only"),
    (Q + "&language=klingon", 400, "unknown language"),
])
def test_bad_handshakes_are_refused_with_a_status(url, query, status, words):
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(url, query))
    assert e.value.response.status_code == status
    err = json.loads(e.value.response.body)["error"]
    assert words in err["message"] and set(err) == {"message", "type", "param", "code"}
    assert urllib.request.urlopen(f"{url}/health").status == 200  # still serving


def test_bad_messages_on_an_open_stream(url, eval_dir):
    pcm = audio.decode(eval_dir / JFK)
    with connect(ws_url(url), max_size=None) as ws:
        ws.send("not json at all")
        err1 = json.loads(ws.recv(10))
        ws.send(json.dumps({"type": "Transcribe faster"}))
        err2 = json.loads(ws.recv(10))
        ws.send(pcm16(pcm))  # the stream goes on after both
        ws.send(json.dumps({"type": "CloseStream"}))
        rest = collect(ws)
    assert err1["type"] == "Error" and "not JSON" in err1["err_msg"]
    assert err2["type"] == "Error" and "unknown control message" in err2["err_msg"]
    assert "country" in " ".join(m["channel"]["alternatives"][0]["transcript"] for m in rest
                                 if m["type"] == "Results").lower()
    assert rest[-1]["type"] == "Metadata" and ws.close_code == 1000


def test_declared_rate_that_the_wav_header_contradicts(url, eval_dir):
    wav = audio.encode(audio.decode(eval_dir / JFK), 16000, "wav")
    msgs, _, code, reason = stream(url, [wav], query="encoding=linear16&sample_rate=44100")
    assert code == 1008 and "WAV header says 16000 Hz" in reason
    assert msgs[-1][1]["type"] == "Metadata"


def test_undecodable_container(url):
    """Undecodable audio closes with 1008, whether the decoder finds out while the audio
    arrives or only at CloseStream (it used to close with 1000 then), after the Error message
    and Metadata."""
    for junk in ([b"this is text, not audio " * 400], [b"\x1aE\xdf\xa3" + b"\x00" * 30]):
        msgs, _, code, reason = stream(url, junk, query="encoding=webm")
        assert code == 1008 and "DATA-0000" in reason, (code, reason)
        assert msgs[-1][1]["type"] == "Metadata"


def test_a_container_cannot_unpack_past_the_stream_cap(tmp_path):
    """A few KB of FLAC that decode to an hour of silence: the stream-length cap holds while
    the container is decoded, not after."""
    silence = audio.encode(np.zeros(16000 * 600, np.float32), 16000, "flac")  # 10 min
    assert len(silence) < 2_000_000
    url = start_server(ServerConfig(api_keys=(), max_stream_s=60.0))
    msgs, _, code, reason = stream(url, [silence[i:i + 65536] for i in range(0, len(silence), 65536)],
                                   query="encoding=flac")
    assert code == 1008 and "60 s limit" in reason, (code, reason)
    assert msgs[-1][1]["type"] == "Metadata" and msgs[-1][1]["duration"] <= 61


def test_oversized_message():
    url = start_server(ServerConfig(api_keys=(), max_frame_bytes=10_000))
    msgs, _, code, reason = stream(url, [b"\0" * 20_000])
    assert code == 1009 and "BIG-0000" in reason


def test_stream_length_limit_finalises_and_closes(eval_dir):
    url = start_server(ServerConfig(api_keys=(), max_stream_s=3.0))
    pcm = audio.decode(eval_dir / JFK)
    msgs, _, code, reason = stream(url, [pcm16(pcm[i:i + 16000]) for i in range(0, pcm.size, 16000)], close=False)
    assert code == 1008 and "3 s limit" in reason
    assert "fellow" in finals_text(msgs).lower()  # what was received is not lost
    assert msgs[-1][1]["type"] == "Metadata"


def test_client_that_never_closes_times_out(eval_dir):
    url = start_server(ServerConfig(api_keys=(), idle_timeout_s=1.0))
    pcm = audio.decode(eval_dir / JFK)[: 16000 * 3]
    msgs, _, code, reason = stream(url, [pcm16(pcm)], close=False)
    assert code == 1011 and "NET-0001" in reason
    assert "fellow" in finals_text(msgs).lower() and msgs[-1][1]["type"] == "Metadata"


def test_keepalive_alone_does_not_hold_a_slot(eval_dir):
    """KeepAlive resets the idle timeout, but not the no-audio cap, nor the wall-clock cap."""
    pcm = audio.decode(eval_dir / JFK)[: 16000 * 2]
    url = start_server(ServerConfig(api_keys=(), idle_timeout_s=1.0, no_audio_timeout_s=2.0))
    keepalive = json.dumps({"type": "KeepAlive"})
    msgs, _, code, reason = stream(url, [pcm16(pcm)] + [keepalive] * 30, pace=0.3, close=False)
    assert code == 1011 and "NET-0002" in reason and msgs[-1][1]["type"] == "Metadata"
    url = start_server(ServerConfig(api_keys=(), max_stream_wall_s=2.0))
    chunks = [pcm16(pcm[i:i + 1600]) for i in range(0, pcm.size, 1600)] * 3  # 6 s of audio in real time
    msgs, _, code, reason = stream(url, chunks, pace=0.1, close=False)
    assert code == 1008 and "BIG-0002" in reason and msgs[-1][1]["type"] == "Metadata"


def test_a_client_sending_faster_than_real_time_keeps_its_stream(eval_dir, tiny):
    """Four minutes of audio sent at once, with the server pinging every half second: reads
    pause while the decoder catches up (backpressure), so the client's pongs wait behind its
    audio. The stream must not be closed for "keepalive ping timeout" (it was, after 40-60 s,
    losing every result): all of it is transcribed and Metadata comes."""
    from .conftest import librispeech

    files, _ = librispeech(eval_dir)
    pcm = np.concatenate([audio.decode(f) for f in files[:25]])[: 16000 * 240]
    url = start_server(ServerConfig(api_keys=(), max_backlog_s=2.0, ws_ping_interval_s=0.5, idle_timeout_s=30.0))
    data = pcm16(pcm)
    msgs, _, code, reason = stream(url, [data[i:i + 32000] for i in range(0, len(data), 32000)])
    assert code == 1000, (code, reason)
    assert msgs[-1][1]["type"] == "Metadata" and msgs[-1][1]["duration"] == pytest.approx(pcm.size / 16000, abs=0.1)
    finals = [m for _, m in msgs if m.get("type") == "Results" and m["is_final"]]
    assert finals and finals[-1]["start"] + finals[-1]["duration"] > pcm.size / 16000 - 10


def test_stream_limit_and_disconnect_frees_the_slot(eval_dir):
    url = start_server(ServerConfig(api_keys=(), max_streams=1))
    pcm = audio.decode(eval_dir / JFK)
    with connect(ws_url(url), max_size=None) as first:
        first.send(pcm16(pcm[:32000]))
        with pytest.raises(InvalidStatus) as e:
            connect(ws_url(url))
        assert e.value.response.status_code == 429 and "too many live streams" in e.value.response.body.decode()
        assert active_streams(url) == 1
        first.socket.close()  # vanish mid-stream without a close handshake
        for _ in range(100):
            if active_streams(url) == 0:
                break
            time.sleep(0.1)
        assert active_streams(url) == 0
    with connect(ws_url(url)) as ws:  # the slot is free again
        ws.send(json.dumps({"type": "CloseStream"}))
        assert collect(ws)[-1]["type"] == "Metadata"


def test_api_key_header_token_scheme_and_subprotocol():
    url = start_server(ServerConfig(api_keys=("s3cret",)))
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(url))
    assert e.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(ws_url(url), additional_headers={"Authorization": "Bearer wrong"})
    for kw in (dict(additional_headers={"Authorization": "Bearer s3cret"}),
               dict(additional_headers={"Authorization": "Token s3cret"}),  # Deepgram's scheme
               dict(subprotocols=["token", "s3cret"])):  # what a browser can send
        with connect(ws_url(url), **kw) as ws:
            ws.send(json.dumps({"type": "CloseStream"}))
            assert collect(ws)[-1]["type"] == "Metadata"


def test_voxa_listen_command_against_the_server(url, eval_dir):
    # real time: at 4x a loaded 2-core machine sometimes decoded no interim before the end
    r = subprocess.run([sys.executable, "-m", "voxa.cli", "listen", str(eval_dir / JFK), "--url", ws_url(url, ""),
                        "--speed", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    finals = [line for line in r.stdout.splitlines() if line.startswith("final")]
    assert finals and "country" in " ".join(finals).lower()
    assert any(line.startswith("interim") for line in r.stdout.splitlines())


def test_voxa_listen_in_process_json(eval_dir):
    r = subprocess.run([sys.executable, "-m", "voxa.cli", "listen", str(eval_dir / JFK), "--speed", "0", "--json",
                        "--no-interim"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in r.stdout.splitlines()]
    assert msgs and all(m["type"] == "Results" and m["is_final"] for m in msgs)
    assert "fellow americans" in " ".join(m["channel"]["alternatives"][0]["transcript"] for m in msgs).lower()


def test_voxa_listen_errors_are_one_line(url, tmp_path):
    r = subprocess.run([sys.executable, "-m", "voxa.cli", "listen", str(tmp_path / "nope.wav")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"voxa: error: {tmp_path / 'nope.wav'}: no such file"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio" * 100)
    r = subprocess.run([sys.executable, "-m", "voxa.cli", "listen", str(junk), "--url", ws_url(url, ""),
                        "-m", "whisper-huge"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "HTTP 404" in r.stderr


def test_a_stuck_client_does_not_stall_another(url, eval_dir):
    """One client floods audio faster than real time and never reads a result; another,
    streaming normally at the same time, still gets its finals."""
    pcm = audio.decode(eval_dir / JFK)
    flood = pcm16(np.tile(pcm, 6))  # 66 s of audio, sent at once
    with connect(ws_url(url, Q + "&interim_results=true"), max_size=None) as stuck:
        sender = threading.Thread(target=lambda: [stuck.send(flood[i:i + 64000]) for i in range(0, len(flood), 64000)],
                                  daemon=True)
        sender.start()
        msgs, _, code, _ = stream(url, [pcm16(pcm[i:i + 8000]) for i in range(0, pcm.size, 8000)], pace=0.25)
        assert code == 1000 and "country" in finals_text(msgs).lower()  # (stream() waits at most 60 s)
        stuck.socket.close()


def test_endpointing_default_and_choices():
    """Without `endpointing` a stream gets voxa's default (400 ms); a client's value or `false`
    wins, and `voxa listen` sends one only when told to."""
    from voxa.cli.listen import _query
    from voxa.server.listen import parse

    config = ServerConfig(api_keys=())
    assert parse({"encoding": "linear16", "sample_rate": "16000"}, config)[1].endpointing_ms == 400
    assert parse({"encoding": "linear16", "sample_rate": "16000", "endpointing": "300"}, config)[1].endpointing_ms == 300
    assert parse({"encoding": "linear16", "sample_rate": "16000", "endpointing": "false"}, config)[1].endpointing_ms is None
    opts = dict(interim_results=True, vad_events=False, language=None, utterance_end_ms=None)
    assert "endpointing" not in _query(None, opts)
    assert _query(None, {**opts, "endpointing_ms": 300})["endpointing"] == 300
    assert _query(None, {**opts, "endpointing_ms": None})["endpointing"] == "false"
