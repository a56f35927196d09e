"""``voxa serve``: the OpenAI-compatible HTTP server (a thin shell over voxa.server)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..errors import InputError
from . import app, fail


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs an API key."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    api_key: Optional[List[str]] = typer.Option(None, "--api-key", help="Accepted Bearer token (repeatable); also VOXA_API_KEYS=a,b."),
    max_text_chars: int = typer.Option(4096, "--max-text-chars", min=1, help="Longest speech request."),
):
    """Serve the OpenAI-compatible audio API (speech, models) over HTTP."""
    from ..server import serve as run
    from ..server.config import ServerConfig

    config = ServerConfig(host=host, port=port, max_text_chars=max_text_chars)
    if api_key:
        config.api_keys = tuple(api_key)
    try:
        config.check_bind()
    except InputError as e:
        fail(str(e))
    run(config)
