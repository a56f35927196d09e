"""Twilio's side of a phone call to ``WS /v1/telephony/twilio``, for tests and benchmarks: what
``voxa talk`` is for ``/v1/agent``.

    async with Phone("http://127.0.0.1:8000", key=KEY) as phone:
        clip = phone.say(samples_8k)            # queued whole, sent at real-time pace
        await phone.until(lambda: phone.played_out(2.0), 60)

It sends what Twilio sends: ``connected``, ``start`` (μ-law 8 kHz mono, the key as a custom
parameter), then one 20 ms base64 μ-law ``media`` frame every 20 ms, the caller's speech or
silence, and ``stop`` at the end. The bot's ``media`` is played on a clock (``delay`` s of
network first); each ``mark`` is echoed once the audio before it has played, and on ``clear``
what is unplayed is dropped and the pending marks are echoed at once, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import deque

import numpy as np

from ..audio import g711_decode, g711_encode

FRAME = 160  # 20 ms of 8 kHz μ-law: one media frame
SILENCE = b"\xff" * FRAME  # μ-law zero
MULAW = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
PATH = "/v1/telephony/twilio"


class Phone:
    def __init__(self, url: str, *, key: str | None = None, delay: float = 0.0, loud: float = 0.05):
        base = url.replace("https://", "wss://").replace("http://", "ws://")
        self.url = base if base.endswith(PATH) else base.rstrip("/") + PATH
        self.sid, self.key, self.delay, self.loud = "MZ" + uuid.uuid4().hex, key, delay, loud
        self.queue: deque[tuple[bytes, int, int]] = deque()  # (payload, clip, frame index)
        self.frames: dict[int, int] = {}  # clip -> its frames
        self.loud_frames: dict[int, tuple[int, int]] = {}  # clip -> its first and last loud frame
        self.first_sent: dict[int, float] = {}  # clip -> when its first frame went out
        self.last_sent: dict[int, float] = {}  # ... its last frame
        self.loud_first: dict[int, float] = {}  # ... its first loud frame
        self.loud_last: dict[int, float] = {}  # ... its last loud frame
        self.media: list[tuple[float, float, float]] = []  # the bot's frames: (arrival, when it plays, peak)
        self.audio = bytearray()  # the bot's μ-law, as received
        self.marks: list[tuple[float, str]] = []
        self.echoed: list[tuple[float, str]] = []
        self.clears: list[float] = []
        self.pending: list[tuple[float, str]] = []  # (when played, mark)
        self.wrong: list[dict] = []  # messages without our streamSid, or of events Twilio never gets
        self.play_end = 0.0
        self.seq = self.chunk = self.clips = 0
        self.closed: tuple[int | None, str | None] | None = None

    async def __aenter__(self) -> "Phone":
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, open_timeout=60, max_size=None)
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        params = {"api_key": self.key} if self.key else {}
        await self.send({"event": "start", "streamSid": self.sid, "start": {
            "streamSid": self.sid, "accountSid": "AC" + uuid.uuid4().hex, "callSid": "CA" + uuid.uuid4().hex,
            "tracks": ["inbound"], "customParameters": params, "mediaFormat": MULAW}})
        self.t0 = time.monotonic()
        self.tasks = [asyncio.create_task(self._speak()), asyncio.create_task(self._listen())]
        return self

    async def __aexit__(self, *exc) -> None:
        if self.closed is None:
            try:
                await self.send({"event": "stop", "streamSid": self.sid, "stop": {}})
            except Exception:  # already closed
                pass
        for t in self.tasks:
            t.cancel()
        await self.ws.close()

    async def send(self, msg: dict) -> None:
        self.seq += 1
        await self.ws.send(json.dumps({**msg, "sequenceNumber": str(self.seq)}))

    def say(self, samples: np.ndarray) -> int:
        """Queue 8 kHz speech whole; returns its clip number (for ``first_sent``, ``loud_last``...)."""
        data = g711_encode(samples, "ulaw")
        data += SILENCE[: -len(data) % FRAME or 0]
        n = len(data) // FRAME
        self.clips += 1
        self.frames[self.clips] = n
        loud = np.nonzero(np.abs(samples) > self.loud)[0]
        self.loud_frames[self.clips] = (loud[0] // FRAME, loud[-1] // FRAME) if loud.size else (0, n - 1)
        self.queue.extend((data[k * FRAME:(k + 1) * FRAME], self.clips, k) for k in range(n))
        return self.clips

    async def _speak(self) -> None:
        tick = time.monotonic()
        while True:
            payload, clip, k = self.queue.popleft() if self.queue else (SILENCE, 0, -1)
            now = time.monotonic()
            self.chunk += 1
            await self.send({"event": "media", "streamSid": self.sid, "media": {
                "track": "inbound", "chunk": str(self.chunk), "timestamp": str(int((now - self.t0) * 1000)),
                "payload": base64.b64encode(payload).decode()}})
            if clip:
                first, last = self.loud_frames[clip]
                for mark, at in ((self.first_sent, 0), (self.last_sent, self.frames[clip] - 1),
                                 (self.loud_first, first), (self.loud_last, last)):
                    if k == at:
                        mark[clip] = now
            for due in [p for p in self.pending if p[0] <= now]:
                self.pending.remove(due)
                await self.echo(due[1])
            tick += FRAME / 8000
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    async def echo(self, name: str) -> None:
        self.echoed.append((time.monotonic(), name))
        await self.send({"event": "mark", "streamSid": self.sid, "mark": {"name": name}})

    async def _listen(self) -> None:
        try:
            async for raw in self.ws:
                now, msg = time.monotonic(), json.loads(raw)
                event = msg.get("event")
                if msg.get("streamSid") != self.sid or event not in ("media", "mark", "clear"):
                    self.wrong.append(msg)
                if event == "media":
                    chunk = base64.b64decode(msg["media"]["payload"])
                    start = max(self.play_end, now + self.delay)
                    self.play_end = start + len(chunk) / 8000
                    self.media.append((now, start, float(np.abs(g711_decode(chunk)).max(initial=0.0))))
                    self.audio += chunk
                elif event == "mark":
                    self.marks.append((now, msg["mark"]["name"]))
                    self.pending.append((max(self.play_end, now), msg["mark"]["name"]))
                elif event == "clear":  # Twilio drops what it has not played and echoes the pending marks
                    self.clears.append(now)
                    self.play_end = now
                    for _, name in self.pending:
                        await self.echo(name)
                    self.pending.clear()
        except Exception:  # the connection ended: its close code says how
            pass
        finally:
            self.closed = (self.ws.close_code, self.ws.close_reason)

    async def until(self, cond, timeout: float) -> bool:
        """Wait until ``cond()`` holds (True), the time is up or the call has ended."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.closed is None and not cond():
            await asyncio.sleep(0.02)
        return bool(cond())

    async def sent(self, clip: int) -> tuple[float, float]:
        """Wait until the whole of ``clip`` has gone out: (its first frame's time, its last's)."""
        await self.until(lambda: clip in self.last_sent, 60.0 + self.frames[clip] * FRAME / 8000)
        if clip not in self.last_sent:
            raise RuntimeError(f"the call ended while the caller spoke: {self.closed}")
        return self.first_sent[clip], self.last_sent[clip]

    def played_out(self, seconds: float) -> bool:
        """The bot has spoken and nothing has played for ``seconds``."""
        return bool(self.media) and time.monotonic() > self.play_end + seconds

    def quiet(self, since: float, gap: float) -> bool:
        """As ``voxa talk``'s: bot audio arrived after ``since``, and none for ``gap`` seconds."""
        last = self.media[-1][0] if self.media else 0.0
        return last > since and time.monotonic() - last > gap

    def first_after(self, t: float, loud: float = 0.0):
        """The first bot frame that arrived at or after ``t`` with a peak above ``loud``."""
        return next((m for m in self.media if m[0] >= t and m[2] > loud), None)
