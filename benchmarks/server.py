"""Server hardening benchmark: what one hostile request costs the server, and whether the rest
of the server stays responsive while model work queues up.

Each row starts a fresh ``voxa serve`` in its own process, warms it with a small request of the
same kind, then sends the request and reads the server process's peak resident memory
(VmHWM) before and after: the difference is what that one request cost.

- ``wm-10min``: POST /v1/audio/watermark/detect, 10 minutes of quiet noise (FLAC).
- ``wm-3.5h-silence``: the same endpoint, 3.5 hours of silence in a 0.15 MB FLAC whose header
  gives no length (issue 20: +20 GB in 50 s). Skipped for a tree without a detection cap unless
  ``--unsafe``: it would take most of this machine's memory.
- ``clone-2h``: POST /v1/audio/speech/clone, a 2-hour reference and no consent (+900 MB before).
- ``asr-5h-silence``: POST /v1/audio/transcriptions, 5 hours of silence in a header-less FLAC
  (decoded in full before, past the 4-hour cap).
- ``queue-100``: 100 transcriptions of a 30 s LibriSpeech clip sent at once, while /health and
  /v1/models are polled every 0.2 s: their latency (p50 / p90 / max), and how the 100 ended.
- ``queue-100-deep``: the same with ``--max-queue 100``, so that all 100 wait their turn (a tree
  without the setting runs it as ``queue-100``).

``--compare REF`` runs every row on the tree at git revision REF too (a temporary worktree),
in the same run, for a before/after table. No peer server runs here: Speaches and the other
OpenAI-compatible servers fetch their models from a hub.

    python benchmarks/server.py [--compare 1a2b3c4] [--rows wm-10min,queue-100] [--out benchmarks/results/server.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

ROOT = common.ROOT
EVAL = Path(os.environ.get("VOXA_EVAL_DIR", ROOT.parent / "shared" / "eval"))
ROWS = ("wm-10min", "wm-3.5h-silence", "clone-2h", "asr-5h-silence", "queue-100", "queue-100-deep")


# --------------------------------------------------------------------------- inputs
def flac(samples: np.ndarray) -> bytes:
    """FLAC written to a pipe: its header gives no length (as in issue 20's reproductions)."""
    import av

    buf = _Sink()
    with av.open(buf, "w", format="flac") as oc:
        st = oc.add_stream("flac", rate=16000, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for i in range(0, pcm.size, 16000 * 60):
            frame = av.AudioFrame.from_ndarray(pcm[i:i + 16000 * 60].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = 16000
            for p in st.encode(frame):
                oc.mux(p)
        for p in st.encode(None):
            oc.mux(p)
    return buf.data()


class _Sink:
    def __init__(self):
        self.parts = []

    def write(self, b):
        self.parts.append(bytes(b))
        return len(b)

    def data(self) -> bytes:
        return b"".join(self.parts)


def silence(seconds: float) -> bytes:
    return flac(np.zeros(int(16000 * seconds), np.float32))


def noise(seconds: float) -> bytes:
    return flac(np.random.default_rng(0).normal(0, 0.003, int(16000 * seconds)).astype(np.float32))


def speech_clip(seconds: float) -> bytes:
    from voxa import audio

    folder = EVAL / "librispeech-test-other-Resemblyzer"
    parts, n = [], 0
    for f in sorted(folder.glob("*.flac")):
        parts.append(audio.decode(f))
        n += parts[-1].size
        if n >= seconds * 16000:
            break
    return audio.encode(np.concatenate(parts)[: int(seconds * 16000)], 16000, "flac")


# --------------------------------------------------------------------------- one server
class Server:
    """``voxa serve`` from the source tree ``src`` in its own process, on a free port."""

    def __init__(self, src: Path, home: Path, extra: tuple[str, ...] = ()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(src), VOXA_HOME=str(home), VOXA_API_KEYS="",
                   VOXA_SAFETY_DB=f"sqlite:///{home}/safety-{uuid.uuid4().hex[:6]}.db", VOXA_AUDIT_KEY="ab" * 32)
        self.proc = subprocess.Popen([sys.executable, "-m", "voxa.cli", "serve", "--port", str(self.port), *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(600):
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode()[-2000:])
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def peak_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def post(url: str, fields: dict, files: dict, timeout: float = 3600) -> tuple[int, dict]:
    b = uuid.uuid4().hex
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts += [f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
              for k, (name, data) in files.items()]
    req = urllib.request.Request(url, data=b"".join(parts) + f"--{b}--\r\n".encode(), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, {}


# --------------------------------------------------------------------------- rows
def one_request(src: Path, home: Path, path: str, fields: dict, warm: tuple[str, bytes], big: tuple[str, bytes]) -> dict:
    server = Server(src, home)
    try:
        post(server.url + path, fields, {warm[0]: ("warm.flac", warm[1])})
        before = server.peak_mb()
        t0 = time.perf_counter()
        status, body = post(server.url + path, fields, {big[0]: ("big.flac", big[1])})
        wall = time.perf_counter() - t0
        alive = urllib.request.urlopen(server.url + "/health", timeout=30).status == 200
        err = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        return {"status": status, "code": err.get("code", ""), "wall_s": wall, "peak_delta_mb": server.peak_mb() - before,
                "upload_mb": len(big[1]) / 1e6, "alive": alive}
    finally:
        server.close()


def queue_row(src: Path, home: Path, n: int = 100, extra: tuple[str, ...] = ()) -> dict:
    server = Server(src, home, extra)
    clip = speech_clip(30)
    try:
        post(server.url + "/v1/audio/transcriptions", {"model": "whisper-1"}, {"file": ("w.flac", clip)})
        lat = {"/health": [], "/v1/models": []}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                for path in lat:
                    t0 = time.perf_counter()
                    try:
                        urllib.request.urlopen(server.url + path, timeout=600).read()
                        lat[path].append(time.perf_counter() - t0)
                    except OSError:
                        lat[path].append(float("inf"))
                time.sleep(0.2)

        poller = threading.Thread(target=poll, daemon=True)
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(post, server.url + "/v1/audio/transcriptions", {"model": "whisper-1"},
                                   {"file": ("talk.flac", clip)}) for _ in range(n)]
            time.sleep(0.5)
            poller.start()
            statuses = [f.result()[0] for f in futures]
        wall = time.perf_counter() - t0
        stop.set()
        poller.join(700)
        row = {"wall_s": wall, "ok": statuses.count(200), "busy_429": statuses.count(429),
               "other": len(statuses) - statuses.count(200) - statuses.count(429)}
        for path, xs in lat.items():
            xs = sorted(xs) or [float("nan")]
            row[path] = {"p50": statistics.median(xs), "p90": xs[int(0.9 * (len(xs) - 1))], "max": xs[-1], "n": len(xs)}
        return row
    finally:
        server.close()


def run_row(name: str, src: Path, home: Path) -> dict:
    if name == "wm-10min":
        return one_request(src, home, "/v1/audio/watermark/detect", {}, ("file", noise(5)), ("file", noise(600)))
    if name == "wm-3.5h-silence":
        return one_request(src, home, "/v1/audio/watermark/detect", {}, ("file", noise(5)), ("file", silence(3.5 * 3600)))
    if name == "clone-2h":
        return one_request(src, home, "/v1/audio/speech/clone", {"input": "Hello.", "consent_id": "none"},
                           ("reference", noise(5)), ("reference", silence(7200)))
    if name == "asr-5h-silence":
        return one_request(src, home, "/v1/audio/transcriptions", {"model": "whisper-1"},
                           ("file", speech_clip(5)), ("file", silence(5 * 3600)))
    if name == "queue-100":
        return queue_row(src, home)
    if name == "queue-100-deep":
        deep = "max_queue" in (src / "voxa" / "server" / "config.py").read_text()
        return queue_row(src, home, extra=("--max-queue", "100") if deep else ())
    raise SystemExit(f"unknown row {name}")


def has_detection_cap(src: Path) -> bool:
    return "max_watermark_s" in (src / "voxa" / "server" / "config.py").read_text()


# --------------------------------------------------------------------------- report
def fmt_one(r: dict | None) -> str:
    if r is None:
        return "not run"
    if "skipped" in r:
        return r["skipped"]
    if "error" in r:
        return f"failed: {r['error'][:80]}"
    return (f"{r['status']} {r['code']}".strip() + f", +{r['peak_delta_mb']:.0f} MB peak, {r['wall_s']:.1f} s"
            + ("" if r["alive"] else ", server dead"))


def fmt_queue(r: dict | None) -> str:
    if r is None:
        return "not run"
    if "error" in r:
        return f"failed: {r['error'][:80]}"
    h, m = r["/health"], r["/v1/models"]
    return (f"/health {h['p50'] * 1000:.0f} / {h['p90'] * 1000:.0f} / {h['max'] * 1000:.0f} ms; /v1/models "
            f"{m['p50'] * 1000:.0f} / {m['p90'] * 1000:.0f} / {m['max'] * 1000:.0f} ms; {r['ok']} transcribed, "
            f"{r['busy_429']} got 429, {r['other']} other; {r['wall_s']:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--compare", help="also run every row on this git revision (before/after)")
    ap.add_argument("--unsafe", action="store_true", help="run wm-3.5h-silence on a tree without a detection cap")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/server.md"))
    args = ap.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    trees = {"now": ROOT / "src"}
    tmp = Path(tempfile.mkdtemp(prefix="voxa-bench-"))
    if args.compare:
        subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "ref"), args.compare], cwd=ROOT, check=True,
                       capture_output=True)
        trees = {args.compare: tmp / "ref" / "src", "now": ROOT / "src"}
    home = Path(os.environ.get("VOXA_HOME") or tmp / "home")
    results: dict[str, dict] = {}
    try:
        for row in rows:
            for tree, src in trees.items():
                if row == "wm-3.5h-silence" and not has_detection_cap(src) and not args.unsafe:
                    results[(row, tree)] = {"skipped": "skipped: no detection cap (would take ~20 GB; --unsafe)"}
                    continue
                print(f"[{row} @ {tree}] ...", file=sys.stderr, flush=True)
                try:
                    results[(row, tree)] = run_row(row, src, home)
                except Exception as e:  # noqa: BLE001 - the row says what went wrong
                    results[(row, tree)] = {"error": f"{type(e).__name__}: {e}"}
                print(f"[{row} @ {tree}] {results[(row, tree)]}", file=sys.stderr, flush=True)
    finally:
        if args.compare:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "ref")], cwd=ROOT, capture_output=True)
    names = list(trees)
    lines = ["# Server hardening benchmark", "",
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
             f"Command: `{common.command('benchmarks/server.py', argv)}`", "",
             *common.machine_facts(("fastapi", "uvicorn", "starlette")), "",
             "Each cell: the answer (status and error code), the server's peak resident memory added by that one "
             "request (VmHWM after minus before, the server warmed first), and the request's wall time. "
             "`queue-100`: /health and /v1/models latency p50 / p90 / max while 100 transcriptions of a 30 s "
             "clip (whisper-base) were sent at once.", "",
             "| row | " + " | ".join(f"voxa {n}" for n in names) + " |", "|---|" + "---|" * len(names)]
    for row in rows:
        cells = [(fmt_queue if row.startswith("queue") else fmt_one)(results.get((row, n))) for n in names]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    flat = [v for v in results.values()]
    return common.write_report(args.out, report, flat)


if __name__ == "__main__":
    sys.exit(main())
