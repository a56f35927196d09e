"""ASR benchmark: voxa vs faster-whisper vs openai-whisper on 60 LibriSpeech test-other utterances.

All systems run the same whisper-base weights (voxa's bundled CTranslate2 folder; openai-whisper
gets them converted to a .pt by ``ct2_to_openai_whisper.py``). Each configuration runs in its own
subprocess (so peak RSS is per system) and reports:

* model load time (separate, not part of throughput);
* wall seconds to transcribe all 60 files, after one uncounted warm-up call on one file;
* RTF = wall / audio seconds, throughput = audio seconds / wall (x real time);
* peak RSS (VmHWM of the subprocess);
* corpus WER (jiwer) after Whisper's English text normaliser.

The parent writes a Markdown table (default ``benchmarks/results/asr.md``) and prints it.

    python benchmarks/asr.py [--configs voxa,fw-beam5,...] [--out benchmarks/results/asr.md]
                             [--eval-dir PATH]

One child run by hand: ``python benchmarks/asr.py --run fw-beam5 --json`` (prints a JSON line).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # benchmarks/ is not a package: for common, ct2_to_openai_whisper
import common  # noqa: E402
SUBSET = "librispeech-test-other-Resemblyzer"
TRANS = "test-other.subset.trans.txt"
MODEL = "whisper-base"

CONFIGS = {  # name -> what the row is
    "voxa": "voxa `transcribe_many(paths, language=\"en\")`: VAD, packed 30 s windows, batch 8, beam 3 (defaults)",
    "voxa-auto": "voxa, same but language auto-detected per input",
    "fw-beam5": "faster-whisper `WhisperModel.transcribe`, int8, beam 5, one file at a time",
    "fw-beam1": "faster-whisper `WhisperModel.transcribe`, int8, beam 1 (greedy), one file at a time",
    "fw-batched8": "faster-whisper `BatchedInferencePipeline.transcribe`, batch 8 (its VAD on), beam 5, per file",
    "openai-whisper": "openai-whisper fp32 (PyTorch CPU), beam 5, best_of 5, temperature fallback, "
                      "audio decoded by `voxa.audio.decode` (timed)",
}
PEERS = ("fw-beam5", "fw-beam1", "fw-batched8", "openai-whisper")


# ---------------------------------------------------------------- data
def load_subset(eval_dir: Path) -> list[tuple[str, Path, str]]:
    """(utterance id, flac path, reference) for every reference line that has audio."""
    folder = eval_dir / SUBSET
    items = []
    for line in (folder / TRANS).read_text().splitlines():
        if line.strip():
            uid, ref = line.split(" ", 1)
            if (folder / f"{uid}.flac").is_file():
                items.append((uid, folder / f"{uid}.flac", ref))
    return items


# ---------------------------------------------------------------- child: one configuration
def openai_checkpoint(folder: Path) -> Path:
    """Converted whisper-base .pt, cached next to voxa's models (converted once)."""
    import voxa.registry as R
    from ct2_to_openai_whisper import convert

    out = R.home() / "bench" / f"{MODEL}-openai.pt"
    if not out.is_file():
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        convert(folder, tmp)
        os.replace(tmp, out)
    return out


