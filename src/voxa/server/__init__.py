"""voxa's HTTP server: an OpenAI-compatible audio API on FastAPI + uvicorn.

One router per endpoint (in the manner of Speaches): ``transcriptions.py`` (POST
/v1/audio/transcriptions and /translations), ``speech.py`` (POST /v1/audio/speech), ``models.py``
(GET /v1/models), ``listen.py`` (WS /v1/listen, live recognition), ``watermark.py`` (POST
/v1/audio/watermark/detect), ``metrics.py`` (GET /metrics), ``page.py`` (GET /, the web page). Errors use OpenAI's JSON shape (``errors.py``) so the official
``openai`` client raises its usual exceptions. Safe defaults (``config.py``): loopback bind,
a non-loopback bind refused without API keys, Bearer-token auth when keys are set, size limits.

    voxa serve                      # http://127.0.0.1:8000
    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from .. import __version__
from ..safety.audit import key_id
from .config import ServerConfig, header_token
from .errors import install, respond

OPEN_PATHS = {"/health", "/", "/agent"}  # the page itself asks for the key


def create_app(config: ServerConfig | None = None) -> FastAPI:
    from . import agent, listen, metrics, models, page, speech, transcriptions, watermark

    config = config or ServerConfig()
    app = FastAPI(title="voxa", version=__version__, docs_url=None, redoc_url=None)
    app.state.config = config
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
    def health():
        return {"status": "ok", "version": __version__}

    app.include_router(speech.router)
    app.include_router(models.router)
    app.include_router(transcriptions.router)
    app.include_router(listen.router)
    app.include_router(metrics.router)
    app.include_router(page.router)
    app.include_router(watermark.router)
    app.include_router(agent.router)
    app.state.metrics = metrics.install(app)
    return app


def serve(config: ServerConfig, *, preload_agent: bool = False) -> None:
    """Run the server in this process until interrupted (``preload_agent``: load the voice
    agent's models before accepting connections, not at its first session)."""
    import uvicorn

    config.check_bind()
    app = create_app(config)
    if preload_agent:
        from ..agent import Agent

        app.state.agent = Agent(config.agent)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")


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
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"
