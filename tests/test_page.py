"""The web page at /, in a real browser (Debian chromium driven by playwright): speak typed
text, transcribe an uploaded file, and record from a (fake) microphone. Skips without them."""

from __future__ import annotations

import shutil

import pytest

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")

from voxa.server.config import ServerConfig  # noqa: E402

from .test_server import start  # noqa: E402


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def pw():
    with playwright.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def url():
    return start(ServerConfig(api_keys=("page-key",)))


@pytest.fixture(scope="module")
def page(pw, url):
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    pg = browser.new_context(permissions=["microphone"]).new_page()
    pg.goto(url + "/")
    pg.fill("#key", "page-key")
    yield pg
    browser.close()


def test_speak_button_plays_synthesized_audio(page):
    page.fill("#text", "Hello from the browser test.")
    page.click("#speak")
    page.wait_for_function("document.getElementById('speakStatus').textContent.startsWith('voice')", timeout=30000)
    status = page.text_content("#speakStatus")
    assert "hibari:heart" in status and "watermark payload" in status and "null" not in status
    assert page.eval_on_selector("#player", "el => el.src").startswith("blob:")


def test_upload_transcribes(page, eval_dir):
    page.set_input_files("#file", str(eval_dir / "faster-whisper/jfk.flac"))
    page.click("#upload")
    page.wait_for_function("document.getElementById('transcript').textContent.startsWith('[')", timeout=60000)
    assert "ask not what your country can do for you" in page.text_content("#transcript").lower()


def test_upload_with_speakers_draws_the_timeline(page, eval_dir):
    pytest.importorskip("resemblyzer")
    page.set_input_files("#file", str(eval_dir / "pyannote-audio/ami-debug/trn03.wav"))
    page.check("#diarize")
    page.click("#upload")
    try:
        page.wait_for_selector("#timeline svg rect.turn", timeout=120000)
    finally:
        page.uncheck("#diarize")
    lines = page.text_content("#transcript").splitlines()[1:]
    assert lines and all(ln.startswith("SPEAKER_0") for ln in lines if not ln.startswith("("))
    lanes = page.eval_on_selector_all("#timeline svg text", "els => els.map(e => e.textContent)")
    assert "SPEAKER_00" in lanes


def test_wrong_key_shows_the_error(page):
    page.fill("#key", "wrong")
    page.click("#speak")
    page.wait_for_function("document.getElementById('speakStatus').textContent.startsWith('error')", timeout=30000)
    assert "API key" in page.text_content("#speakStatus")
    page.fill("#key", "page-key")


def test_record_from_the_microphone(page):
    page.fill("#lang", "en")
    page.click("#record")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_function("""['[', 'error'].some(p => document.getElementById('transcript').textContent.startsWith(p))""",
                           timeout=60000)
    text = page.text_content("#transcript")
    assert text.startswith("[en, "), text  # the webm/opus recording was decoded (the fake mic plays a tone)


def test_listen_live_from_the_microphone(pw, url, eval_dir, tmp_path):
    """The fake microphone plays JFK (looped); the page streams it as WebM/Opus over WS
    /v1/listen (key as subprotocol) and shows interim and final lines as they come."""
    from voxa import audio

    wav = tmp_path / "jfk.wav"
    audio.write(wav, audio.decode(eval_dir / "faster-whisper/jfk.flac"), 16000)
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + [f"--use-file-for-fake-audio-capture={wav}"])
    pg = browser.new_context(permissions=["microphone"]).new_page()
    pg.goto(url + "/")
    pg.fill("#key", "page-key")
    pg.click("#live")
    pg.wait_for_function("document.getElementById('live-interim').textContent.length > 0", timeout=30000)
    pg.wait_for_function("document.getElementById('live-final').textContent.toLowerCase().includes('for your country')",
                         timeout=60000)
    pg.click("#live")
    pg.wait_for_function("document.getElementById('live-interim').textContent.includes('s streamed')", timeout=30000)
    assert "country can do for you" in pg.text_content("#live-final").lower()
    browser.close()
