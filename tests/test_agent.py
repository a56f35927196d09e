"""The voice agent end to end over WS /v1/agent with every model real (tiny.en streaming,
Silero + smart-turn, the bundled SmolLM2 through llama.cpp, hibari), recordings from
../shared/eval played by ``voxa talk``'s client; the OpenAI-compatible endpoint path with tools
against a small server the test starts; barge-in; the session limit and teardown; config,
memory and tool-loading logic."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import pytest

pytest.importorskip("pipecat")
websockets = pytest.importorskip("websockets")

from voxa.agent import AgentConfig, LLMConfig, load_config  # noqa: E402
from voxa.errors import InputError  # noqa: E402
from voxa.server.config import ServerConfig  # noqa: E402

from .conftest import fake_llm, start_server, wer  # noqa: E402

LS = "librispeech-test-clean-KennethWang1221"


def ws(url: str, query: str = "") -> str:
    return url.replace("http://", "ws://") + "/v1/agent" + query


def talk(url, files, **kw):
    from voxa.agent.talk import talk as run

    return asyncio.run(run(ws(url), [str(f) for f in files], **kw))


def connect_when_free(url: str, tries: int = 100):
    """A session on the one-slot agent: the slot of the previous test's session comes back
    once the server has torn that session down, which takes a moment after the client left."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for _ in range(tries):
        try:
            return connect(url, open_timeout=30)
        except InvalidStatus as e:
            if e.response.status_code != 429:
                raise
            time.sleep(0.1)
    pytest.fail("the session slot was never freed")


@pytest.fixture(scope="module")
def local_agent():
    return start_server(ServerConfig(api_keys=(), agent=AgentConfig(max_sessions=1)))


# --------------------------------------------------------------------------- real models
@pytest.mark.slow
def test_a_conversation_with_the_local_agent(local_agent, eval_dir):
    from voxa.safety import audit, watermark

    ref = (eval_dir / LS / "1089-134686.trans.txt").read_text().splitlines()[0].split(" ", 1)[1]
    session = talk(local_agent, [eval_dir / LS / "1089-134686-0000.flac"])
    # the default greeting says it is an AI, and it is watermarked like every voxa output
    assert "AI" in session.greeting
    found = watermark.detect(session.greeting_audio, session.sample_rate)
    assert found.present, found
    record = audit.find(found.payload)
    assert record is not None and record.origin == "agent"
    # the turn: heard close to the reference, answered with audio, timed stage by stage
    (turn,) = session.turns
    assert wer([ref], [turn.transcript]) < 0.25, turn.transcript
    assert turn.answer and turn.bot_audio is not None and turn.bot_audio.size > session.sample_rate // 2
    lat = turn.latency
    assert lat and all(lat[k] is not None for k in ("turn_decided_ms", "asr_final_ms", "llm_first_token_ms",
                                                      "tts_first_audio_ms", "voice_to_voice_ms"))
    assert lat["turn_decided_ms"] <= lat["llm_first_token_ms"] <= lat["tts_first_audio_ms"] <= lat["voice_to_voice_ms"]
    # the answer's text was logged when the answer ended
    texts = [r for r in audit.records(event="synthesis-text") if r.origin == "agent"]
    assert texts
    # and the server's /metrics has the turn
    import urllib.request

    body = urllib.request.urlopen(local_agent + "/metrics").read().decode()
    assert 'voxa_agent_latency_seconds_count{stage="voice_to_voice"}' in body


@pytest.mark.slow
def test_session_limit_and_teardown(local_agent, eval_dir):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with connect_when_free(ws(local_agent)) as first:
        assert json.loads(first.recv(timeout=60))["type"] == "session"
        with pytest.raises(InvalidStatus) as refused:
            connect(ws(local_agent), open_timeout=30)
        assert refused.value.response.status_code == 429
        assert b"busy" in refused.value.response.body
    # the slot comes back once the client has gone, and the recogniser leaves the scheduler
    with connect_when_free(ws(local_agent)) as again:
        assert json.loads(again.recv(timeout=60))["type"] == "session"


