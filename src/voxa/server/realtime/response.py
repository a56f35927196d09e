"""The output side of a Realtime conversation session: the response under way and its events.

:class:`Responses` is the half of :class:`~.conversation.Conversation` that turns what the
agent's pipeline does into the response's events, in step with the audio the output transport
sends: ``response.created`` when the LLM starts, the assistant item and its content part at the
first speech (or the first sentence of a text answer), a transcript or text delta per sentence,
``response.output_audio.delta`` per chunk, and the ``...done`` events once the LLM and the TTS
have both finished (``cancelled`` on an interruption). It also releases the answer a turn had to
wait for while a response played (``interrupt_response: false``).

It works on the session state :class:`~.conversation.Conversation` sets up (``s``, ``context``,
``items``, ``gate``, ``text_only``/``text_out``, ``held``...) and calls its ``add_item`` and
``configure_output``.
"""

from __future__ import annotations

import asyncio
import copy

from .wire import audio_out, event, new_id


def _frames():
    from pipecat import frames

    return frames.frames


def _public(item: dict) -> dict:
    return copy.deepcopy({k: v for k, v in item.items() if not k.startswith("_")})


def _name(ga: str, beta: bool) -> str:
    """GA event names and their beta spellings."""
    if not beta:
        return ga
    return ga.replace("response.output_audio_transcript", "response.audio_transcript").replace(
        "response.output_audio", "response.audio").replace("response.output_text", "response.text")


def _format(name: str) -> dict:
    from .wire import _format_obj

    return _format_obj(name)