def make_runner(config: str, folder: Path):
    """Load the system; return transcribe(path) -> text for one file, or for a list (voxa)."""
    if config in ("voxa", "voxa-auto"):
        import voxa

        m = voxa.load_model(MODEL)
        kw = {"language": "en"} if config == "voxa" else {}

        def run_many(paths):
            out = list(m.transcribe_many([str(p) for p in paths], **kw))
            bad = [r for r in out if isinstance(r, voxa.Failure)]
            if bad:
                raise RuntimeError(f"{len(bad)} failures, first: {bad[0].source}: {bad[0].error}")
            return [(r.text, r.language) for r in out]
        return run_many
    if config.startswith("fw-"):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        model = WhisperModel(str(folder), device="cpu", compute_type="int8")
        if config == "fw-batched8":
            pipe = BatchedInferencePipeline(model)
            call = lambda p: pipe.transcribe(str(p), batch_size=8, language="en")  # noqa: E731
        else:
            beam = 5 if config == "fw-beam5" else 1
            call = lambda p: model.transcribe(str(p), beam_size=beam, language="en")  # noqa: E731

        def run_fw(paths):
            out = []
            for p in paths:
                segments, info = call(p)
                out.append(("".join(s.text for s in segments), info.language))  # consumes generator
            return out
        return run_fw
    if config == "openai-whisper":
        import voxa.audio
        from ct2_to_openai_whisper import load_model

        model = load_model(openai_checkpoint(folder))

        def run_openai(paths):
            out = []
            for p in paths:
                audio = voxa.audio.decode(str(p))
                r = model.transcribe(audio, fp16=False, language="en", beam_size=5, best_of=5)
                out.append((r["text"], r["language"]))
            return out
        return run_openai
    raise SystemExit(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")


def run_child(config: str, eval_dir: Path) -> dict:
    import voxa.registry as R

    items, (_, folder) = load_subset(eval_dir), R.resolve(MODEL)
    paths = [p for _, p, _ in items]
    if config == "openai-whisper":
        openai_checkpoint(folder)  # one-off conversion, not part of load time
    t0 = time.perf_counter()
    run = make_runner(config, folder)
    load_s = time.perf_counter() - t0
    run(paths[:1])  # warm-up, not counted
    t0 = time.perf_counter()
    out = run(paths)
    wall_s = time.perf_counter() - t0
    return {
        "config": config, "load_s": load_s, "wall_s": wall_s,
        "rss_mb": common.peak_rss_mb(),
        "hyps": {uid: text for (uid, _, _), (text, _) in zip(items, out)},
        "languages": sorted({lang for _, lang in out}),
    }


# ---------------------------------------------------------------- parent
def machine_facts() -> list[str]:
    return common.machine_facts(("voxa", "ctranslate2", "faster-whisper", "torch", "openai-whisper"))


def wer(refs: list[str], hyps: list[str]) -> float:
    from voxa.evaluate import wer as corpus_wer

    return 100 * corpus_wer(refs, hyps)


def spawn(config: str, eval_dir: Path) -> dict:
    return common.spawn(Path(__file__).resolve(), config, ["--eval-dir", str(eval_dir)])


def render(results: list[dict], items, audio_s: float, command: str) -> str:
    refs = {uid: ref for uid, _, ref in items}
    by = {r["config"]: r for r in results if "error" not in r}
    for r in by.values():
        r["wer"] = wer([refs[u] for u in refs], [r["hyps"].get(u, "") for u in refs])

    speedup = lambda r, base: f"{by[base]['wall_s'] / r['wall_s']:.2f}×" if base in by else "–"  # noqa: E731

    rows = ["| configuration | WER % | wall s | RTF | throughput ×RT | vs openai-whisper | vs fw beam 5 "
            "| peak RSS MB | load s |", "|" + "---|" * 9]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['config']} | failed: {r['error']} |" + " |" * 7)
            continue
        rows.append(
            f"| {r['config']} | {r['wer']:.2f} | {r['wall_s']:.1f} | {r['wall_s'] / audio_s:.4f} "
            f"| {audio_s / r['wall_s']:.1f} | {speedup(r, 'openai-whisper')} | {speedup(r, 'fw-beam5')} "
            f"| {r['rss_mb']:.0f} | {r['load_s']:.2f} |")
    table = "\n".join(rows)

    verdict = []
    peers = [by[p]["wer"] for p in PEERS if p in by]
    for name in ("voxa", "voxa-auto"):
        if name not in by:
            continue
        r, checks = by[name], []
        for base, need in (("fw-beam5", 3.0), ("openai-whisper", 9.0)):
            x = by[base]["wall_s"] / r["wall_s"] if base in by else None
            checks.append(f"throughput ≥ {need:g}× {base}: " + ("not measured in this run" if x is None else
                          f"{x:.2f}× → **{'met' if x >= need else 'NOT met'}**"))
        if peers:
            best = min(peers)
            ok = r["wer"] <= best + 0.3 + 1e-9
            checks.append(f"WER ≤ best peer ({best:.2f}) + 0.3 = {best + 0.3:.2f}: {r['wer']:.2f} "
                          f"→ **{'met' if ok else 'NOT met'}**")
        langs = ", ".join(r.get("languages", []))
        verdict.append(f"- `{name}` (languages seen: {langs}):\n" + "\n".join(f"  - {c}" for c in checks))

    notes = "\n".join(f"- `{k}`: {v}" for k, v in CONFIGS.items() if k in {r["config"] for r in results})
    return f"""# ASR benchmark: voxa vs faster-whisper vs openai-whisper ({MODEL})

Date: {datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}

Reproduce (from the repository root): `{command}`

{chr(10).join(machine_facts())}

Data: {len(items)} LibriSpeech test-other utterances ({SUBSET}), {audio_s:.1f} s of audio in total.
All rows use the same whisper-base weights; CTranslate2 rows run int8 on CPU with default thread
settings. Each row ran in its own subprocess; wall time is for all {len(items)} files after one
uncounted warm-up call on one file; load time is separate. WER is corpus-level (jiwer) after
Whisper's English normaliser. Speed-ups are throughput ratios (wall-time ratios).

{notes}

{table}

Targets (project): voxa ≥ 3× plain faster-whisper beam 5 throughput and ≥ 9× openai-whisper's,
with WER no more than 0.3 points above the best peer configuration ({", ".join(PEERS)}).

{chr(10).join(verdict) or "- voxa was not run."}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of: {', '.join(CONFIGS)}")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/asr.md"))
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    ap.add_argument("--run", help="(internal) run one configuration in this process")
    ap.add_argument("--json", action="store_true", help="(with --run) print the result as one JSON line")
    args = ap.parse_args(argv)

    if not (folder := args.eval_dir / SUBSET / TRANS).is_file():
        sys.exit(f"eval data missing: {folder} not found (pass --eval-dir)")
    if args.run:
        res = run_child(args.run, args.eval_dir)
        print(json.dumps(res if args.json else {k: v for k, v in res.items() if k != "hyps"}))
        return 0

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown config(s): {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    items = load_subset(args.eval_dir)
    if not items:
        sys.exit(f"eval data missing: no audio for the references in {folder}")
    import voxa.audio

    audio_s = sum(voxa.audio.decode(str(p)).size for _, p, _ in items) / voxa.audio.SAMPLE_RATE
    results = [spawn(c, args.eval_dir) for c in configs]
    command = common.command("benchmarks/asr.py", argv)
    return common.write_report(args.out, render(results, items, audio_s, command), results)


if __name__ == "__main__":
    sys.exit(main())