@pytest.mark.slow
def test_bad_input_on_the_agent_socket(local_agent):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as bad:
        connect(ws(local_agent, "?sample_rate=7"))
    assert bad.value.response.status_code == 400
    with connect_when_free(ws(local_agent)) as c:
        assert json.loads(c.recv(timeout=60))["type"] == "session"
        c.send(b"\x00\x01\x02")  # half a sample
        c.send("not json")
        c.send(json.dumps({"type": "dance"}))
        errors = []
        deadline = time.time() + 30
        while len(errors) < 3 and time.time() < deadline:
            msg = c.recv(timeout=30)
            if isinstance(msg, str) and json.loads(msg)["type"] == "error":
                errors.append(json.loads(msg)["message"])
        assert len(errors) == 3, errors
        assert "16-bit" in errors[0] and "JSON" in errors[1] and "dance" in errors[2]
        c.send(np.zeros(320, "<i2").tobytes())  # and the session still takes audio


@pytest.mark.slow
def test_audio_flood_is_read_at_real_time_pace(local_agent):
    """25 s of audio sent at once is read no faster than real time plus 10 s (the socket is not
    read meanwhile), so the pipeline's queues stay bounded; a message after it waits as long."""
    from voxa.agent.wire import MAX_AHEAD_S

    with connect_when_free(ws(local_agent)) as c:
        assert json.loads(c.recv(timeout=60))["type"] == "session"
        t0 = time.monotonic()
        for _ in range(25):
            c.send(np.zeros(16000, "<i2").tobytes())  # 1 s
        c.send(json.dumps({"type": "dance"}))
        while True:
            msg = c.recv(timeout=60)
            if isinstance(msg, str) and json.loads(msg)["type"] == "error":
                break
        took = time.monotonic() - t0
    assert took >= 25 - MAX_AHEAD_S - 1.0, took


# --------------------------------------------------------------------------- an OpenAI-compatible endpoint
def _fake_llm(answer: str | None = None):
    """An OpenAI-compatible chat server (conftest.fake_llm): asks for get_current_time, then answers
    with its result; or, given ``answer``, says that (a few words per chunk) to every request."""
    def script(body):
        if answer is not None:
            return answer
        tool = next((m for m in body["messages"] if m.get("role") == "tool"), None)
        if tool is None:
            return {"name": "get_current_time", "arguments": {"timezone": "UTC"}}
        return f"It is {json.loads(tool['content'])['time']} in UTC. Anything else?"

    return fake_llm(script)


@pytest.mark.slow
def test_openai_compatible_endpoint_with_a_tool(eval_dir):
    base_url, seen = _fake_llm()
    cfg = AgentConfig(greeting="", llm=LLMConfig(base_url=base_url, model="fake"))
    url = start_server(ServerConfig(api_keys=(), agent=cfg))
    session = talk(url, [eval_dir / LS / "1089-134686-0000.flac"])
    (turn,) = session.turns
    # the endpoint saw the system prompt, the user's words and the declared tools
    first = seen[0]
    assert first["model"] == "fake"
    assert first["messages"][0]["role"] == "system"
    assert "stew" in json.dumps(first["messages"]).lower()
    assert {t["function"]["name"] for t in first["tools"]} == {"get_current_time", "end_call"}
    # the tool ran in voxa and its result went back; the answer uses it and was spoken
    assert any(m.get("role") == "tool" for m in seen[-1]["messages"])
    assert "in UTC" in turn.answer and turn.bot_audio.size > 0


