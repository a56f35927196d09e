"""voxa's HTTP server: an OpenAI-compatible audio API on FastAPI + uvicorn.

One router per endpoint (in the manner of Speaches): ``transcriptions.py`` (POST
/v1/audio/transcriptions and /translations), ``speech.py`` (POST /v1/audio/speech), ``models.py``
(GET /v1/models), ``listen.py`` (WS /v1/listen, live recognition), ``watermark.py`` (POST
/v1/audio/watermark/detect), ``metrics.py`` (GET /metrics), ``page.py`` (GET /, the web page). Errors use OpenAI's JSON shape
(``errors.py``) so the official ``openai`` client raises its usual exceptions. Safe defaults
(``config.py``): loopback bind, a non-loopback bind refused without API keys, Bearer-token auth
when keys are set, size and time limits. Around the routes: ``guard.py`` (Host and Origin
checks), ``queue.py`` (a bounded queue per model: 429 when full), ``transport.py`` (uvicorn
with header/read timeouts and pings that never end a stream).

    voxa serve                      # http://127.0.0.1:8000
    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request

from .. import __version__
from ..safety.audit import key_id
from .config import ServerConfig, header_token
from .errors import install, respond
from .guard import Guard
from .queue import ModelQueues
from .transport import uvicorn_config

OPEN_PATHS = {"/health", "/", "/agent"}  # the page itself asks for the key


def create_app(config: ServerConfig | None = None) -> FastAPI:
    from . import agent, listen, metrics, models, page, realtime, speech, telephony, transcriptions, watermark

    from .. import asr, registry

    config = config or ServerConfig()

    @asynccontextmanager
    async def lifespan(_app):
        # the pool that runs sync routes, file reads and decoding (anyio's; 40 by default)
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.worker_threads
        service = None
        if config.wyoming:  # Wyoming on its own port, on this loop, sharing models and decoders
            from . import wyoming
            from .listen import _scheduler

            host, port = wyoming.parse_address(config.wyoming)
            settings = wyoming.settings_from(config, allow=config.wyoming_allow,
                                             scheduler_of=lambda engine: _scheduler(_app, engine),
                                             voice=config.agent.voice,
                                             streams=_app.state.__dict__.setdefault("streams", set()))
            service = await wyoming.start(settings, host, port, zeroconf=config.wyoming_zeroconf)
        yield
        if service is not None:
            service.close()

    app = FastAPI(title="voxa", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.config = config
    for name, folder in config.models.items():  # the operator's own models, by name
        registry.add_local(name, folder)
    asr.MAX_MODELS = config.max_models
    install(app)

    @app.middleware("http")
    async def auth(request: Request, call_next):
        token = header_token(request.headers.get("authorization", ""))
        if config.api_keys and request.url.path not in OPEN_PATHS:
            if not config.accepts(token):
                return respond(401, "missing or wrong API key: send Authorization: Bearer <key>", "invalid_api_key")
        # who asked, for the audit log: the key's id (never the key), else the client's address
        request.state.actor = key_id(token) if config.api_keys and token else \
            f"client:{request.client.host if request.client else 'unknown'}"
        return await call_next(request)

    @app.get("/health")
    async def health():  # on the event loop: it never waits for a worker thread
        return {"status": "ok", "version": __version__}

    app.include_router(speech.router)
    app.include_router(models.router)
    app.include_router(transcriptions.router)
    app.include_router(listen.router)
    app.include_router(metrics.router)
    app.include_router(page.router)
    app.include_router(watermark.router)
    app.include_router(agent.router)
    app.include_router(telephony.router)
    app.include_router(realtime.router)
    app.state.metrics = metrics.install(app)
    app.state.queues = ModelQueues(config.max_queue, lambda name, n: app.state.metrics.queued.labels(name).set(n))
    app.add_middleware(Guard, config=config)  # before the routes: Host, Origin, body size
    return app


def serve(config: ServerConfig, *, preload_agent: bool = False) -> None:
    """Run the server in this process until interrupted (``preload_agent``: load the voice
    agent's models before accepting connections, not at its first session)."""
    import uvicorn

    from .. import allocator

    config.check_bind()
    allocator.tune()  # before the worker threads exist (they would keep arenas of their own)
    app = create_app(config)
    if preload_agent:
        from ..agent import Agent

        app.state.agent = Agent(config.agent)
    uvicorn.Server(uvicorn_config(app, config, host=config.host, port=config.port)).run()


def serve_in_background(app: FastAPI, *, timeout: float = 10.0) -> str:
    """Run ``app`` (this server's, or any ASGI app) on a free loopback port in a daemon thread;
    returns its base URL once it accepts connections. For tests, benchmarks and notebooks."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = getattr(getattr(app, "state", None), "config", None) or ServerConfig()
    server = uvicorn.Server(uvicorn_config(app, config, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"
