"""Transcript writers: txt, srt, vtt, json, tsv (and rttm once speakers are known).

Each writer turns a Transcript into a string; ``write()`` puts one file per format next to
each other in an output folder, atomically (temp name, then rename), so a crash never leaves a
half-written transcript behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import InputError, OutputError
from .types import Transcript, uri_of


def _ts(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _label(seg) -> str:
    return f"[{seg.speaker}] " if seg.speaker else ""


def to_txt(t: Transcript) -> str:
    return "\n".join(_label(s) + s.text.strip() for s in t.segments if s.text.strip()) + "\n"


def to_srt(t: Transcript) -> str:
    blocks = []
    for n, s in enumerate((s for s in t.segments if s.text.strip()), 1):
        blocks.append(f"{n}\n{_ts(s.start, ',')} --> {_ts(s.end, ',')}\n{_label(s)}{s.text.strip()}\n")
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    out = ["WEBVTT\n"]
    for s in t.segments:
        if s.text.strip():
            text = f"<v {s.speaker}>{s.text.strip()}" if s.speaker else s.text.strip()
            out.append(f"{_ts(s.start, '.')} --> {_ts(s.end, '.')}\n{text}\n")
    return "\n".join(out)


def to_json(t: Transcript) -> str:
    return json.dumps(t.to_dict(), ensure_ascii=False, indent=2) + "\n"


def to_tsv(t: Transcript) -> str:
    """Like openai-whisper's tsv: start and end in integer milliseconds, then text."""
    rows = ["start\tend\ttext"]
    for s in t.segments:
        if s.text.strip():
            text = (_label(s) + s.text.strip()).replace("\t", " ")
            rows.append(f"{int(round(s.start * 1000))}\t{int(round(s.end * 1000))}\t{text}")
    return "\n".join(rows) + "\n"


def to_rttm(t: Transcript) -> str:
    uri = uri_of(t.source)
    if t.speakers is not None:  # the diarization's own turns, overlaps included
        return t.speakers.to_rttm(uri)
    rows = []
    for s in t.segments:
        if s.speaker:
            rows.append(f"SPEAKER {uri} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> {s.speaker} <NA> <NA>")
    return "\n".join(rows) + ("\n" if rows else "")


WRITERS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json, "tsv": to_tsv, "rttm": to_rttm}
ALL = ("txt", "srt", "vtt", "json", "tsv")


def parse(formats: str) -> list[str]:
    """'srt,json' or 'all' -> list of format names; unknown names are an error."""
    names = [f.strip().lower() for f in formats.split(",") if f.strip()]
    if "all" in names:
        return list(ALL)
    bad = [n for n in names if n not in WRITERS]
    if bad or not names:
        raise InputError(f"unknown output format {','.join(bad) or formats!r}; choose from {', '.join(WRITERS)} or all")
    return names


def render(t: Transcript, fmt: str) -> str:
    return WRITERS[fmt](t)


def check_dir(out_dir: str | os.PathLike) -> Path:
    """Create the output folder if needed and make sure it is writable."""
    d = Path(out_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{d}: cannot create output folder ({e.strerror})") from None
    if not d.is_dir() or not os.access(d, os.W_OK):
        raise OutputError(f"{d}: output folder is not writable")
    return d


def write(t: Transcript, out_dir: str | os.PathLike, formats: list[str], stem: str) -> list[Path]:
    d = check_dir(out_dir)
    written = []
    for fmt in formats:
        path = d / f"{stem}.{fmt}"
        tmp = d / f".{stem}.{fmt}.tmp-{os.getpid()}"
        try:
            tmp.write_text(render(t, fmt), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{path}: cannot write ({e.strerror})") from None
        written.append(path)
    return written
