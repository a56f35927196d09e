"""How connections are accepted: uvicorn with voxa's timeouts.

* **Slow headers and bodies** (slowloris): uvicorn's h11 protocol waits for a request's
  headers for ever once the first byte has come. :class:`GuardedH11` closes a connection that
  takes longer than ``header_timeout_s`` to send its headers, or pauses longer than
  ``read_timeout_s`` while sending a body.
* **WebSocket pings never end a stream.** uvicorn pings every ``ws_ping_interval_s`` and, by
  default, closes with 1011 "keepalive ping timeout" when no pong comes within 20 s. But a live
  client sending faster than real time is held back by TCP backpressure (voxa stops reading
  while its decoder catches up), and then its pong sits unread behind its audio: the client
  that is doing nothing wrong was dropped, losing its results. So pings are still sent (they
  keep NAT and proxy mappings open) but a missing pong closes nothing; each endpoint has its
  own idle timeout instead (``idle_timeout_s`` for live streams), which catches a vanished peer
  whenever voxa is actually waiting for it.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a body read timeout."""

    header_timeout_s = 10.0
    read_timeout_s = 30.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting = None  # "headers" or "body" while a timer runs
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch(progress=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _cancel(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
        self._deadline, self._waiting = None, None

    def _watch(self, progress: bool = False) -> None:
        if self.transport is None or self.transport.is_closing() or self.transport.get_protocol() is not self:
            # closed, or upgraded to a WebSocket (uvicorn hands the transport to the WebSocket
            # protocol right after the request line and headers, while h11 still expects a body)
            return self._cancel()
        state = self.conn.their_state
        if state is h11.IDLE:
            # headers: one deadline from the moment the server waits for them (a trickle of
            # bytes does not extend it); a connection idle between requests is uvicorn's keep-alive
            if self._waiting != "headers":
                self._cancel()
                self._waiting = "headers"
                self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)
        elif state is h11.SEND_BODY:
            if self._waiting != "body" or progress:
                self._cancel()
                self._waiting = "body"
                self._deadline = self.loop.call_later(self.read_timeout_s, self._expire)
        else:
            self._cancel()

    def _expire(self) -> None:
        what = self._waiting
        self._deadline, self._waiting = None, None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        self.logger.info("closing a connection from %s: %s", self.client and self.client[0],
                         "headers too slow" if what == "headers" else "request body stalled")
        self.transport.close()


def uvicorn_config(app, config, *, host: str, port: int, log_level: str = "info"):
    """A uvicorn Config for voxa's app with the settings above."""
    import uvicorn

    protocol = type("VoxaH11", (GuardedH11,), {"header_timeout_s": config.header_timeout_s,
                                               "read_timeout_s": config.read_timeout_s})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol,
                          ws_ping_interval=config.ws_ping_interval_s or None, ws_ping_timeout=None)
