"""POST /v1/audio/watermark/detect: is an upload voxa's synthetic speech, and which synthesis?

Multipart ``file``; answers ``{present, confidence, payload, duration, watermark, record, note}``
(:func:`voxa.safety.detect.detect`). The upload size limit of transcription applies, and its own
duration cap, ``max_watermark_s`` (10 minutes), enforced while decoding: detection keeps the
audio at 8 kHz, about 2 MB a minute. Detections wait in their own queue (``watermark``), like a
model's transcriptions.
"""

from __future__ import annotations

from fastapi import APIRouter, File, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ..safety.detect import detect
from .transcriptions import read_audio

router = APIRouter()


@router.post("/v1/audio/watermark/detect")
async def watermark_detect(request: Request, file: UploadFile = File(...)):
    config = request.app.state.config
    async with request.app.state.queues.turn("watermark"):
        data = await read_audio(file, config, max_s=config.max_watermark_s)
        return (await run_in_threadpool(detect, data, max_seconds=config.max_watermark_s)).to_dict()
