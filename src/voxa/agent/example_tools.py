"""Example tools for the voice agent (``agent.tools = "voxa.agent.example_tools"``)."""

from __future__ import annotations

import datetime
import zoneinfo

from pipecat.frames.frames import EndTaskFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallParams


async def get_current_time(params: FunctionCallParams, timezone: str = "UTC"):
    """Get the current date and time.

    Args:
        timezone: An IANA time zone name such as "Europe/Paris" or "America/New_York".
    """
    try:
        now = datetime.datetime.now(zoneinfo.ZoneInfo(timezone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        await params.result_callback({"error": f"unknown time zone {timezone!r}"})
        return
    await params.result_callback({"time": now.strftime("%H:%M"), "date": now.strftime("%A %d %B %Y"),
                                  "timezone": timezone})


async def end_call(params: FunctionCallParams):
    """End the call when the user says goodbye or asks to hang up."""
    await params.result_callback({"status": "ending the call"})
    # after the goodbye is spoken, the pipeline ends and the transport closes
    await params.llm.push_frame(EndTaskFrame(), FrameDirection.UPSTREAM)


TOOLS = [get_current_time, end_call]
