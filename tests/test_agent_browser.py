"""The voice agent's page in a real browser: headless Debian chromium (playwright) with a fake
microphone playing a real LibriSpeech recording connects over WebRTC (POST /offer, no ICE
servers), the transcript arrives on the "agent" data channel and matches the recording, the
bot answers, and its audio arrives on the connection. Skips without chromium."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

playwright = pytest.importorskip("playwright.sync_api")
pytest.importorskip("pipecat")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)"),
              pytest.mark.slow]

from voxa.agent import AgentConfig  # noqa: E402
from voxa.server.config import ServerConfig  # noqa: E402

from .conftest import start_server, wer  # noqa: E402

LS = "librispeech-test-clean-KennethWang1221"


def test_webrtc_page_transcribes_and_answers(eval_dir, tmp_path):
    from voxa import audio

    ref = (eval_dir / LS / "1089-134686.trans.txt").read_text().splitlines()[0].split(" ", 1)[1]
    # chromium loops the fake microphone's file from getUserMedia on: silence while the connection
    # is set up, the sentence, then a long silence to answer in
    speech = audio.decode(eval_dir / LS / "1089-134686-0000.flac")
    mic = tmp_path / "mic.wav"
    audio.write(mic, np.concatenate([np.zeros(16000 * 6, np.float32), speech, np.zeros(16000 * 30, np.float32)]), 16000)
    url = start_server(ServerConfig(api_keys=("agent-key",), agent=AgentConfig(greeting="")))
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={mic}",
            "--autoplay-policy=no-user-gesture-required"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.goto(url + "/agent")
        page.fill("#key", "agent-key")
        page.click("#start")
        page.wait_for_function("window.voxaEvents.some(e => e.type === 'agent_response')", timeout=90000)
        page.wait_for_function("window.voxaEvents.some(e => e.type === 'latency')", timeout=30000)
        page.wait_for_timeout(1500)
        events = page.evaluate("window.voxaEvents")
        energy = page.evaluate("""async () => {
            const stats = await window.voxaPc().getStats();
            let e = 0; stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio') e += s.totalAudioEnergy || 0; });
            return e; }""")
        page.click("#stop")
        browser.close()
    finals = " ".join(e["text"] for e in events if e["type"] == "transcript" and e["is_final"])
    assert wer([ref], [finals]) < 0.3, finals
    assert any(e["type"] == "transcript" and not e["is_final"] for e in events)  # interims while speaking
    assert any(e["type"] == "agent_response" and e["text"] for e in events)
    assert energy > 0, "no bot audio arrived on the WebRTC connection"
