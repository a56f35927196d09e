"""A Realtime conversation session (``WS /v1/realtime?model=...`` without the transcription intent):
the OpenAI Realtime protocol in front of voxa's voice agent.

The session *is* an agent session: :func:`voxa.agent.pipeline.build` makes the same pipeline as
``/v1/agent``, the browser page and Twilio calls (Silero VAD, streaming Whisper, smart-turn end of
turn, the agent's LLM, streaming TTS, barge-in), on a Pipecat WebSocket transport. This module is
only the protocol: :class:`Conversation` holds the session's items and its response, and turns
client events into actions on the pipeline (:meth:`Conversation.handle`); :mod:`.transport`
holds the Pipecat pieces (its ``Realtime`` is passed to ``build`` as its ``protocol``):

* ``Serializer`` (Pipecat's ``FrameSerializer``): client text messages in
  (``input_audio_buffer.append`` becomes the pipeline's 16 kHz audio); out, bot audio becomes
  ``response.output_audio.delta`` in the session's output format.
* ``UserEvents``, a processor after the recogniser: speech started/stopped (Silero's),
  transcription deltas (interim results) and, when the turn ends, the committed user item and
  its ``...transcription.completed``.
* The output transport sends the response's events (:mod:`.response`) in step with its audio: ``response.created``
  when the LLM starts, the assistant item and its content part with the first speech,
  ``response.output_audio_transcript.delta`` per sentence, and the ``...done`` events once the
  LLM and the TTS have both finished; on an interruption the response ends ``cancelled``.
* Tools: the session's ``tools`` are the client's. When the LLM calls one, the call goes out as
  a ``function_call`` item (``response.function_call_arguments.delta|done``); the client's
  ``function_call_output`` item is the result, and the LLM answers with it (a
  ``response.create`` after it starts nothing more: the answer is already under way). The
  agent's own server-side tools stay available.

Turn detection: ``server_vad`` and ``semantic_vad`` retune the agent's own end of turn (Silero +
smart-turn, :func:`policy_for`); ``create_response: false`` leaves the answer to
``response.create``; ``interrupt_response: false`` lets the answer play on while the user talks
(their turn starts when it ends). ``turn_detection: null`` (push to talk): speech starts no turn
and interrupts nothing; ``input_audio_buffer.commit`` makes a user item of everything said since
the last commit (the recogniser finishes what it heard, :meth:`VoxaSTTService.flush
<voxa.agent.stt.VoxaSTTService.flush>`), and ``response.create`` asks for the answer.

Text: ``output_modalities: ["text"]`` (beta ``modalities: ["text"]``), for the session or one
``response.create``, answers with ``response.output_text.delta|done`` instead of speech (the LLM's
output skips the TTS, Pipecat's ``LLMConfigureOutputFrame``; sentence by sentence). A user
``message`` item may hold ``input_audio`` (base64 in the session's input format): the live model
transcribes it (``...input_audio_transcription.completed``, or ``.failed``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging

from .response import Responses, _format, _public
from .wire import AudioIn, BadEvent, Settings, event, new_id, update

log = logging.getLogger("voxa.server.realtime")

TOOL_TIMEOUT_S = 120.0  # a client that never answers a function call
MAX_ITEMS = 1000  # items a client may create in one conversation (each up to 20,000 characters)


class Conversation(Responses):
    """One conversation session: its settings, items and current response (the response's
    events: :class:`~.response.Responses`)."""

    def __init__(self, settings: Settings, session_id: str, *, voice_id, max_event_bytes: int):
        self.s = settings
        self.session_id = session_id
        self.voice_id = voice_id  # OpenAI or voxa voice name -> installed voice id (raises on unknown)
        self.max_event_bytes = max_event_bytes
        self.audio = AudioIn(settings.input_format)
        self.items: dict[str, dict] = {}  # the conversation, in order
        self.previous: str | None = None  # the last item added
        self.client = None  # the transport's WebSocket client (send)
        self.llm = self.tts = self.context = self.worker = self.gate = None
        self.base_tools: list = []  # the agent's own tools
        self.calls: dict[str, asyncio.Future] = {}  # call_id -> the client's output
        self.answered: set[str] = set()  # call ids whose output came: the LLM goes on by itself
        self.response: dict | None = None
        self.reply: dict | None = None  # the assistant message item of the response
        self.llm_done = self.tts_active = False
        self.out_ms = 0.0  # reply audio sent so far
        self.fresh_ms = 0  # input audio since the last user item
        self.runs = 0  # answers asked for (response.create, a function's output) not yet started
        self.vad = self.turn_analyzer = self.policy = None  # the session's turn detection (voxa.turn)
        self.stt = self.start = None  # the agent's recogniser and turn-start strategy
        self.allow_interruptions = True  # the agent's own setting (the session may only turn it off)
        self.text_only = False  # the session's answers are text (output_modalities ["text"])
        self.text_out = False  # what the LLM is set to now (a response.create may differ for one answer)
        self.mark = None  # the transport's commit/clear marker frame (transport.pieces)
        self.held = None  # the LLM's next context, waiting for the response under way to end
        self.spoken_in = False  # the response's assistant message is in the LLM's context
        self.context_at_open = 0  # messages in the LLM's context when the response began

    # ------------------------------------------------------------------ sending
    async def send(self, *events: dict) -> None:
        for ev in events:
            if self.client is not None:
                await self.client.send(json.dumps(ev))

    def remember(self, item: dict) -> str | None:
        """An item joins the conversation; returns the id of the one before it."""
        self.items[item["id"]] = item
        prev, self.previous = self.previous, item["id"]
        return prev

    def add_item(self, item: dict) -> list[dict]:
        """An item joins the conversation: the events that say so."""
        prev = self.remember(item)
        kind = "conversation.item.created" if self.s.beta else "conversation.item.added"
        return [event(kind, item=copy.deepcopy(item), previous_item_id=prev)]

    # ------------------------------------------------------------------ client events
    async def handle(self, ev: dict):
        """One client event (not audio appends, which the serializer turns into frames)."""
        kind = ev["type"]
        if kind == "session.update":
            await self.update_session(ev.get("session"), beta=self.s.beta)
        elif kind == "transcription_session.update":
            raise BadEvent("this is a conversation session; open one with ?intent=transcription to transcribe",
                           code="invalid_event")
        elif kind == "input_audio_buffer.commit":
            if self.fresh_ms <= 0:
                raise BadEvent("the input audio buffer is empty: append audio before committing",
                               code="input_audio_buffer_commit_empty")
            if self.s.turn.kind is None:  # push to talk: the item is what was said since the last commit
                self.fresh_ms = 0
                await self.stt.flush(self.mark("commit"))
            # with turn detection, the server commits each turn itself
        elif kind == "input_audio_buffer.clear":
            self.fresh_ms = 0
            if self.s.turn.kind is None:  # what was said since the last commit is dropped
                await self.stt.flush(self.mark("clear"))
            # with turn detection, a turn already under way is the server's to end
            await self.send(event("input_audio_buffer.cleared"))
        elif kind == "conversation.item.create":
            await self.create_item(ev.get("item"), ev.get("previous_item_id"))
        elif kind == "conversation.item.retrieve":
            item = self._item(ev.get("item_id"))
            await self.send(event("conversation.item.retrieved", item=_public(item)))
        elif kind == "conversation.item.delete":
            item = self._item(ev.get("item_id"))
            self._forget(item)
            del self.items[item["id"]]
            await self.send(event("conversation.item.deleted", item_id=item["id"]))
        elif kind == "conversation.item.truncate":
            await self.truncate(ev)
        elif kind == "response.create":
            await self.create_response(ev.get("response"))
        elif kind == "response.cancel":
            if self.response is None:
                raise BadEvent("there is no response in progress to cancel", code="response_cancel_not_active")
            await self.gate.broadcast_interruption()
        elif kind == "output_audio_buffer.clear":
            if self.response is not None:
                await self.gate.broadcast_interruption()
            await self.send(event("output_audio_buffer.cleared", response_id=None))
        else:
            raise BadEvent(f"unknown event type {kind!r}", code="invalid_event")

    async def update_session(self, session, *, beta: bool) -> None:
        wanted = copy.deepcopy(self.s)  # all of it applies, or none
        update(wanted, session, beta=beta)
        if wanted.type != "realtime":
            raise BadEvent("this is a conversation session; open one with ?intent=transcription to transcribe",
                           param="session.type")
        text_only = _text_only(session, "session", self.text_only)
        tools = _tools(session.get("tools")) if "tools" in session else None
        temperature = session.get("temperature")
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                        or not 0.0 <= temperature <= 2.0):
            raise BadEvent("temperature must be a number from 0 to 2", param="session.temperature")
        voice = None
        if wanted.voice != self.s.voice:
            try:
                voice = self.voice_id(wanted.voice)
            except Exception as e:
                raise BadEvent(getattr(e, "message", None) or str(e), param="session.audio.output.voice") from None
        # all checked: apply
        if wanted.input_format != self.s.input_format:
            self.audio = AudioIn(wanted.input_format)
        retune = wanted.turn != self.s.turn
        self.s.__dict__.update(wanted.__dict__)
        if retune and self.vad is not None:
            from ... import turn

            turn.retune(self.vad, self.turn_analyzer, policy_for(self.s.turn, self.policy))
        if self.start is not None:
            self.start.manual = self.s.turn.kind is None
            self.start.interruptions(self.allow_interruptions and self.s.turn.interrupt_response)
        if voice is not None:
            self.tts.use_voice(voice)
        if text_only != self.text_only:
            self.text_only = text_only
            if self.response is None:
                await self.configure_output(text_only)
        settings = {}
        if session.get("instructions") is not None:
            settings["system_instruction"] = self.s.instructions or None
        if temperature is not None:
            settings["temperature"] = float(temperature)
        if settings:
            from pipecat.frames.frames import LLMUpdateSettingsFrame

            await self.worker.queue_frame(LLMUpdateSettingsFrame(delta=type(self.llm).Settings(**settings)))
        if tools is not None:
            self.s.tools = [t["raw"] for t in tools]
            self._set_tools(tools)
        await self.send(event("session.updated", session=self.session_dict()))

    def session_dict(self) -> dict:
        d = self.s.session(self.session_id)
        d["instructions"] = self.s.instructions
        d["tools"] = list(getattr(self.s, "tools", []) or [])
        if self.s.beta:
            d.update(voice=self.s.voice, output_audio_format=_beta(self.s.output_format),
                     modalities=["text"] if self.text_only else ["audio", "text"])
        else:
            d["output_modalities"] = ["text"] if self.text_only else ["audio"]
            d["audio"]["output"] = {"format": _format(self.s.output_format), "voice": self.s.voice, "speed": 1.0}
        return d

    def _set_tools(self, tools: list[dict]) -> None:
        from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
        from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

        schemas = [FunctionSchema(name=t["name"], description=t["description"], properties=t["properties"],
                                  required=t["required"]) for t in tools]
        for t in tools:
            self.llm.register_function(t["name"], self._call, timeout_secs=TOOL_TIMEOUT_S)
        self.context.set_tools(ToolsSchema(standard_tools=list(self.base_tools) + schemas))

    async def create_item(self, item, previous) -> None:
        if not isinstance(item, dict):
            raise BadEvent("item must be an object", param="item")
        if len(self.items) >= MAX_ITEMS:
            raise BadEvent(f"the conversation holds {MAX_ITEMS} items, the most it may; delete some first",
                           param="item")
        kind = item.get("type", "message")
        item_id = str(item.get("id") or new_id("item"))[:64]
        if kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not isinstance(output, str):
                raise BadEvent("a function_call_output item needs call_id and output (strings)", param="item")
            future = self.calls.pop(call_id, None)
            if future is None:
                raise BadEvent(f"no function call {call_id[:64]!r} is waiting for its output", param="item.call_id")
            new = {"id": item_id, "object": "realtime.item", "type": "function_call_output", "call_id": call_id,
                   "output": output[:100_000], "status": "completed"}
            await self.send(*self.add_item(new))
            self.answered.add(call_id)
            self.runs += 1  # the LLM goes on with it (even with create_response false)
            if not future.done():
                future.set_result(output[:100_000])
            return
        if kind != "message":
            raise BadEvent(f"item type {kind!r} is not supported here: message or function_call_output",
                           param="item.type")
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise BadEvent("a message item's role must be user, assistant or system", param="item.role")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            raise BadEvent("a message item needs content", param="item.content")
        parts = []  # (text, None) or (None, 16 kHz samples)
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "input_audio" and role == "user":
                if not isinstance(part.get("audio"), str):
                    raise BadEvent("an input_audio content part needs audio (base64)", param=f"item.content[{i}].audio")
                x = AudioIn(self.s.input_format)(part["audio"])
                if x.size < 1600:
                    raise BadEvent("an input_audio content part needs at least 100 ms of audio",
                                   param=f"item.content[{i}].audio")
                parts.append((None, x))
            elif kind in ("input_text", "text", "output_text") and isinstance(part.get("text"), str):
                parts.append((part["text"], None))
            else:
                raise BadEvent("message content parts are text (input_text, or output_text for the assistant) "
                               "or, for the user, input_audio", param=f"item.content[{i}]")
        shown = [{"type": "input_audio", "transcript": None} if x is not None else copy.deepcopy(c)
                 for (_, x), c in zip(parts, content)]
        new = {"id": item_id, "object": "realtime.item", "type": "message", "role": role, "status": "completed",
               "content": shown}
        await self.send(*self.add_item(new))
        texts = []
        for index, (text, x) in enumerate(parts):
            if x is not None:
                text = await self._transcribe(item_id, index, x)
                shown[index]["transcript"] = text
            texts.append(text or "")
        text = " ".join(t for t in texts if t)[:20000]
        if text:
            from pipecat.frames.frames import LLMMessagesAppendFrame

            await self.worker.queue_frame(LLMMessagesAppendFrame(messages=[{"role": role, "content": text}],
                                                                 run_llm=False))
        if not self.s.beta:
            await self.send(event("conversation.item.done", item=copy.deepcopy(new), previous_item_id=None))

    async def _transcribe(self, item_id: str, index: int, x) -> str | None:
        """An input_audio part's words, by the live model; None (and a ``...failed`` event) if that fails."""
        try:
            result = await asyncio.to_thread(self.stt.transcribe, x, self.s.language)
        except Exception as e:  # noqa: BLE001 - a failed decode is the client's to hear of, the session goes on
            log.warning("realtime: an input_audio item could not be transcribed: %s", e)
            await self.send(event("conversation.item.input_audio_transcription.failed", item_id=item_id,
                                  content_index=index, error={"type": "transcription_error", "code": "server_error",
                                                              "message": f"transcription failed: {e}", "param": None}))
            return None
        await self.send(event("conversation.item.input_audio_transcription.completed", item_id=item_id,
                              content_index=index, transcript=result,
                              usage={"type": "duration", "seconds": round(x.size / 16000, 3)}))
        return result

    async def create_response(self, params=None) -> None:
        if params is not None and not isinstance(params, dict):
            raise BadEvent("response must be an object", param="response")
        text_only = _text_only(params or {}, "response", self.text_only)
        if self.answered:  # a function's output came: the LLM answers with it by itself, and that
            self.answered.clear()  # answer may already be under way when the client asks for it
            return
        if self.response is not None:
            raise BadEvent("the conversation already has a response in progress",
                           code="conversation_already_has_active_response")
        from pipecat.frames.frames import LLMRunFrame

        await self.configure_output(text_only)  # this answer's; the session's again when it is done
        self.runs += 1
        await self.worker.queue_frame(LLMRunFrame())

    async def configure_output(self, text_only: bool) -> None:
        """Whether the LLM's next answers skip the TTS (text responses) or are spoken."""
        if text_only == self.text_out:
            return
        from pipecat.frames.frames import LLMConfigureOutputFrame

        self.text_out = text_only
        await self.worker.queue_frame(LLMConfigureOutputFrame(skip_tts=text_only))

    async def truncate(self, ev: dict) -> None:
        item = self._item(ev.get("item_id"))
        end = ev.get("audio_end_ms")
        if item.get("role") != "assistant" or item.get("type") != "message":
            raise BadEvent("only an assistant message item can be truncated", param="item_id")
        if isinstance(end, bool) or not isinstance(end, int) or end < 0:
            raise BadEvent("audio_end_ms must be a non-negative integer", param="audio_end_ms")
        spoken = item.get("_sentences") or []
        if end > (item.get("_audio_ms") or 0) + 1:
            raise BadEvent(f"audio_end_ms {end} is after the item's audio ({int(item.get('_audio_ms') or 0)} ms)",
                           param="audio_end_ms")
        kept = " ".join(t for done, t in spoken if done <= end).strip()  # sentences heard to their end
        before = _transcript(item)
        for part in item.get("content") or []:
            if "transcript" in part:
                part["transcript"] = kept
        self._replace(before, kept)
        await self.send(event("conversation.item.truncated", item_id=item["id"], content_index=0, audio_end_ms=end))

    def _item(self, item_id) -> dict:
        item = self.items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise BadEvent(f"no item {str(item_id)[:64]!r} in the conversation", param="item_id",
                           code="item_not_found")
        return item

    def _forget(self, item: dict) -> None:
        """Drop an item's message from the LLM's context."""
        text = _transcript(item)
        if text is not None:
            self._replace(text, None)

    def _replace(self, text: str, new: str | None) -> None:
        messages = list(self.context.get_messages())
        for i in range(len(messages) - 1, -1, -1):
            m = messages[i]
            if isinstance(m, dict) and isinstance(m.get("content"), str) and m["content"].strip() == text.strip():
                if new is None:
                    del messages[i]
                else:
                    messages[i] = {**m, "content": new}
                self.context.set_messages(messages)
                return

    # ------------------------------------------------------------------ tools
    async def _call(self, params) -> None:
        """The LLM called one of the client's tools: ask the client, give the LLM its answer."""
        call_id = params.tool_call_id or new_id("call")
        args = json.dumps(dict(params.arguments or {}))
        item = {"id": new_id("item"), "object": "realtime.item", "type": "function_call", "status": "in_progress",
                "name": params.function_name, "call_id": call_id, "arguments": ""}
        future = asyncio.get_running_loop().create_future()
        self.calls[call_id] = future
        response = self._open_response()
        index = len(response["output"])
        response["output"].append(item)
        events = [event("response.output_item.added", response_id=response["id"], output_index=index,
                        item=copy.deepcopy(item)), *self.add_item(item)]
        events.append(event("response.function_call_arguments.delta", response_id=response["id"], item_id=item["id"],
                            output_index=index, call_id=call_id, delta=args))
        item.update(arguments=args, status="completed")
        events += [event("response.function_call_arguments.done", response_id=response["id"], item_id=item["id"],
                         output_index=index, call_id=call_id, name=params.function_name, arguments=args),
                   event("response.output_item.done", response_id=response["id"], output_index=index,
                         item=copy.deepcopy(item))]
        await self.send(*events)
        try:
            output = await future
        finally:
            self.calls.pop(call_id, None)
        try:  # JSON output goes to the LLM as that JSON; other text as a JSON string
            value = json.loads(output)
        except ValueError:
            value = output
        await params.result_callback(value)

