"""WS /v1/telephony/twilio end to end, with the agent's real models (tiny.en streaming, Silero +
smart-turn, the bundled SmolLM2, hibari). :class:`voxa.agent.phone.Phone` plays Twilio's side of a bidirectional
Media Stream: ``connected``, ``start``, then one 20 ms base64 μ-law ``media`` frame every 20 ms (real
recordings from ../shared/eval while the caller speaks, silence otherwise); it plays the bot's audio
on a clock, echoes each ``mark`` once the audio before it has played, and on ``clear`` drops what it
holds and echoes the pending marks at once, as Twilio does."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("pipecat")
websockets = pytest.importorskip("websockets")

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from voxa.agent import AgentConfig, LLMConfig  # noqa: E402
from voxa.agent.phone import MULAW, Phone  # noqa: E402  (Twilio's side of a call)
from voxa.server.config import ServerConfig  # noqa: E402

from .conftest import start_server  # noqa: E402

KEY = "telephony-test-key"
LS = "librispeech-test-other-Resemblyzer"


def unulaw(data: bytes) -> np.ndarray:
    from voxa.audio import g711_decode

    return g711_decode(data, "ulaw")


async def open_call(url: str, **kw) -> Phone:
    """A call on the one-slot agent: the previous call's slot comes back a moment after it ended (1013 till then)."""
    for _ in range(100):
        phone = await Phone(url, **{"key": KEY, **kw}).__aenter__()
        await phone.until(lambda: False, 1.5)
        if phone.closed is None:
            return phone
        await phone.__aexit__()
        assert phone.closed[0] == 1013, phone.closed
        await asyncio.sleep(0.2)
    pytest.fail("the session slot was never freed")


def speech(eval_dir, name: str) -> np.ndarray:
    from voxa import audio

    x = audio.decode(eval_dir / LS / f"{name}.flac", 8000)
    onset = max(0, int(np.argmax(np.abs(x) > 0.05)) - 800)  # from 0.1 s before the speech
    return x[onset:]


def health(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=30) as r:
        return r.status == 200


@pytest.fixture(scope="module")
def phone_agent():
    return start_server(ServerConfig(api_keys=(KEY,), agent=AgentConfig(max_sessions=1, llm=LLMConfig(max_tokens=40))))


