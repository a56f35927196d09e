"""voxa's voice agent: VAD → streaming ASR → end of turn → LLM → streaming TTS, with barge-in,
on Pipecat (1.14). A person talks; a fully local agent answers, and stops when interrupted.

    import voxa.agent
    agent = voxa.agent.Agent(voxa.agent.load_config("agent.toml"))   # models load once
    await agent.run(transport)                                       # one session, any Pipecat transport

The pieces are usable in anyone's Pipecat pipeline: :class:`~voxa.agent.stt.VoxaSTTService`
(voxa's streaming recogniser, interim and final results), :class:`~voxa.agent.tts.VoxaTTSService`
(voxa's voices, watermarked and audited per answer), :func:`voxa.turn.strategies` (Silero +
smart-turn end of turn). Modules: ``config`` (settings), ``llm`` (bundled SmolLM2 via llama.cpp,
or any OpenAI-compatible endpoint), ``tools`` (function calling), ``pipeline`` (the session's
pipeline, barge-in rule, client events, per-turn latency), ``wire`` (the ``/v1/agent``
WebSocket protocol), ``talk`` and ``phone`` (the user's side of a session over ``/v1/agent`` and of a
Twilio call, for ``voxa talk``, tests and benchmarks). The server mounts ``/agent`` (browser page over WebRTC), ``POST /offer``
and ``WS /v1/agent``; ``voxa agent`` runs it alone and ``voxa talk`` plays recordings to it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from ..errors import VoxaError
from . import tools as _tools
from .config import AgentConfig, LLMConfig, load as load_config

__all__ = ["Agent", "AgentConfig", "LLMConfig", "load_config", "SessionLimit"]


class SessionLimit(VoxaError):
    """Every agent session slot is taken."""


class Agent:
    """The shared part of the voice agent: settings, models and tools, loaded once per process;
    each :meth:`run` is one session (one person) with its own pipeline."""

    def __init__(self, config: AgentConfig | None = None, *, preload: bool = True):
        self.config = (config or AgentConfig()).check()
        self.tools = _tools.load(self.config.tools)
        self.sessions = 0
        self.ready = False  # models loaded (preload)
        self._lock = threading.Lock()
        if preload:
            self.preload()

    def preload(self) -> None:
        """Load the recogniser, the voice and the local LLM now, not at the first call."""
        from ..asr import load_model
        from ..tts import load_voice
        from .llm import warm

        load_model(self.config.stt_model)
        load_voice(self.config.voice)
        warm(self.config.llm)
        self.ready = True

    def tools_schema(self):
        from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

        return ToolsSchema(standard_tools=list(self.tools))

    def acquire(self) -> None:
        """Take one session slot (raises :class:`SessionLimit` when all are taken); ``release`` it after."""
        with self._lock:
            if self.sessions >= self.config.max_sessions:
                raise SessionLimit(f"the agent is busy: {self.config.max_sessions} session(s) already open; "
                                   "try again later")
            self.sessions += 1

    def release(self) -> None:
        with self._lock:
            self.sessions -= 1

    @contextmanager
    def session(self):
        """Hold one session slot for a ``with`` block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    async def run(self, transport, **kw) -> None:
        """Run one session on a Pipecat transport until it ends (the client leaves, the
        session times out, or a tool ends the call). Keywords go to :func:`pipeline.build`."""
        from pipecat.workers.runner import WorkerRunner

        from .pipeline import build

        with self.session():
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(build(self, transport, **kw))
            await runner.run()
