"""Server settings: bind address, API keys and limits, from arguments or VOXA_* environment."""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
from dataclasses import dataclass, field

from ..agent.config import AgentConfig
from ..errors import InputError


def _keys_from_env() -> tuple[str, ...]:
    return tuple(k.strip() for k in os.environ.get("VOXA_API_KEYS", "").split(",") if k.strip())


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = field(default_factory=_keys_from_env)
    max_upload_mb: float = 100.0      # transcription uploads
    max_text_chars: int = 4096        # one speech request (OpenAI's own limit)
    max_audio_s: float = 4 * 3600.0   # one transcription upload, by its duration
    stream_model: str = "tiny.en"     # WS /v1/listen when the client names no voxa model
    max_streams: int = 16             # live streams at once (more: HTTP 429 at the handshake)
    max_stream_s: float = 3600.0      # audio per live stream
    idle_timeout_s: float = 10.0      # a stream with no audio or KeepAlive for this long is closed
    max_frame_bytes: int = 1 << 20    # one WebSocket message
    max_backlog_s: float = 30.0       # audio a stream may have waiting for the decoder before reads pause
    agent: AgentConfig = field(default_factory=AgentConfig)  # the voice agent (/agent, /offer, /v1/agent)

    def accepts(self, token: str) -> bool:
        """Is ``token`` one of the API keys (compared in constant time)?"""
        return any(hmac.compare_digest(token, k) for k in self.api_keys)

    def check_bind(self) -> None:
        """A server reachable from other machines must ask for a key."""
        if not self.api_keys and not is_loopback(self.host):
            raise InputError(f"refusing to listen on {self.host} without an API key: set VOXA_API_KEYS "
                             "or pass --api-key (or bind to 127.0.0.1)")


def header_token(authorization: str, schemes: tuple[str, ...] = ("bearer",)) -> str:
    """The key in an ``Authorization: <scheme> KEY`` header, or "" for another scheme."""
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() in schemes else ""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    if not host:  # "" binds every interface
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False