@pytest.mark.slow
def test_barge_in_stops_the_bot_and_its_memory_keeps_only_what_it_said(eval_dir):
    """The bot starts a twelve-sentence answer (from an OpenAI-compatible server, so that it is
    surely long: the bundled model's answers vary); the user cuts in 1 s later. The bot's audio
    stops while the user is still talking, and the next request to the LLM carries the bot's
    turn as far as it was heard, not the text it was given. The unit
    is the sentence: Pipecat passes a sentence to the memory once its audio has played, so a
    sentence cut off in the middle is not remembered (these are short, about 1 s each)."""
    sentences = [f"The stew was {w}." for w in
                 ("hot", "thick", "brown", "salty", "rich", "spicy", "fresh", "mild", "sweet", "dark", "good", "done")]
    base_url, seen = _fake_llm(" ".join(sentences))
    url = start_server(ServerConfig(api_keys=(), agent=AgentConfig(greeting="", llm=LLMConfig(
        base_url=base_url, model="fake"))))
    # "He could wait no longer." (2 s), then, 1 s into the answer, a 5 s sentence
    session = talk(url, [eval_dir / LS / "1089-134691-0000.flac", eval_dir / LS / "1089-134691-0001.flac"],
                   barge_in=1.0)
    first = session.turns[0]
    assert first.interrupted, session.events
    # from the onset of the speech (where its loudness rises; Silero hears it a little earlier),
    # of which the rule itself needs 0.5 s
    assert first.barge_in_stop_ms is not None and 0 < first.barge_in_stop_ms < 2000
    # the last request (after the interrupting speech); its first assistant message is the answer
    # that was cut off
    history = [m for m in seen[-1]["messages"] if m["role"] == "assistant"]
    assert history, seen[-1]["messages"]
    said = history[0]["content"]
    assert sentences[0] in said  # what was spoken is remembered
    assert sentences[-1] not in said and len(said) < len(" ".join(sentences)) / 2, said


@pytest.mark.slow
def test_an_agent_with_a_wake_word_answers_only_after_it(eval_dir, tmp_path):
    """Speech with no wake word gets no answer (nothing is even transcribed); "Hey Jarvis"
    (said by the bundled voice) and then the question gets one."""
    import voxa
    from voxa import audio

    pytest.importorskip("pymicro_wakeword")
    base_url, seen = _fake_llm("It is noon.")
    url = start_server(ServerConfig(api_keys=(), agent=AgentConfig(
        greeting="", wake_word="hey_jarvis", llm=LLMConfig(base_url=base_url, model="fake"))))
    s = voxa.speak("Hey Jarvis.", voice="hibari:heart")
    wake = audio.resample(s.audio, s.sample_rate, 16000)
    question = audio.decode(eval_dir / LS / "1089-134691-0000.flac")  # "He could wait no longer."
    audio.write(tmp_path / "plain.wav", question, 16000)
    audio.write(tmp_path / "woken.wav", np.concatenate([wake, np.zeros(6400, np.float32), question]), 16000)
    session = talk(url, [tmp_path / "plain.wav", tmp_path / "woken.wav"], turn_timeout=8.0)
    plain, woken = session.turns
    assert not plain.transcript and not plain.answer and plain.latency is None
    assert "wait no longer" in woken.transcript.lower() and "noon" in woken.answer.lower()
    assert len(seen) == 1  # the LLM was asked once, after the wake word


