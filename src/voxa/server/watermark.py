"""POST /v1/audio/watermark/detect: is an upload voxa's synthetic speech, and which synthesis?

Multipart ``file``; answers ``{present, confidence, payload, duration, watermark, record, note}``
(:func:`voxa.safety.detect.detect`). The upload limits of transcription apply.
"""

from __future__ import annotations

from fastapi import APIRouter, File, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ..safety.detect import detect
from .transcriptions import read_audio

router = APIRouter()


@router.post("/v1/audio/watermark/detect")
async def watermark_detect(request: Request, file: UploadFile = File(...)):
    data = await read_audio(file, request.app.state.config)
    return (await run_in_threadpool(detect, data)).to_dict()
