"""What every benchmark script shares: the machine it ran on, and running one row of the
table in its own subprocess (so peak RSS belongs to that row alone)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def machine_facts(libs: tuple[str, ...]) -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), []))
    # CTranslate2 and onnxruntime pick kernels by these; the words of int8 models differ with them
    simd = next((f for f in ("avx512_vnni", "avx512f", "avx2", "avx") if f in flags), "no AVX")
    cpu = f"{cpu} ({simd})"
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True).stdout
    commit = (git.stdout.strip() + (" + uncommitted changes in src/" if dirty.strip() else "")
              if git.returncode == 0 else "none (repository has no commits yet)")
    load = os.getloadavg()
    return [
        f"- CPU: {cpu}, `nproc` = {os.cpu_count()}, RAM {mem / 1024**2:.1f} GiB; "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"- Python {platform.python_version()} ({platform.system()} {platform.machine()}); "
        + ", ".join(f"{d} {version(d)}" for d in libs),
        f"- voxa git commit: {commit}",
    ]


def command(script: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run, for the report."""
    import shlex

    return shlex.join(["python", script, *(argv if argv is not None else sys.argv[1:])])


def write_report(out: Path, report: str, rows: list[dict]) -> int:
    """Write the Markdown report (relative paths are from the repository root), print it,
    and return the exit code: 1 if any row failed."""
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    print(f"wrote {out}", file=sys.stderr)
    return 0 if all("error" not in r for r in rows) else 1


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: that survives exec, so a
    row would be charged with its parent's memory at fork time."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024


def spawn(script: Path, config: str, extra: list[str], key: str = "wall_s") -> dict:
    """Run ``script --run CONFIG --json *extra`` and return its last JSON line (or an error row)."""
    cmd = [sys.executable, str(script), "--run", config, "--json", *extra]
    print(f"[{config}] running ...", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:  # keep going; the row says what went wrong
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"[{config}] FAILED (exit {p.returncode}):\n{p.stderr[-3000:]}", file=sys.stderr)
        return {"config": config, "error": tail}
    row = json.loads(lines[-1])
    print(f"[{config}] {row.get(key, 0):.2f} s", file=sys.stderr, flush=True)
    return row