# --------------------------------------------------------------------------- logic
def test_config_from_toml_env_and_errors(tmp_path, monkeypatch):
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\ngreeting = "Hi, I am an AI."\nmax_sessions = 2\n'
                    '[agent.llm]\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\n[agent.turn]\nthreshold = 0.7\n')
    monkeypatch.setenv("VOXA_AGENT_MAX_SESSIONS", "3")
    cfg = load_config(path)
    assert cfg.greeting == "Hi, I am an AI." and cfg.max_sessions == 3
    assert cfg.llm.base_url.endswith("/v1") and cfg.turn.threshold == 0.7
    path.write_text("[agent]\ncolour = 'blue'\n")
    with pytest.raises(InputError, match="unknown setting"):
        load_config(path)
    path.write_text("[agent\n")
    with pytest.raises(InputError, match="TOML"):
        load_config(path)
    with pytest.raises(InputError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    monkeypatch.setenv("VOXA_AGENT_MAX_SESSIONS", "many")
    with pytest.raises(InputError, match="VOXA_AGENT_MAX_SESSIONS"):
        load_config()


def test_tools_module_loading(tmp_path):
    from voxa.agent import tools

    assert [t.__name__ for t in tools.load("voxa.agent.example_tools")] == ["get_current_time", "end_call"]
    assert tools.load(None) == []
    with pytest.raises(InputError, match="cannot import"):
        tools.load("no_such_module_here")
    bad = tmp_path / "bad.py"
    bad.write_text("TOOLS = 3\n")
    with pytest.raises(InputError, match="TOOLS"):
        tools.load(str(bad))


@pytest.mark.slow
def test_the_bundled_llm_runs_on_ctranslate2_from_its_gguf():
    """The default runtime without llama.cpp: the GGUF becomes an int8 CTranslate2 model once
    (cached), the tokenizer rebuilt from the GGUF reads ChatML's special tokens whole, answers
    stream and stop when asked, and the answer to a plain question is right."""
    import threading

    from voxa.agent import llm
    from voxa.agent.config import SYSTEM_PROMPT
    from voxa.agent.ct2llm import CT2Model, chatml, converted_dir

    config = LLMConfig(runtime="ct2")
    model = llm.local_model(config)
    assert isinstance(model, CT2Model) and model.name == "smollm2-135m-instruct"
    assert llm.local_model(config) is model  # one per process
    assert (converted_dir(llm.bundled_gguf()) / "model.bin").is_file()
    assert llm.context_tokens(config) == 600
    text = chatml([{"role": "user", "content": "Hi"}])
    assert model.encode("<|im_start|>") == [1] and text.endswith("<|im_start|>assistant\n")
    ask = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "What is the capital of France?"}]
    answer = "".join(model.stream(ask, temperature=0.0, max_tokens=40, stop=threading.Event()))
    assert "Paris" in answer and "<|im_end|>" not in answer
    stop, pieces = threading.Event(), []
    for piece in model.stream([{"role": "user", "content": "Tell me a long story about a dragon."}],
                              temperature=0.0, max_tokens=100, stop=stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()  # an interruption: the generation ends at the next token
    assert len(pieces) == 3


def test_the_llm_runtime_setting():
    import importlib.util

    from voxa.agent import llm
    from voxa.errors import InputError, ModelError

    with pytest.raises(InputError, match="runtime must be one of"):
        llm.runtime(LLMConfig(runtime="onnx"))
    assert llm.runtime(LLMConfig(runtime="auto")) == ("llama.cpp" if importlib.util.find_spec("llama_cpp") else "ct2")
    if importlib.util.find_spec("llama_cpp") is None:
        with pytest.raises(ModelError, match=r"voxa\[llama\]"):
            llm.local_model(LLMConfig(runtime="llama.cpp"))


def test_memory_keeps_the_system_prompt_and_the_latest_turns():
    from voxa.agent.llm import trim

    count = lambda text: len(text.split())  # noqa: E731
    msgs = [{"role": "system", "content": "be brief"}]
    for n in range(50):
        msgs += [{"role": "user", "content": f"question {n} " * 10}, {"role": "assistant", "content": f"answer {n} " * 10}]
    msgs.append({"role": "user", "content": "last one"})
    kept, dropped = trim(msgs, 300, count)
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "last one"
    assert kept[1]["role"] == "user"  # starts at a user turn
    assert sum(count(m["content"]) + 4 for m in kept) <= 300 * 0.6  # trimmed in a step, below the budget
    assert len(kept) < len(msgs)
    # the next turns keep the same start (llama.cpp's cached prefix stays valid) until the budget is hit again
    more = msgs + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}]
    again, dropped2 = trim(more, 300, count, dropped=dropped)
    assert dropped2 == dropped and again[1] == kept[1]
    # under budget nothing is dropped
    short = msgs[:1] + msgs[-3:]
    assert trim(short, 300, count) == (short, 0)