# --------------------------------------------------------------------------- real models
@pytest.mark.slow
def test_a_phone_call_with_the_local_agent(phone_agent, eval_dir, caplog):
    """The greeting, five turns (voice-to-voice latency measured at the phone: from the end of
    the caller's speech in the sent stream to the first bot media frame), then a barge-in."""
    caplog.set_level(logging.INFO, logger="voxa.agent")  # the server's own per-turn latency rows
    turns = ["1688-142285-0002", "1998-15444-0007", "1998-15444-0008", "2414-128291-0000", "2414-128291-0003"]

    async def call():
        phone = await open_call(phone_agent)
        try:
            assert await phone.until(lambda: phone.played_out(2.0), 240), "no greeting"
            greeting = unulaw(bytes(phone.audio))
            assert greeting.size > 8000 and np.sqrt(np.mean(greeting ** 2)) > 0.01  # a second or more of speech
            assert phone.marks and phone.echoed, "no marks"  # one per sentence, echoed once played
            latencies, audible, early = [], [], 0
            for name in turns:
                clip = phone.say(speech(eval_dir, name))
                assert await phone.until(lambda: clip in phone.loud_last and phone.first_after(phone.loud_last[clip])
                                         and phone.played_out(2.0), 120), f"no answer to {name}"
                early += any(phone.loud_first[clip] <= m[0] < phone.loud_last[clip] for m in phone.media)
                latencies.append(phone.first_after(phone.loud_last[clip])[0] - phone.loud_last[clip])
                audible.append(phone.first_after(phone.loud_last[clip], 0.02)[0] - phone.loud_last[clip])
            # barge-in: the caller talks over the answer 0.3 s after it starts playing
            clip = phone.say(speech(eval_dir, "2414-128291-0009"))
            assert await phone.until(lambda: clip in phone.loud_last and (m := phone.first_after(phone.loud_last[clip]))
                                     and time.monotonic() > m[1] + 0.3, 120), "no answer to barge in on"
            assert time.monotonic() < phone.play_end, "the answer was over before the barge-in"
            n_clears = len(phone.clears)
            phone.say(speech(eval_dir, "2033-164914-0004"))
            assert await phone.until(lambda: len(phone.clears) > n_clears, 10), "no clear on barge-in"
            cleared = phone.clears[n_clears]
            await asyncio.sleep(1.0)
            assert not [m for m in phone.media if cleared + 0.3 < m[0] < cleared + 1.0], "bot audio after the clear"
            assert not phone.wrong, phone.wrong[:3]
            return latencies, audible, early
        finally:
            await phone.__aexit__()

    latencies, audible, early = asyncio.run(call())
    print(f"\nvoice-to-voice over μ-law at the phone (s): {[round(x, 2) for x in latencies]}, median "
          f"{np.median(latencies):.2f}; to the first audible frame: {[round(x, 2) for x in audible]}; "
          f"turns answered before the caller finished: {early}")
    rows = [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "voxa.agent" and '"latency"' in r.getMessage()]
    print("the server's voice_to_voice_ms per turn:", [r["voice_to_voice_ms"] for r in rows])
    assert all(0 < x < 15 for x in latencies), latencies
    req = urllib.request.Request(phone_agent + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    body = urllib.request.urlopen(req, timeout=30).read().decode()
    assert 'voxa_agent_latency_seconds_count{stage="voice_to_voice"}' in body
    assert health(phone_agent)


@pytest.mark.slow
def test_bad_input_on_the_twilio_socket(phone_agent):
    """Each refusal closes the socket with a code and a reason and leaves the server serving;
    a dtmf, an unknown event, broken media and a stray mark mid-call are ignored; the slot of a
    call that was hung up on comes back."""
    ws_url = phone_agent.replace("http://", "ws://") + "/v1/telephony/twilio"
    start = {"streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "customParameters": {"api_key": KEY},
             "mediaFormat": MULAW}

    async def refused(*messages, wait=10.0):
        t = time.monotonic()
        async with connect(ws_url) as ws:
            for m in messages:
                await ws.send(m if isinstance(m, bytes) else json.dumps(m) if isinstance(m, dict) else m)
            try:
                async with asyncio.timeout(wait):
                    async for _ in ws:
                        pass
            except ConnectionClosed:
                pass
            return ws.close_code, ws.close_reason, time.monotonic() - t

    async def main():
        connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        cases = [
            (("not json",), 1007, "JSON"),
            ((connected, {"event": "start", "start": {**start, "mediaFormat": {**MULAW, "encoding": "audio/l16"}}}),
             1003, "mediaFormat"),
            ((connected, {"event": "start", "start": {**start, "mediaFormat": {**MULAW, "sampleRate": 16000}}}),
             1003, "mediaFormat"),
            ((connected, {"event": "start", "start": {**start, "customParameters": {}}}), 1008, "API key"),
            ((connected, {"event": "start", "start": {**start, "customParameters": {"api_key": "wrong"}}}),
             1008, "API key"),
            ((connected, {"event": "start", "start": {"callSid": "CA1"}}), 1008, "streamSid"),
            ((b"\x00\x01\x02",), 1003, "JSON text"),
            ((json.dumps({"event": "connected", "pad": "x" * 70_000}),), 1009, "64 KB"),
            ((connected,), 1008, "no start message"),  # and then nothing
        ]
        for messages, code, why in cases:
            got, reason, took = await refused(*messages)
            assert got == code and why in reason, (messages[-1] if len(str(messages)) < 300 else why, got, reason)
            assert took < 8, took
            assert health(phone_agent)

        phone = await open_call(phone_agent)
        try:
            assert await phone.until(lambda: phone.media, 120), "no greeting"
            for junk in ({"event": "dtmf", "streamSid": phone.sid, "dtmf": {"track": "inbound_track", "digit": "1"}},
                         {"event": "dtmf", "streamSid": phone.sid, "dtmf": {"digit": "banana"}},
                         {"event": "dance", "streamSid": phone.sid},
                         {"event": "media", "streamSid": phone.sid, "media": {"payload": "!!!not base64"}},
                         {"event": "media", "streamSid": phone.sid, "media": ["a"]},
                         {"event": "mark", "streamSid": phone.sid, "mark": {"name": "never-sent"}},
                         {"event": "mark", "streamSid": phone.sid, "mark": "x"}):
                await phone.send(junk)
            heard = len(phone.media)
            await phone.until(lambda: False, 1.0)
            assert phone.closed is None and len(phone.media) > heard, "the call did not go on"
            await phone.send({"event": "media", "streamSid": phone.sid, "media": {"payload": "A" * 70_000}})
            assert await phone.until(lambda: phone.closed is not None, 10)
            assert phone.closed[0] == 1009 and "64 KB" in phone.closed[1], phone.closed
        finally:
            await phone.__aexit__()
        assert health(phone_agent)
        again = await open_call(phone_agent)  # the hung-up call's slot is free again
        try:
            assert await again.until(lambda: again.media, 120), "the next call was not answered"
            await again.ws.send("{not json")  # bad JSON mid-call: hung up on
            assert await again.until(lambda: again.closed is not None, 10)
            assert again.closed[0] == 1007, again.closed
        finally:
            await again.__aexit__()
        assert health(phone_agent)

    asyncio.run(main())


@pytest.mark.slow
def test_on_barge_in_the_memory_keeps_what_the_caller_heard(eval_dir):
    """With 2 s between the server sending audio and the caller hearing it, the sentences sent
    but not yet heard when the caller barges in are not remembered: the next request to the LLM
    carries only sentences whose mark Twilio had echoed (Pipecat alone would keep every sentence
    whose audio had been sent). The LLM is an OpenAI-compatible stub with a twelve-sentence answer."""
    from .test_agent import _fake_llm

    sentences = [f"The stew was {w}." for w in
                 ("hot", "thick", "brown", "salty", "rich", "spicy", "fresh", "mild", "sweet", "dark", "good", "done")]
    base_url, seen = _fake_llm(" ".join(sentences))
    url = start_server(ServerConfig(api_keys=(KEY,), agent=AgentConfig(
        greeting="", max_sessions=1, llm=LLMConfig(base_url=base_url, model="fake"))))

    async def call():
        phone = await open_call(url, delay=2.0)
        try:
            clip = phone.say(speech(eval_dir, "2414-128291-0008"))
            assert await phone.until(lambda: clip in phone.loud_last and (m := phone.first_after(phone.loud_last[clip]))
                                     and time.monotonic() > m[1] + 1.5, 120), "no answer"
            asked, n_clears = len(seen), len(phone.clears)  # (a clear goes out at every turn's start)
            phone.say(speech(eval_dir, "1688-142285-0004"))
            assert await phone.until(lambda: len(phone.clears) > n_clears, 10), "no clear on barge-in"
            cleared = phone.clears[n_clears]
            sent = sum(t < cleared for t, _ in phone.marks)
            echoed = sum(t < cleared for t, _ in phone.echoed)
            assert await phone.until(lambda: len(seen) > asked, 60), "the interruption was not answered"
            return sent, echoed
        finally:
            await phone.__aexit__()

    sent, echoed = asyncio.run(call())
    history = [m for m in seen[-1]["messages"] if m["role"] == "assistant"]
    said = history[0]["content"] if history else ""
    remembered = sum(s in said for s in sentences)
    print(f"\nsentences sent before the clear: {sent}, heard (marks echoed): {echoed}, remembered: {remembered}")
    assert sent > echoed >= 1, (sent, echoed)  # some sentences were sent but not heard
    assert 1 <= remembered <= echoed, (said, sent, echoed)
