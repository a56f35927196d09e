"""Server settings: bind address, API keys, who may connect, and every limit, from arguments
or ``VOXA_*`` environment variables. Each limit is documented in README ("Serve: limits").

Keys: blank ones (an unset shell variable, ``--api-key ""``, a trailing comma in
``VOXA_API_KEYS``) are dropped wherever they come from, so they never count as a key; a
non-loopback bind with no real key is refused.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
from dataclasses import dataclass, field

from ..agent.config import AgentConfig
from ..errors import InputError


def clean_keys(keys) -> tuple[str, ...]:
    """API keys without blanks and surrounding spaces, in order, without repeats."""
    if isinstance(keys, str):
        keys = keys.split(",")
    out: list[str] = []
    for k in keys or ():
        k = str(k).strip()
        if k and k not in out:
            out.append(k)
    return tuple(out)


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


def _keys_from_env() -> tuple[str, ...]:
    return clean_keys(os.environ.get("VOXA_API_KEYS", ""))


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = field(default_factory=_keys_from_env)
    # who may connect: Host names the server answers to (default: the bound address's names;
    # "*" any), and browser Origins allowed besides the page's own (WebSockets and POSTs)
    allowed_hosts: tuple[str, ...] = field(default_factory=lambda: _env_list("VOXA_ALLOWED_HOSTS"))
    allowed_origins: tuple[str, ...] = field(default_factory=lambda: _env_list("VOXA_ALLOWED_ORIGINS"))
    # models a request may name besides the bundled ones: name -> local CTranslate2 folder
    models: dict[str, str] = field(default_factory=dict)
    # OpenAI voice names the operator maps to installed voices (the rest: voxa.tts.openai_voices)
    voice_map: dict[str, str] = field(default_factory=dict)
    max_models: int = 3               # Whisper models loaded at once (least recently used unloaded)
    max_queue: int = 8                # requests waiting per model (more: 429 with Retry-After)
    worker_threads: int = 40          # threads for sync routes, uploads and decoding (anyio's default)
    max_upload_mb: float = 100.0      # transcription uploads
    max_text_chars: int = 4096        # one speech request (OpenAI's own limit)
    max_audio_s: float = 4 * 3600.0   # one transcription upload, counted while it is decoded
    max_watermark_s: float = 600.0    # one watermark detection upload
    max_reference_s: float = 60.0     # one cloning reference
    stream_model: str = "tiny.en"     # WS /v1/listen when the client names no voxa model
    max_streams: int = 16             # live streams at once (more: HTTP 429 at the handshake)
    max_stream_s: float = 3600.0      # audio per live stream
    max_stream_wall_s: float = 7200.0  # wall-clock time per live stream
    no_audio_timeout_s: float = 300.0  # a stream with KeepAlives but no audio for this long is closed
    idle_timeout_s: float = 10.0      # a stream with no audio or KeepAlive for this long is closed
    max_frame_bytes: int = 1 << 20    # one WebSocket message
    max_backlog_s: float = 30.0       # audio a stream may have waiting for the decoder before reads pause
    header_timeout_s: float = 10.0    # to send a request's headers
    read_timeout_s: float = 30.0      # longest pause while sending a request's body
    ws_ping_interval_s: float = 20.0  # WebSocket pings (a missing pong never closes a stream: see transport.py)
    agent: AgentConfig = field(default_factory=AgentConfig)  # the voice agent (/agent, /offer, /v1/agent)
    wyoming: str | None = None        # also serve Wyoming (Home Assistant) on [HOST:]PORT (voxa.server.wyoming)
    wyoming_allow: tuple[str, ...] = ()  # addresses/networks that may use it besides loopback ("*": any)
    wyoming_zeroconf: bool = False    # announce it as _wyoming._tcp on the network

    def __setattr__(self, name, value):
        if name == "api_keys":  # every path (constructor, CLI, env, assignment) drops blanks
            value = clean_keys(value)
        elif name in ("allowed_hosts", "allowed_origins"):
            value = tuple(v.strip().lower().rstrip("/") for v in value or () if v and v.strip())
        super().__setattr__(name, value)

    def accepts(self, token: str) -> bool:
        """Is ``token`` one of the API keys (compared in constant time)? Tokens arrive as
        HTTP header text (latin-1 by ASGI), so any byte compares safely; never a blank key."""
        if not token or not self.api_keys:
            return False
        try:
            raw = token.encode("latin-1")  # the header's own bytes
        except UnicodeEncodeError:
            raw = token.encode("utf-8", "surrogatepass")
        ok = False
        for k in self.api_keys:
            ok |= hmac.compare_digest(raw, k.encode("utf-8"))
        return ok

    def check_bind(self) -> None:
        """A server reachable from other machines must ask for a key (Wyoming, which has no keys,
        for the addresses allowed to use it)."""
        if not self.api_keys and not is_loopback(self.host):
            raise InputError(f"refusing to listen on {self.host} without an API key: set VOXA_API_KEYS "
                             "or pass --api-key (or bind to 127.0.0.1)")
        if self.wyoming:
            from .wyoming import check_bind, parse_address

            check_bind(parse_address(self.wyoming)[0], self.wyoming_allow)

    def host_names(self) -> set[str] | None:
        """The names a request's Host header may carry (lower case, no port); None: any."""
        if "*" in self.allowed_hosts:
            return None
        names = set(self.allowed_hosts)
        if not self.allowed_hosts and self.host in ("", "0.0.0.0", "::"):
            return None  # a wildcard bind has no names to check against (and it needs a key)
        names |= {"localhost", "127.0.0.1", "::1"}
        if self.host:
            names.add(self.host.lower().strip("[]"))
        return names


def header_token(authorization: str, schemes: tuple[str, ...] = ("bearer",)) -> str:
    """The key in an ``Authorization: <scheme> KEY`` header, or "" for another scheme."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() in schemes else ""


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
