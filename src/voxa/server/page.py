"""GET /: the web page (plain HTML and JavaScript in the package, nothing from a CDN) to
upload or record audio and transcribe it, and to type text and hear it."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


SPEAKERS = '<label id="speakers" title="who spoke when"><input id="diarize" type="checkbox">'


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page():
    """The page; the "speakers" box is greyed out, saying why, when this server cannot diarize."""
    from ..diarization import missing

    html = files("voxa.server").joinpath("static/index.html").read_text(encoding="utf-8")
    if (lack := missing()) is not None:
        html = html.replace(SPEAKERS, f'<label id="speakers" title="not installed on this server ({lack} is missing): '
                                      'pip install \'voxa[diarize]\'"><input id="diarize" type="checkbox" disabled>')
    return html
