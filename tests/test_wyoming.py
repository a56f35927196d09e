"""The Wyoming service (voxa.server.wyoming) driven by the `wyoming` package's own client, as
Home Assistant drives it: describe, transcription of real recordings (streamed transcript and
voice events), synthesis (whole and streamed, watermarked), wake words, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import numpy as np
import pytest

pytest.importorskip("wyoming")

from wyoming.asr import Transcribe  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice  # noqa: E402
from wyoming.wake import Detect  # noqa: E402

import voxa  # noqa: E402
from voxa import audio  # noqa: E402
from voxa.errors import VoxaError  # noqa: E402
from voxa.server import wyoming as wy  # noqa: E402

from .conftest import wer  # noqa: E402

LS = "librispeech-test-other-Resemblyzer"


@pytest.fixture(scope="module")
def port():
    """A Wyoming service on a free loopback port, on its own event loop thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main():
        await wy.start(wy.Settings(stream_model="tiny.en", max_stream_s=120.0), "127.0.0.1", free)
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True).start()
    assert ready.wait(30)
    return free


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 180))


async def exchange(port: int, events: list[Event], until: set[str], *, pace: float = 0.0) -> list[Event]:
    """Send ``events`` (pausing ``pace`` s between audio chunks), then read until an event of a
    type in ``until`` (or an error, or the end)."""
    got = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for e in events:
            await client.write_event(e)
            if pace and e.type == "audio-chunk":
                await asyncio.sleep(pace)
        while (e := await asyncio.wait_for(client.read_event(), 120)) is not None:
            got.append(e)
            if e.type in until or e.type == "error":
                break
    return got


def audio_events(samples: np.ndarray, rate: int = 16000, chunk: int = 1024) -> list[Event]:
    pcm = audio.to_pcm16(samples)
    return [AudioStart(rate=rate, width=2, channels=1).event()] + \
        [AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i:i + 2 * chunk]).event()
         for i in range(0, len(pcm), 2 * chunk)] + [AudioStop().event()]


def pcm_of(events: list[Event]) -> tuple[np.ndarray, int]:
    chunks = [AudioChunk.from_event(e) for e in events if e.type == "audio-chunk"]
    assert chunks and all(c.width == 2 and c.channels == 1 for c in chunks)
    return audio.from_pcm16(b"".join(c.audio for c in chunks)), chunks[0].rate


def test_describe_is_truthful(port):
    (e,) = run(exchange(port, [Describe().event()], {"info"}))
    info = Info.from_event(e)
    models = {m.name: m for m in info.asr[0].models}
    assert "whisper-tiny.en" in models and models["whisper-tiny.en"].languages == ["en"]
    assert info.asr[0].supports_transcript_streaming and info.tts[0].supports_synthesize_streaming
    voices = {v.name for v in info.tts[0].voices}
    assert "hibari:heart" in voices and all(v.installed for v in info.tts[0].voices)
    assert {m.name for m in info.wake[0].models} >= {"okay_nabu", "hey_jarvis", "hey_rhasspy"}


def test_transcribe_a_real_recording_streamed(port, eval_dir, tiny):
    f = eval_dir / "faster-whisper/jfk.flac"
    samples = audio.decode(f)
    got = run(exchange(port, [Transcribe(name="whisper-tiny.en", language="en").event()] + audio_events(samples),
                       {"transcript"}))
    kinds = [e.type for e in got]
    assert kinds[-1] == "transcript" and kinds[-2] == "transcript-stop"
    assert "transcript-start" in kinds and "transcript-chunk" in kinds and "voice-started" in kinds
    assert kinds.index("transcript-start") < kinds.index("transcript-chunk")
    text = got[-1].data["text"]
    chunks = "".join(e.data["text"] for e in got if e.type == "transcript-chunk")
    assert chunks.strip() == text
    assert wer([tiny.transcribe(f).text], [text]) < 0.15, text


def test_transcribe_at_another_rate_and_in_stereo(port, eval_dir):
    samples = audio.decode(eval_dir / LS / "1688-142285-0003.flac", sample_rate=8000)
    stereo = np.stack([samples, samples], axis=1).reshape(-1)  # interleaved L R
    pcm = audio.to_pcm16(stereo)
    events = [Transcribe().event(), AudioStart(rate=8000, width=2, channels=2).event()] + \
        [AudioChunk(rate=8000, width=2, channels=2, audio=pcm[i:i + 4000]).event() for i in range(0, len(pcm), 4000)] + \
        [AudioStop().event()]
    got = run(exchange(port, events, {"transcript"}))
    assert "account of himself" in got[-1].data["text"].lower()


def test_synthesize_whole_and_watermarked(port, tiny):
    from voxa.safety import watermark

    text = "The kitchen lights are on. It is twenty degrees."
    got = run(exchange(port, [Synthesize(text=text, voice=SynthesizeVoice(name="hibari:heart")).event()],
                       {"audio-stop"}))
    assert [e.type for e in got][0] == "audio-start" and got[-1].type == "audio-stop"
    samples, rate = pcm_of(got)
    assert rate == 24000 and samples.size > rate
    heard = tiny.transcribe(audio.resample(samples, rate, 16000)).text
    assert wer([text], [heard]) < 0.2, heard
    assert watermark.detect(samples, rate).present