# ---------------------------------------------------------------------- helpers
EAGERNESS = {  # semantic_vad eagerness -> smart-turn's score threshold and the longest silence (s)
    "high": (0.35, 1.0), "medium": (None, None), "auto": (None, None), "low": (0.7, 4.0)}


def policy_for(t, base):
    """The agent's end-of-turn policy (:class:`voxa.turn.TurnPolicy`) under a session's
    ``turn_detection``. ``server_vad``: Silero's threshold, and its silence as the longest pause
    a turn waits (smart-turn may still end a finished sentence sooner). ``semantic_vad``: the
    eagerness moves smart-turn's threshold and that longest pause (high 0.35 / 1 s, low 0.7 / 4 s;
    auto and medium keep the agent's)."""
    from dataclasses import replace

    if t.kind == "server_vad":
        longest = max(base.pause_s, t.silence_duration_ms / 1000.0)
        return replace(base, vad_threshold=min(max(t.threshold, 0.01), 0.99), long_silence_s=longest,
                       medium_silence_s=min(base.medium_silence_s, longest))
    threshold, longest = EAGERNESS.get(t.eagerness, (None, None))
    if threshold is None:
        return base
    return replace(base, threshold=threshold, long_silence_s=longest,
                   medium_silence_s=min(base.medium_silence_s, longest))


