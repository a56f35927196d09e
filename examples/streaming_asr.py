"""The article's ``StreamingASR`` client, corrected so that it runs today, pointed at voxa.

Three changes from the article's listing, each marked below:
1. the server URL is a parameter (voxa's ``ws://127.0.0.1:8000/v1/listen`` by default; the
   article has Deepgram's) and the key is optional (voxa on loopback needs none);
2. websockets 14 and later call the header argument ``additional_headers`` (the article's
   ``extra_headers`` is the name of websockets 13 and earlier);
3. only ``Results`` messages carry ``channel``: the ``Metadata`` message that closes every
   stream (and ``SpeechStarted`` / ``UtteranceEnd`` when asked for) are skipped instead of
   raising ``KeyError: 'channel'``.
Raw 16 kHz 16-bit PCM needs ``encoding=linear16&sample_rate=16000`` in the URL (Deepgram's rule as
well); containers (WAV, WebM, Ogg) are detected without it.

    python examples/streaming_asr.py talk.wav            # against voxa serve on 127.0.0.1:8000
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys

import websockets


class StreamingASR:
    """WebSocket-based streaming ASR client"""

    def __init__(self, model="nova-2", url="ws://127.0.0.1:8000/v1/listen", api_key=None,  # change 1
                 encoding=None, sample_rate=None):
        self.model = model
        self.url, self.api_key = url, api_key
        self.encoding, self.sample_rate = encoding, sample_rate
        self.buffer = []
        self.final_transcript = ""

    def _connect(self):
        query = f"?model={self.model}&smart_format=true&interim_results=true&endpointing=300"
        if self.encoding:
            query += f"&encoding={self.encoding}&sample_rate={self.sample_rate}"
        headers = {"Authorization": f"Token {self.api_key}"} if self.api_key else {}
        # change 2: the keyword websockets 14+ takes (extra_headers before)
        params = inspect.signature(websockets.connect).parameters
        key = "additional_headers" if "additional_headers" in params or "extra_headers" not in params else "extra_headers"
        return websockets.connect(self.url + query, **{key: headers})

    async def stream_audio(self, audio_source):
        async with self._connect() as ws:
            # Send audio chunks as they arrive
            async def send_audio():
                async for chunk in audio_source:
                    await ws.send(chunk)
                await ws.send(json.dumps({"type": "CloseStream"}))

            # Receive transcription results
            async def receive_results():
                async for msg in ws:
                    result = json.loads(msg)
                    if result.get("type") != "Results":  # change 3: Metadata, SpeechStarted, UtteranceEnd
                        continue
                    transcript = result["channel"]["alternatives"][0]["transcript"]
                    if result["is_final"]:
                        self.final_transcript += transcript + " "
                        yield {"type": "final", "text": transcript}
                    else:
                        yield {"type": "interim", "text": transcript}

            send_task = asyncio.create_task(send_audio())
            async for result in receive_results():
                yield result
            await send_task


async def _file_chunks(path: str, chunk: int = 8000):
    with open(path, "rb") as f:  # a container file as it is: voxa detects the format
        while data := f.read(chunk):
            yield data
            await asyncio.sleep(0)


async def _main(path: str) -> None:
    asr = StreamingASR()
    async for result in asr.stream_audio(_file_chunks(path)):
        print(result["type"], result["text"])
    print("final transcript:", asr.final_transcript.strip())


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