def test_synthesize_streamed_sentence_by_sentence(port, tiny):
    pieces = ["The weather to", "day is sunny. To", "morrow it will r", "ain. Take an umbrella", "."]
    events = [SynthesizeStart(voice=SynthesizeVoice(name="hibari:heart")).event()] + \
        [SynthesizeChunk(text=p).event() for p in pieces] + \
        [Synthesize(text="".join(pieces)).event(), SynthesizeStop().event()]  # the whole text is ignored
    got = run(exchange(port, events, {"synthesize-stopped"}))
    kinds = [e.type for e in got]
    assert kinds[-1] == "synthesize-stopped"
    assert kinds.count("audio-start") == kinds.count("audio-stop") == 3  # one per sentence, none twice
    samples, rate = pcm_of(got)
    heard = tiny.transcribe(audio.resample(samples, rate, 16000)).text
    assert wer(["The weather today is sunny. Tomorrow it will rain. Take an umbrella."], [heard]) < 0.25, heard


def test_wake_word_detection(port, eval_dir):
    s = voxa.speak("Hey Jarvis.", voice="hibari:heart")
    before = audio.decode(eval_dir / LS / "1688-142285-0005.flac")
    x = np.concatenate([before, np.zeros(8000, np.float32), audio.resample(s.audio, s.sample_rate, 16000),
                        np.zeros(8000, np.float32)])
    got = run(exchange(port, [Detect(names=["hey_jarvis"]).event()] + audio_events(x), {"detection", "not-detected"}))
    assert got[-1].type == "detection" and got[-1].data["name"] == "hey_jarvis"
    assert abs(got[-1].data["timestamp"] / 1000 - (before.size + 8000 + s.audio.size * 16000 / s.sample_rate) / 16000) < 1.0
    got = run(exchange(port, [Detect(names=["hey_jarvis"]).event()] + audio_events(before), {"detection", "not-detected"}))
    assert got[-1].type == "not-detected"


@pytest.mark.parametrize("events,words", [
    ([AudioStart(rate=16000, width=4, channels=1).event()], "before transcribe"),
    ([Transcribe().event(), AudioStart(rate=16000, width=4, channels=1).event()], "16-bit"),
    ([Transcribe(name="whisper-tiny.en", language="de").event(), AudioStart(rate=16000, width=2, channels=1).event()],
     "English-only"),
    ([Detect(names=["hey_siri"]).event(), AudioStart(rate=16000, width=2, channels=1).event()], "hey_siri"),
    ([Synthesize(text="Hi.", voice=SynthesizeVoice(name="hibari:fable")).event()], "not installed"),
    ([SynthesizeChunk(text="hello").event()], "before synthesize-start"),
    ([Synthesize(text="x" * 20_001).event()], "20000"),
])
def test_bad_requests_get_an_error_and_the_connection_goes_on(port, events, words):
    got = run(exchange(port, events + [Event(type="no-such-event"), Describe().event()], {"info"}))
    errors = [e for e in got if e.type == "error"]
    assert errors and words in errors[0].data["text"], errors
    assert run(exchange(port, [Describe().event()], {"info"}))[-1].type == "info"  # still serving


def test_malformed_and_oversized_events_close_only_that_connection(port):
    async def raw(data: bytes) -> list[dict]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        lines = []
        while line := await asyncio.wait_for(reader.readline(), 30):
            lines.append(json.loads(line))
            if lines[-1].get("data_length"):
                lines[-1]["data"] = json.loads(await reader.readexactly(lines[-1]["data_length"]))
        writer.close()
        return lines

    for data in (b"not json\n", b'{"type": "audio-chunk", "payload_length": 50000000}\n', b'[1, 2]\n',
                 b'{"type": "describe", "data_length": -3}\n', b"x" * 70000 + b"\n"):
        answer = run(raw(data))
        assert answer and answer[-1]["type"] == "error", (data[:40], answer)
    assert run(exchange(port, [Describe().event()], {"info"}))[-1].type == "info"


def test_bind_rules_and_addresses():
    wy.check_bind("127.0.0.1", ())
    with pytest.raises(VoxaError, match="wyoming-allow"):
        wy.check_bind("0.0.0.0", ())
    wy.check_bind("0.0.0.0", ("192.168.1.0/24",))
    with pytest.raises(VoxaError):
        wy.check_bind("0.0.0.0", ("not-an-address",))
    assert wy.allowed("127.0.0.1", ()) and wy.allowed("::1", ())
    assert wy.allowed("192.168.1.7", ("192.168.1.0/24",)) and not wy.allowed("10.0.0.1", ("192.168.1.0/24",))
    assert wy.allowed("10.0.0.1", ("*",)) and not wy.allowed("10.0.0.1", ())
    assert wy.parse_address("10300") == ("127.0.0.1", 10300)
    assert wy.parse_address("tcp://0.0.0.0:10300") == ("0.0.0.0", 10300)
    with pytest.raises(VoxaError):
        wy.parse_address("host:port")


def test_voxa_serve_with_wyoming_shares_the_http_servers_decoder(eval_dir):
    """`voxa serve --wyoming PORT`: the HTTP server and Wyoming in one process, Wyoming's live
    transcriptions decoded by the HTTP server's scheduler (its metrics count them)."""
    import re
    import urllib.request

    from voxa.server.config import ServerConfig

    from .conftest import start_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    url = start_server(ServerConfig(api_keys=(), wyoming=f"127.0.0.1:{free}"))
    samples = audio.decode(eval_dir / LS / "1688-142285-0003.flac")
    got = run(exchange(free, [Transcribe().event()] + audio_events(samples), {"transcript"}))
    assert "account of himself" in got[-1].data["text"].lower()
    metrics = urllib.request.urlopen(url + "/metrics").read().decode()
    decoded = re.search(r'^voxa_audio_seconds_total\{kind="stream_decode"\} (\S+)', metrics, re.M)
    assert decoded and float(decoded.group(1)) > 3.0, metrics[:2000]