def _transcript(item: dict) -> str | None:
    for part in item.get("content") or []:
        for key in ("transcript", "text"):
            if isinstance(part.get(key), str):
                return part[key]
    return None


def _text_only(d: dict, param: str, default: bool) -> bool:
    """Whether ``d``'s ``output_modalities`` (beta ``modalities``) ask for text answers."""
    value = d.get("output_modalities", d.get("modalities"))
    if value is None:
        return default
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value) \
            or not set(value) <= {"audio", "text"}:
        raise BadEvent('output_modalities must be ["audio"] or ["text"]', param=f"{param}.output_modalities")
    return "audio" not in value


def _beta(name: str) -> str:
    from .wire import _beta_name

    return _beta_name(name)


def _tools(value) -> list[dict]:
    """The session's tools (OpenAI's function tool shape), checked."""
    if not isinstance(value, list) or len(value) > 64:
        raise BadEvent("tools must be a list of at most 64 function tools", param="session.tools")
    out = []
    for i, t in enumerate(value):
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(t.get("name"), str) \
                or not t["name"].replace("_", "").replace("-", "").isalnum() or len(t["name"]) > 64:
            raise BadEvent("each tool is {type: function, name, description, parameters}; names are letters, "
                           "digits, _ and -", param=f"session.tools[{i}]")
        params = t.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict) or not isinstance(params.get("properties", {}), dict):
            raise BadEvent("a tool's parameters must be a JSON schema object", param=f"session.tools[{i}].parameters")
        out.append({"name": t["name"], "description": str(t.get("description") or "")[:2000],
                    "properties": params.get("properties", {}), "required": list(params.get("required") or []),
                    "raw": {"type": "function", "name": t["name"], "description": t.get("description") or "",
                            "parameters": params}})
    return out
