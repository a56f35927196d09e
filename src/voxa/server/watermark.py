"""POST /v1/audio/watermark/detect: is an upload voxa's synthetic speech, and which synthesis?

Multipart ``file``; answers ``{present, confidence, payload, duration, watermark, record, note}``
(:func:`voxa.safety.detect.detect`). The upload limits of transcription apply.
"""

from __future__ import annotations

from fastapi import APIRouter, File, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ..audio import probe_duration
from ..safety.detect import detect
from .errors import APIError
from .transcriptions import _read

router = APIRouter()


@router.post("/v1/audio/watermark/detect")
async def watermark_detect(request: Request, file: UploadFile = File(...)):
    config = request.app.state.config
    data = await _read(file, config.max_upload_mb)
    declared = await run_in_threadpool(probe_duration, data)
    if declared is not None and declared > config.max_audio_s:
        raise APIError(413, f"audio is {declared:.0f} s long; the limit is {config.max_audio_s:g} s per request",
                       "audio_too_long", "file")
    return (await run_in_threadpool(detect, data)).to_dict()
