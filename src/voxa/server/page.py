"""GET /: the web page (plain HTML and JavaScript in the package, nothing from a CDN) to
upload or record audio and transcribe it, and to type text and hear it."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page():
    return files("voxa.server").joinpath("static/index.html").read_text(encoding="utf-8")
