"""The programs under examples/ run as shipped, against a live voxa server."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from voxa.server.config import ServerConfig

from .conftest import start_server

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_articles_streaming_client(eval_dir):
    """The article's StreamingASR (corrected: examples/streaming_asr.py) streams a real recording
    to voxa's /v1/listen, as raw PCM and as a WAV container, and gets interims and finals; the
    closing Metadata message no longer breaks it."""
    pytest.importorskip("websockets")
    from voxa import audio

    mod = _load("streaming_asr")
    url = start_server(ServerConfig(api_keys=()))
    ws = url.replace("http://", "ws://") + "/v1/listen"
    pcm = audio.decode(eval_dir / "faster-whisper/jfk.flac")
    raw = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()

    async def chunks(data: bytes, size: int = 3200):
        for i in range(0, len(data), size):
            yield data[i:i + size]

    async def run(asr, data):
        return [r async for r in asr.stream_audio(chunks(data))]

    asr = mod.StreamingASR(url=ws, encoding="linear16", sample_rate=16000)
    results = asyncio.run(run(asr, raw))
    assert {r["type"] for r in results} >= {"final"}
    assert "ask not what your country can do for you" in asr.final_transcript.lower().replace(",", "")
    wav = audio.encode(pcm, 16000)
    asr = mod.StreamingASR(url=ws)  # a container: no encoding needed
    asyncio.run(run(asr, wav))
    assert "ask what you can do for your country" in asr.final_transcript.lower().replace(",", "")