@pytest.mark.slow
def test_the_first_piece_of_an_answer_ends_at_a_clause():
    """The TTS starts on a short clause; the rest of the answer goes by whole sentences; an
    abbreviation or a thousands separator does not split; each answer starts afresh."""
    from voxa.agent.tts import FirstClauseAggregator

    agg = FirstClauseAggregator()

    async def answer(text):
        out = []
        for i in range(0, len(text), 3):  # as an LLM streams it, a few characters at a time
            out += [a.text async for a in agg.aggregate(text[i:i + 3])]
        rest = await agg.flush()
        return out + ([rest.text] if rest and rest.text else [])

    async def main():
        assert await answer("Sure, a cold brings a runny nose, sore throat, and cough. Dr. Smith agrees.") == [
            "Sure, a cold brings a runny nose,", "sore throat, and cough.", "Dr. Smith agrees."]
        assert await answer("It costs 1,000 dollars, roughly. Okay.") == ["It costs 1,000 dollars,", "roughly.", "Okay."]
        assert await answer("one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                            "fifteen sixteen.") == [
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen", "fifteen sixteen."]
        assert await answer("Hi. I am here, for you, always.") == ["Hi.", "I am here, for you, always."]

    asyncio.run(main())


def test_a_backchannel_does_not_interrupt_but_speech_does(eval_dir):
    """While the bot says its greeting: 0.3 s of real speech ("mm-hm" length) leaves it talking;
    then 1.5 s of speech stops it (the rule: 0.5 s of continuous speech). The LLM answers with
    silence, so any bot audio after the interruption is the greeting going on (with the local
    model the bot's answer to the 1.5 s came within the test's window, and was taken for it)."""
    from websockets.sync.client import connect

    from voxa import audio

    silent, asked = _fake_llm("")
    url = start_server(ServerConfig(api_keys=(), agent=AgentConfig(
        greeting="Hello! I am an AI voice assistant. I can answer questions, tell you the time, and end the "
                 "call when you say goodbye. What would you like to talk about today?",
        llm=LLMConfig(base_url=silent, model="fake"))))
    speech = audio.decode(eval_dir / LS / "1089-134686-0000.flac")
    start = int(np.argmax(np.abs(speech) > 0.05))
    chunk = 320

    def send(c, samples):
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
        for i in range(0, len(pcm), chunk):
            c.send(pcm[i:i + chunk].tobytes())
            time.sleep(0.02)

    def drain(c, seconds):
        """Send silence for ``seconds``; return (bot audio bytes, events) received meanwhile."""
        got, events, end = 0, [], time.time() + seconds
        while time.time() < end:
            c.send(np.zeros(chunk, "<i2").tobytes())
            try:
                while True:
                    msg = c.recv(timeout=0.001)
                    if isinstance(msg, bytes):
                        got += len(msg)
                    else:
                        events.append(json.loads(msg))
            except TimeoutError:
                pass
            time.sleep(0.02)
        return got, events

    with connect(ws(url)) as c:
        assert json.loads(c.recv(timeout=60))["type"] == "session"
        audio_in, _ = drain(c, 2.0)
        assert audio_in > 0, "the greeting did not start"
        send(c, speech[start:start + 4800])  # 0.3 s
        after, events = drain(c, 2.0)
        assert not any(e["type"] == "interrupted" for e in events), events
        assert after > 16000, "the bot stopped after a backchannel"
        send(c, speech[start:start + 24000])  # 1.5 s
        _, events = drain(c, 1.0)
        assert any(e["type"] == "interrupted" for e in events), events
        later, _ = drain(c, 1.0)
        assert later == 0, "bot audio went on after the interruption"


@pytest.mark.slow
def test_voxa_agent_and_voxa_talk_commands(tmp_path, eval_dir):
    """`voxa agent --config` serves the agent; `voxa talk --json` plays a recording to it and
    prints what was heard, said and when. A public bind without a key is refused in one line."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "voxa.cli"]
    refused = subprocess.run([*cmd, "agent", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "api key" in refused.stderr.lower(), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    config = tmp_path / "agent.toml"
    config.write_text('[agent]\ngreeting = "Hi, I am an AI assistant."\nmax_sessions = 1\n[agent.llm]\nmax_tokens = 30\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*cmd, "agent", "--config", str(config), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import urllib.request

        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/agent/config", timeout=1) as r:
                    assert r.status == 200
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.2)
        done = subprocess.run([*cmd, "talk", str(eval_dir / LS / "1089-134691-0000.flac"), "--json",
                               "--url", f"ws://127.0.0.1:{port}/v1/agent", "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        session = json.loads(done.stdout)
        assert "AI" in session["greeting"]
        (turn,) = session["turns"]
        assert "wait" in turn["transcript"].lower() and turn["answer"]
        assert turn["latency"]["voice_to_voice_ms"] > 0
        assert any((tmp_path / "out").glob("*.wav"))
    finally:
        server.terminate()
        server.wait(timeout=30)


# --------------------------------------------------------------------------- WebRTC signalling, hostile
def _offer_sdp() -> str:
    """A real browser-shaped offer made by aiortc (audio, ICE credentials, DTLS fingerprint)."""
    from aiortc import RTCPeerConnection

    async def make():
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel("agent")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()  # the peer goes away: this offer will never connect
        return sdp

    return asyncio.run(make())


def _post_offer(url: str, body: bytes) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url + "/offer", data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def _agent_sessions(url: str) -> float:
    import re
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return float(re.search(r"^voxa_agent_sessions (\S+)", text, re.M).group(1))


@pytest.mark.slow
def test_junk_offers_take_no_session_and_a_peer_that_never_connects_is_freed():
    """Junk SDP is a 400 that takes no session slot; a well-formed offer whose peer never
    connects holds its slot only until connect_timeout_s (it used to hold it for the whole
    30-minute session limit, so four such requests locked the agent out)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    fake, _ = _fake_llm("Hello there.")
    url = start_server(ServerConfig(api_keys=(), agent=AgentConfig(
        max_sessions=1, greeting="", connect_timeout_s=2.0, llm=LLMConfig(base_url=fake, model="fake"))))
    sdp = _offer_sdp()
    for body in (b"garbage", json.dumps({"sdp": "garbage", "type": "offer"}).encode(),
                 json.dumps({"sdp": "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\n", "type": "offer"}).encode(),
                 json.dumps({"sdp": sdp.replace("a=ice-pwd:", "a=x-pwd:"), "type": "offer"}).encode(),
                 json.dumps({"sdp": sdp + "a=x" * 30000, "type": "offer"}).encode(),
                 b"[" * 50000 + b"]" * 50000):
        status, err = _post_offer(url, body)
        assert status == 400 and err["error"]["code"] in ("invalid_request", "invalid_sdp"), err
    assert _agent_sessions(url) == 0
    status, answer = _post_offer(url, json.dumps({"sdp": sdp, "type": "offer"}).encode())
    assert status == 200 and answer["sdp"].startswith("v=0") and answer["type"] == "answer"
    with pytest.raises(InvalidStatus) as busy:  # its slot is taken...
        connect(ws(url))
    assert busy.value.response.status_code == 429
    for _ in range(120):  # ...until the peer has had connect_timeout_s to connect
        if _agent_sessions(url) == 0:
            break
        time.sleep(0.25)
    assert _agent_sessions(url) == 0
    with connect(ws(url)) as c:  # and the agent takes the next caller
        assert json.loads(c.recv(timeout=60))["type"] == "session"
