"""What a batch is made of: a folder, a glob, or a manifest (.txt, .csv, .jsonl) of local files.

Every input becomes an absolute path and an output stem: its path relative to the inputs'
common folder, without the extension (``talks/day1/a.flac`` -> ``talks/day1/a``), so a corpus's
folder layout is kept under ``--out``. Two inputs that would share a stem (``a.wav`` and
``a.mp3``) keep their extensions instead. ``file://`` URLs are local files; other URLs are
refused (voxa reads local files only).
"""

from __future__ import annotations

import csv
import glob
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import InputError

AUDIO = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mp4", ".mkv", ".mov", ".wma",
         ".aif", ".aiff", ".au", ".amr", ".3gp", ".sph"}
MANIFESTS = {".txt", ".csv", ".jsonl"}


def _local(entry: str, base: Path) -> Path:
    entry = entry.strip()
    url = urlparse(entry)
    if url.scheme == "file":
        return Path(unquote(url.path))
    if url.scheme and len(url.scheme) > 1:  # not a Windows drive letter
        raise InputError(f"{entry}: only local files (paths or file:// URLs) can be transcribed in a batch")
    p = Path(entry).expanduser()
    return p if p.is_absolute() else base / p


def _manifest(path: Path) -> list[Path]:
    base = path.parent
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: not JSON ({e.msg})") from None
                entry = row.get("path") or row.get("audio") or row.get("url") if isinstance(row, dict) else row
                if not isinstance(entry, str):
                    raise InputError(f"{path}:{n}: give each line a \"path\"")
                out.append(_local(entry, base))
        return out
    if path.suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        head = [h.strip().lower() for h in rows[0]]
        col = next((head.index(k) for k in ("path", "audio", "file", "url") if k in head), None)
        body = rows[1:] if col is not None else rows
        return [_local(r[col or 0], base) for r in body if r and r[col or 0].strip()]
    return [_local(line, base) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def expand(source: str) -> list[tuple[Path, str]]:
    """(absolute path, output stem) for every input, sorted by path."""
    p = Path(source).expanduser()
    if p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO and not f.name.startswith(".")]
        root = Path(os.path.abspath(p))
    elif p.is_file() and p.suffix.lower() in MANIFESTS:
        files = _manifest(p)
        root = None
    elif p.is_file():
        files, root = [p], None
    else:
        files = [Path(f) for f in glob.glob(os.path.expanduser(source), recursive=True) if Path(f).is_file()]
        if not files:
            raise InputError(f"{source}: no such folder, manifest or file, and no files match it")
        root = None
    files = sorted({Path(os.path.abspath(f)) for f in files})  # links stay inputs of their own
    if not files:
        raise InputError(f"{source}: no audio files found")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: no such file" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if root is None:
        root = Path(os.path.commonpath([f.parent for f in files]))
    stems = [f.relative_to(root).with_suffix("").as_posix() for f in files]
    clash = {s for s in stems if stems.count(s) > 1}
    return [(f, f.relative_to(root).as_posix() if s in clash else s) for f, s in zip(files, stems)]