class Responses:
    """The response under way: mixed into :class:`~.conversation.Conversation`, whose
    ``__init__`` sets the state these methods use (``response``, ``reply``, ``out_ms``...)."""

    def _open_response(self) -> dict:
        if self.response is None:
            self.response = {"id": new_id("resp"), "object": "realtime.response", "status": "in_progress",
                             "status_details": None, "output": [], "conversation_id": "conv_" + self.session_id[5:],
                             "output_modalities": ["text"] if self.text_out else ["audio"], "usage": None,
                             "metadata": None,
                             "audio": {"output": {"format": _format(self.s.output_format), "voice": self.s.voice}}}
            self._pending = [event("response.created", response=copy.deepcopy(self.response))]
            self.llm_done = self.tts_active = self.spoken_in = False
            self.context_at_open = len(self.context.get_messages())
            self.reply, self.out_ms = None, 0.0
        return self.response

    def _take_pending(self) -> list[dict]:
        pending, self._pending = getattr(self, "_pending", []), []
        return pending

    def open_reply(self, kind: str = "audio") -> list[dict]:
        """The response's assistant message item and its part (``audio`` at the first speech,
        ``text`` at the first sentence of a text answer)."""
        response = self._open_response()
        events = self._take_pending()
        if self.reply is None:
            self.reply = {"id": new_id("item"), "object": "realtime.item", "type": "message", "role": "assistant",
                          "status": "in_progress", "content": [], "_sentences": [], "_audio_ms": 0.0, "_kind": kind}
            index = len(response["output"])
            response["output"].append(self.reply)
            events.append(event("response.output_item.added", response_id=response["id"], output_index=index,
                                item=_public(self.reply)))
            events += self.add_item(_public(self.reply))
            self.items[self.reply["id"]] = self.reply
            part = {"type": "audio", "transcript": ""} if kind == "audio" else {"type": "text", "text": ""}
            events.append(event("response.content_part.added", response_id=response["id"], item_id=self.reply["id"],
                                output_index=index, content_index=0, part=part))
            if kind == "audio":
                events.append(event("output_audio_buffer.started", response_id=response["id"]))
        return events

    def on_frame(self, frame) -> list[dict]:
        """Events for a frame the output transport reaches, in step with the audio."""
        F = _frames()
        if isinstance(frame, F.LLMFullResponseStartFrame):
            self._open_response()
            return self._take_pending()
        if self.response is None:
            return []
        if isinstance(frame, F.TTSStartedFrame):
            self.tts_active = True
            return self.open_reply()
        if isinstance(frame, F.AggregatedTextFrame) and frame.skip_tts:  # a sentence of a text answer
            if not frame.text.strip():
                return []
            events = self.open_reply("text")
            self.reply["_sentences"].append((0.0, frame.text.strip()))
            events.append(event(_name("response.output_text.delta", self.s.beta), response_id=self.response["id"],
                                item_id=self.reply["id"], output_index=self._index(), content_index=0,
                                delta=(" " if len(self.reply["_sentences"]) > 1 else "") + frame.text.strip()))
            return events
        if isinstance(frame, F.TTSTextFrame) and frame.text.strip():
            events = self.open_reply()
            text = frame.text.strip()
            # Pipecat passes a sentence's text after its audio: out_ms is where that audio ended
            self.reply["_sentences"].append((self.out_ms, text))
            events.append(event(_name("response.output_audio_transcript.delta", self.s.beta),
                                response_id=self.response["id"], item_id=self.reply["id"], output_index=self._index(),
                                content_index=0, delta=(" " if len(self.reply["_sentences"]) > 1 else "") + text))
            return events
        if isinstance(frame, F.BotStoppedSpeakingFrame):  # the transport played the last of the speech
            self.tts_active = False
        elif isinstance(frame, F.LLMFullResponseEndFrame):
            self.llm_done = True
        else:
            return []
        return self.finish("completed") if self.llm_done and not self.tts_active else []

    def audio_delta(self, pcm: bytes, rate: int) -> list[dict]:
        import numpy as np

        from ...audio import from_pcm16

        events = self.open_reply() if self.response is not None else []
        if self.reply is None:
            return events  # speech outside a response (none is made in these sessions)
        x = from_pcm16(pcm)
        self.out_ms += x.size * 1000.0 / rate
        self.reply["_audio_ms"] = self.out_ms
        events.append(event(_name("response.output_audio.delta", self.s.beta), response_id=self.response["id"],
                            item_id=self.reply["id"], output_index=self._index(), content_index=0,
                            delta=audio_out(np.asarray(x), rate, self.s.output_format)))
        return events

    def _index(self) -> int:
        return next(i for i, it in enumerate(self.response["output"]) if it is self.reply)

    def finish(self, status: str) -> list[dict]:
        """The response's closing events (``completed``, or ``cancelled`` on an interruption)."""
        if self.response is None:
            return []
        response, reply, events = self.response, self.reply, self._take_pending()
        audio = reply is not None and reply["_kind"] == "audio"
        if reply is not None:
            index, text = self._index(), " ".join(t for _, t in reply["_sentences"])
            reply["status"] = "completed" if status == "completed" else "incomplete"
            rid, iid = response["id"], reply["id"]
            if audio:
                reply["content"] = [{"type": "output_audio", "transcript": text}]
                events += [
                    event(_name("response.output_audio.done", self.s.beta), response_id=rid, item_id=iid,
                          output_index=index, content_index=0),
                    event(_name("response.output_audio_transcript.done", self.s.beta), response_id=rid, item_id=iid,
                          output_index=index, content_index=0, transcript=text),
                    event("response.content_part.done", response_id=rid, item_id=iid, output_index=index,
                          content_index=0, part={"type": "audio", "transcript": text})]
            else:
                reply["content"] = [{"type": "text" if self.s.beta else "output_text", "text": text}]
                events += [
                    event(_name("response.output_text.done", self.s.beta), response_id=rid, item_id=iid,
                          output_index=index, content_index=0, text=text),
                    event("response.content_part.done", response_id=rid, item_id=iid, output_index=index,
                          content_index=0, part={"type": "text", "text": text})]
            events.append(event("response.output_item.done", response_id=rid, output_index=index,
                                item=_public(reply)))
            if not self.s.beta:
                events.append(event("conversation.item.done", item=_public(reply), previous_item_id=None))
        response["status"] = status
        if status == "cancelled":
            response["status_details"] = {"type": "cancelled", "reason": "turn_detected"}
        response["output"] = [_public(it) for it in response["output"]]
        events.append(event("response.done", response=copy.deepcopy(response)))
        if audio:
            kind = "output_audio_buffer.cleared" if status == "cancelled" else "output_audio_buffer.stopped"
            events.append(event(kind, response_id=response["id"]))
        events.append(event("rate_limits.updated", rate_limits=[]))
        self.response, self.reply = None, None
        if self.text_out != self.text_only:  # a response.create chose this answer's output: back to the session's
            asyncio.get_running_loop().create_task(self.configure_output(self.text_only))
        if self.held is not None:  # a turn that ended meanwhile: its answer once this one is in the context
            asyncio.get_running_loop().call_later(1.0, self.release, True)
            self.release()
        return events

    def release(self, late: bool = False) -> None:
        """The answer to a turn that ended while a response played (``interrupt_response: false``)
        starts when that response is done and its message is in the LLM's context (``late``: a
        second after it was done, in any case). The turn's words go after that message."""
        if self.held is None or self.response is not None or not (self.spoken_in or late):
            return
        frame, self.held = self.held, None
        messages = list(self.context.get_messages())
        head, new = messages[:self.context_at_open], messages[self.context_at_open:]
        said = [m for m in new if isinstance(m, dict) and m.get("role") == "user"]
        self.context.set_messages(head + [m for m in new if not any(m is u for u in said)] + said)
        asyncio.get_running_loop().create_task(self.gate.push_frame(frame))

    def assistant_said(self) -> None:
        """The assistant aggregator put the response's message in the LLM's context."""
        self.spoken_in = True
        self.release()
