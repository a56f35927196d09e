"""``voxa serve``: the OpenAI-compatible HTTP server (a thin shell over voxa.server)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..errors import VoxaError
from . import app, fail, out

# options shared by `voxa serve` and `voxa agent`
HOST = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs an API key.")
PORT = typer.Option(8000, "--port", min=1, max=65535)
API_KEY = typer.Option(None, "--api-key", help="Accepted Bearer token (repeatable); also VOXA_API_KEYS=a,b. "
                                              "Blank keys are ignored.")
ALLOWED_HOST = typer.Option(None, "--allowed-host", help="Host name clients may use besides the bound address "
                                                        "(repeatable, * for any); also VOXA_ALLOWED_HOSTS.")
ALLOWED_ORIGIN = typer.Option(None, "--allowed-origin", help="Web origin (https://app.example.com) whose pages "
                                                            "may call the server (repeatable, * for any); also "
                                                            "VOXA_ALLOWED_ORIGINS.")


WYOMING_ALLOW = typer.Option(None, "--wyoming-allow", help="Address or network (192.168.1.0/24, * for any) "
                             "that may use Wyoming besides this machine (repeatable; needed to bind beyond loopback).")
ZEROCONF = typer.Option(False, "--zeroconf", help="Announce Wyoming on the network (_wyoming._tcp), "
                        "so Home Assistant finds it (needs the zeroconf package).")


def server_config(host: str, port: int, api_key, allowed_host, allowed_origin, **settings):
    """A checked ServerConfig from command-line options (raises VoxaError)."""
    from ..server.config import ServerConfig

    config = ServerConfig(host=host, port=port, **settings)
    if api_key:
        config.api_keys = tuple(api_key)
    if allowed_host:
        config.allowed_hosts = tuple(allowed_host)
    if allowed_origin:
        config.allowed_origins = tuple(allowed_origin)
    config.check_bind()
    return config


def _models(pairs: list[str]) -> dict[str, str]:
    from ..errors import InputError
    from ..registry import add_local

    out = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise InputError(f"--model takes NAME=FOLDER, not {pair!r}")
        add_local(name.strip(), folder.strip())  # checks the folder now, not at the first request
        out[name.strip()] = folder.strip()
    return out


def _voice_map(pairs: list[str]) -> dict[str, str]:
    """--voice-map OPENAI=VOICE pairs, each checked now: an OpenAI name, and an installed voice."""
    from ..errors import InputError
    from ..tts.engine import resolve
    from ..tts.openai_voices import NAMES, is_openai

    out = {}
    for pair in pairs:
        name, sep, voice = (x.strip() for x in pair.partition("="))
        if not sep or not name or not voice:
            raise InputError(f"--voice-map takes OPENAI_NAME=VOICE, not {pair!r}")
        if not is_openai(name):
            raise InputError(f"--voice-map: {name!r} is not an OpenAI voice name ({', '.join(NAMES)})")
        info = resolve(voice)
        if not info.installed:
            raise InputError(f"--voice-map: voice {info.id} is not installed")
        out[name.lower()] = info.id
    return out


@app.command()
def serve(
    host: str = HOST,
    port: int = PORT,
    api_key: Optional[List[str]] = API_KEY,
    allowed_host: Optional[List[str]] = ALLOWED_HOST,
    allowed_origin: Optional[List[str]] = ALLOWED_ORIGIN,
    model: Optional[List[str]] = typer.Option(None, "--model", help="Offer a local CTranslate2 folder under a "
                                             "name: NAME=FOLDER (repeatable)."),
    max_text_chars: int = typer.Option(4096, "--max-text-chars", min=1, help="Longest speech request."),
    max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", min=0.01, help="Largest upload."),
    max_audio_s: float = typer.Option(4 * 3600.0, "--max-audio-s", min=1.0, help="Longest audio per transcription."),
    max_queue: int = typer.Option(8, "--max-queue", min=0, help="Requests waiting per model before 429."),
    max_models: int = typer.Option(3, "--max-models", min=1, help="Whisper models kept loaded."),
    max_streams: int = typer.Option(16, "--max-streams", min=1, help="Live streams at once."),
    voice_map: Optional[List[str]] = typer.Option(None, "--voice-map", help="Map an OpenAI voice name to an "
                                                  "installed voice, e.g. alloy=piper:joe (repeatable)."),
    wyoming: Optional[str] = typer.Option(None, "--wyoming", help="Also serve Wyoming (Home Assistant: speech "
                                          "to text, text to speech, wake words) on [HOST:]PORT, e.g. 10300."),
    wyoming_allow: Optional[List[str]] = WYOMING_ALLOW,
    zeroconf: bool = ZEROCONF,
):
    """Serve the OpenAI-compatible audio API, the web page and the voice agent over HTTP."""
    from ..server import serve as run

    try:
        config = server_config(host, port, api_key, allowed_host, allowed_origin, models=_models(model or []),
                               max_text_chars=max_text_chars, max_upload_mb=max_upload_mb, max_audio_s=max_audio_s,
                               max_queue=max_queue, max_models=max_models, max_streams=max_streams,
                               voice_map=_voice_map(voice_map or []), wyoming=wyoming,
                               wyoming_allow=tuple(wyoming_allow or ()), wyoming_zeroconf=zeroconf)
    except VoxaError as e:
        fail(str(e))
    run(config)


@app.command("wyoming")
def wyoming_only(
    address: str = typer.Argument("10300", help="[HOST:]PORT to serve on (default 127.0.0.1:10300)."),
    wyoming_allow: Optional[List[str]] = WYOMING_ALLOW,
    zeroconf: bool = ZEROCONF,
    stream_model: str = typer.Option("tiny.en", "--model", "-m", help="Whisper model when a request names none."),
    voice: Optional[str] = typer.Option(None, "--voice", help="Voice when a request names none."),
):
    """Serve only Wyoming, for Home Assistant: speech to text, text to speech and wake words."""
    import asyncio

    from ..registry import known
    from ..server import wyoming as wy

    try:
        host, port = wy.parse_address(address)
        wy.check_bind(host, tuple(wyoming_allow or ()))
        if known(stream_model, "asr") is None:
            fail(f"unknown model {stream_model!r} (voxa models lists them)")
        settings = wy.Settings(stream_model=stream_model, voice=voice, allow=tuple(wyoming_allow or ()))

        out.print(f"Wyoming on tcp://{host}:{port} (add it in Home Assistant: Settings > Devices & services > "
                  f"Add integration > Wyoming Protocol)", markup=False)
        asyncio.run(wy.serve_forever(settings, host, port, zeroconf=zeroconf))
    except VoxaError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot serve Wyoming on {address}: {e.strerror or e}")
    except KeyboardInterrupt:
        raise typer.Exit(130)
