"""Agent settings: one dataclass, from ``agent.toml`` (``voxa agent --config``), ``VOXA_AGENT_*``
environment variables, or keyword arguments.

    [agent]
    system_prompt = "You are a helpful voice assistant. Answer in one or two short sentences."
    greeting = "Hello! I'm an AI voice assistant. How can I help?"
    voice = "hibari"              # any voxa voice (voxa voices)
    stt_model = "tiny.en"         # a voxa Whisper model, streamed (voxa.streaming)
    max_sessions = 4
    allow_interruptions = true
    interrupt_speech_s = 0.5
    tools = "voxa.agent.example_tools"   # a module with TOOLS (see voxa.agent.tools)
    wake_word = "okay_nabu"       # optional: listen only after a wake word (voxa wake --list)
    wake_idle_s = 20.0            # ... until nobody has spoken for this long

    [agent.llm]                   # default: the bundled SmolLM2-135M-Instruct, in process
    runtime = "auto"              # ct2 (CTranslate2), llama.cpp (voxa[llama]), auto: llama.cpp if installed
    base_url = "http://127.0.0.1:11434/v1"   # or any OpenAI-compatible server
    model = "llama3.2"
    api_key_env = "OLLAMA_KEY"

    [agent.turn]
    pause_s = 0.2
    long_silence_s = 2.0
    threshold = 0.5
    medium_silence_s = 0.6        # a sentence that ends in . ? ! (and scores >= medium_threshold)
    medium_threshold = 0.1
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..turn import TurnPolicy

DISCLOSURE = "Hello! I'm an AI voice assistant, and you are hearing a synthetic voice. How can I help?"
SYSTEM_PROMPT = ("You are a helpful voice assistant. Your answers are spoken aloud, so answer in one or two "
                 "short, plain sentences, without lists, markdown or emoji.")


@dataclass
class LLMConfig:
    base_url: str | None = None  # None: the bundled local model
    model: str | None = None  # for a base_url: the served model's name; locally: a .gguf path (optional)
    api_key_env: str | None = None  # name of the environment variable holding the endpoint's key
    temperature: float = 0.0
    max_tokens: int = 120
    runtime: str = "auto"  # local model: ct2, llama.cpp (pip install "voxa[llama]"), or auto (llama.cpp if installed)
    context_tokens: int | None = None  # conversation memory budget (older turns dropped); None: 600 on ct2, 1500 on llama.cpp
    threads: int = 1  # local model: threads writing the answer (2 collapsed under load on 2 cores)
    batch_threads: int = 2  # local model, llama.cpp only: threads reading the prompt

    @property
    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else "none"


@dataclass
class AgentConfig:
    system_prompt: str = SYSTEM_PROMPT
    greeting: str | None = DISCLOSURE  # said when a session opens; "" for none
    voice: str | None = None  # voxa's default voice
    stt_model: str = "tiny.en"
    language: str | None = "en"
    max_sessions: int = 4
    max_session_s: float = 1800.0  # a session is closed after this long
    connect_timeout_s: float = 15.0  # WebRTC: a peer that has not connected by then frees its session
    drop_timeout_s: float = 10.0  # WebRTC: a connected peer that sends no audio packet for this long has left
    allow_interruptions: bool = True
    interrupt_speech_s: float = 0.5  # user speech needed to interrupt the bot (shorter backchannels do not)
    tools: str | None = "voxa.agent.example_tools"  # module path (or file) with TOOLS; None: no tools
    wake_word: str | None = None  # listen (and be interrupted) only after this wake word (voxa.wake)
    wake_idle_s: float = 20.0  # after the wake word, this long with no speech and it waits for it again
    ice_servers: list[str] = field(default_factory=list)  # WebRTC: empty = host candidates only (LAN, offline)
    llm: LLMConfig = field(default_factory=LLMConfig)
    turn: TurnPolicy = field(default_factory=TurnPolicy)

    def check(self) -> "AgentConfig":
        self.turn.check()
        if self.max_sessions < 1:
            raise InputError(f"agent.max_sessions must be at least 1, not {self.max_sessions}")
        if self.interrupt_speech_s < 0:
            raise InputError(f"agent.interrupt_speech_s must be >= 0, not {self.interrupt_speech_s}")
        if self.wake_word:
            from ..wake import parse

            parse(self.wake_word)
            if self.wake_idle_s < 1:
                raise InputError(f"agent.wake_idle_s must be at least 1, not {self.wake_idle_s}")
        if not self.system_prompt.strip():
            raise InputError("agent.system_prompt is empty")
        if self.llm.max_tokens < 1 or (self.llm.context_tokens is not None and self.llm.context_tokens < 256):
            raise InputError("agent.llm.max_tokens must be >= 1 and agent.llm.context_tokens >= 256")
        return self


def _build(cls, data: dict, where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kw = {}
    for key, value in data.items():
        if key == "llm":
            value = _build(LLMConfig, value, f"{where}.llm")
        elif key == "turn":
            value = _build(TurnPolicy, value, f"{where}.turn")
        kw[key] = value
    try:
        return cls(**kw)
    except TypeError as e:
        raise InputError(f"{where}: {e}") from None


_ENV = {  # VOXA_AGENT_* -> (section, key, type)
    "VOXA_AGENT_SYSTEM_PROMPT": (None, "system_prompt", str),
    "VOXA_AGENT_GREETING": (None, "greeting", str),
    "VOXA_AGENT_VOICE": (None, "voice", str),
    "VOXA_AGENT_STT_MODEL": (None, "stt_model", str),
    "VOXA_AGENT_MAX_SESSIONS": (None, "max_sessions", int),
    "VOXA_AGENT_TOOLS": (None, "tools", str),
    "VOXA_AGENT_WAKE_WORD": (None, "wake_word", str),
    "VOXA_AGENT_LLM_BASE_URL": ("llm", "base_url", str),
    "VOXA_AGENT_LLM_MODEL": ("llm", "model", str),
    "VOXA_AGENT_LLM_API_KEY_ENV": ("llm", "api_key_env", str),
    "VOXA_AGENT_LLM_RUNTIME": ("llm", "runtime", str),
}


def load(path: str | Path | None = None, **overrides) -> AgentConfig:
    """Settings from ``path`` (TOML, an ``[agent]`` table or top-level keys), then the
    ``VOXA_AGENT_*`` environment, then ``overrides``."""
    data: dict = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(f"agent config {path}: no such file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"agent config {path}: not valid TOML ({e})") from None
        data = raw.get("agent", raw)
    for var, (section, key, kind) in _ENV.items():
        if var in os.environ:
            try:
                value = kind(os.environ[var])
            except ValueError:
                raise InputError(f"{var}={os.environ[var]!r} is not a valid {kind.__name__}") from None
            (data.setdefault(section, {}) if section else data)[key] = value
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    return _build(AgentConfig, data, "agent").check()
