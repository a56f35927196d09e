"""Model work waits in a bounded queue per model, holding no worker thread: a full queue is a
429 with Retry-After, and the rest of the server keeps answering while transcriptions queue.
(How long /health takes under a 100-request queue is measured in benchmarks/server.py.)"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request

import numpy as np
import pytest

openai = pytest.importorskip("openai")

from voxa import audio  # noqa: E402
from voxa.server.config import ServerConfig  # noqa: E402

from .conftest import librispeech, start_server  # noqa: E402


def long_speech(eval_dir, seconds: float) -> bytes:
    files, _ = librispeech(eval_dir)
    parts, total = [], 0
    for f in files:
        parts.append(audio.decode(f))
        total += parts[-1].size
        if total > seconds * 16000:
            break
    return audio.encode(np.concatenate(parts), 16000, "flac")


def transcribe_all(url: str, data: bytes, n: int, done: list, errors: list) -> list[threading.Thread]:
    """n transcriptions at once, each in its own thread; results (or errors) appended as they end."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=600)

    def one():
        try:
            r = client.audio.transcriptions.create(model="tiny.en", file=("talk.flac", data))
            done.append(r.text)
        except openai.APIStatusError as e:
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def queued(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    m = re.search(r'voxa_model_queue\{model="whisper-tiny.en"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def wait_for_queue(url: str, depth: int, threads) -> None:
    for _ in range(600):
        if queued(url) >= depth or not any(t.is_alive() for t in threads):
            return
        threading.Event().wait(0.05)


def test_a_full_queue_is_a_429_with_retry_after(eval_dir, tiny):
    url = start_server(ServerConfig(api_keys=(), max_queue=1))
    data = long_speech(eval_dir, 40)
    done, errors = [], []
    for t in transcribe_all(url, data, 5, done, errors):
        t.join(600)
    assert len(done) >= 2 and len(errors) >= 1 and len(done) + len(errors) == 5
    for e in errors:
        assert e.status_code == 429 and e.body["code"] == "rate_limit_exceeded"
        assert int(e.response.headers["retry-after"]) >= 1
    assert all("the" in text.lower() for text in done)  # the accepted ones are transcribed in full
    assert queued(url) == 0


def test_other_routes_answer_while_transcriptions_queue(eval_dir, tiny):
    """Three worker threads and eight transcriptions: those waiting hold no thread, so a sync
    route (/v1/models) and /health answer while the first transcription still runs. Before the
    queue, each waiting request held a thread and both waited for the queue to drain."""
    url = start_server(ServerConfig(api_keys=(), max_queue=20, worker_threads=3))
    data = long_speech(eval_dir, 60)
    done, errors = [], []
    threads = transcribe_all(url, data, 8, done, errors)
    wait_for_queue(url, 6, threads)
    assert queued(url) >= 6, "the transcriptions did not queue up"
    finished_before = len(done)
    with urllib.request.urlopen(url + "/v1/models", timeout=120) as r:
        assert r.status == 200
    with urllib.request.urlopen(url + "/health", timeout=120) as r:
        assert r.status == 200
    assert len(done) <= finished_before + 1, "the routes waited for the transcriptions"
    for t in threads:
        t.join(900)
    assert len(done) == 8 and not errors


def test_queue_order_and_a_client_that_leaves():
    """FIFO, a waiter that is cancelled leaves no trace, and the model passes on."""
    from voxa.server.errors import APIError
    from voxa.server.queue import ModelQueues

    async def scenario():
        qs = ModelQueues(2)
        q = qs.get("m")
        order = []

        async def job(name, hold):
            async with qs.turn("m"):
                order.append(name)
                await asyncio.sleep(hold)

        first = asyncio.create_task(job("a", 0.05))
        await asyncio.sleep(0)
        gone = asyncio.create_task(job("gone", 0))
        second = asyncio.create_task(job("b", 0))
        await asyncio.sleep(0)
        with pytest.raises(APIError) as e:  # two wait already
            await q.acquire()
        assert e.value.status == 429 and int(e.value.headers["Retry-After"]) >= 1
        gone.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        assert order == ["a", "b"] and not q.busy and not q.waiting

    asyncio.run(scenario())
