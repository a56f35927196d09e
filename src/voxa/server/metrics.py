"""GET /metrics in Prometheus' text format (prometheus-client): requests, latency, audio
seconds processed, real-time factor, active streams. One registry per app, so several apps
in one process (tests) do not collide."""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

router = APIRouter()


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("voxa_requests", "HTTP requests", ["path", "status"], registry=r)
        self.latency = Histogram("voxa_request_seconds", "HTTP request latency (until the response starts)",
                                 ["path"], registry=r,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.audio = Counter("voxa_audio_seconds", "Seconds of audio processed", ["kind"], registry=r)
        self.rtf = Histogram("voxa_real_time_factor", "Processing time / audio duration", ["kind"], registry=r,
                             buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2))
        self.active_streams = Gauge("voxa_active_streams", "Open streaming sessions", registry=r)
        self.agent_sessions = Gauge("voxa_agent_sessions", "Open voice-agent sessions", registry=r)
        self.queued = Gauge("voxa_model_queue", "Requests running or waiting for a model (queue.py)", ["model"],
                            registry=r)
        self.agent_turns = Counter("voxa_agent_turns", "Voice-agent turns answered", registry=r)
        self.agent_latency = Histogram(
            "voxa_agent_latency_seconds", "Per turn, from the end of the user's speech to: the turn decision, "
            "the ASR final, the LLM's first token, the TTS's first audio, the first bot audio sent (voice_to_voice)",
            ["stage"], registry=r, buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.25, 1.5, 2, 3, 5))

    def observe_audio(self, kind: str, seconds: float, wall: float) -> None:
        if seconds > 0:
            self.audio.labels(kind).inc(seconds)
            self.rtf.labels(kind).observe(wall / seconds)


def install(app: FastAPI) -> Metrics:
    m = Metrics()

    @app.middleware("http")
    async def measure(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        # the route's template, not the raw URL: unknown paths must not grow the label set
        path = getattr(request.scope.get("route"), "path", None) or "other"
        m.requests.labels(path, str(response.status_code)).inc()
        m.latency.labels(path).observe(time.perf_counter() - t0)
        return response

    return m


@router.get("/metrics")
def metrics(request: Request):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
