"""Shared fixtures. Tests that need real recordings read ../shared/eval and skip cleanly
without it; tests that need a model use the real bundled model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi import Request  # module level: the fake LLM's route annotation must resolve

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("VOXA_EVAL_DIR", REPO.parent / "shared" / "eval"))


@pytest.fixture(scope="session", autouse=True)
def voxa_home(tmp_path_factory):
    """A private model cache for the whole run, so tests never touch the user's."""
    home = os.environ.get("VOXA_TEST_HOME") or str(tmp_path_factory.mktemp("voxa-home"))
    os.environ["VOXA_HOME"] = home
    return Path(home)


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL.is_dir():
        pytest.skip(f"evaluation audio not found at {EVAL}")
    return EVAL


@pytest.fixture(scope="session")
def base(voxa_home):
    import voxa

    return voxa.load_model("whisper-base")


@pytest.fixture(scope="session")
def tiny(voxa_home):
    import voxa

    return voxa.load_model("whisper-tiny.en")


def librispeech(eval_dir: Path) -> tuple[list[Path], list[str]]:
    folder = eval_dir / "librispeech-test-other-Resemblyzer"
    refs = {}
    for line in (folder / "test-other.subset.trans.txt").read_text().splitlines():
        if line.strip():
            key, text = line.split(" ", 1)
            refs[key] = text
    files = sorted(p for p in folder.glob("*.flac") if p.stem in refs)
    return files, [refs[p.stem] for p in files]


def wer(refs: list[str], hyps: list[str]) -> float:
    from voxa.evaluate import wer as corpus_wer

    return corpus_wer(refs, hyps)


def start_server(config) -> str:
    """A live voxa server (uvicorn on a free loopback port, in a thread); returns its URL."""
    from voxa.server import create_app, serve_in_background

    return serve_in_background(create_app(config))


def fake_llm(script):
    """A tiny OpenAI-compatible chat server; ``script(body)`` returns its answer: a string (said a few
    words per chunk) or a dict (a tool call: name and arguments)."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from voxa.server import serve_in_background

    app = FastAPI()
    seen: list[dict] = []

    def sse(delta: dict, finish=None) -> str:
        return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        seen.append(body)
        answer = script(body)
        if isinstance(answer, dict):
            parts = [sse({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_w1", "type": "function",
                          "function": {"name": answer["name"], "arguments": json.dumps(answer["arguments"])}}]}),
                     sse({}, "tool_calls")]
        else:
            words = answer.split(" ")
            parts = [sse({"role": "assistant", "content": " ".join(words[i:i + 3]) + " "})
                     for i in range(0, len(words), 3)] + [sse({}, "stop")]
        return StreamingResponse(iter(parts + ["data: [DONE]\n\n"]), media_type="text/event-stream")

    return serve_in_background(app) + "/v1", seen
