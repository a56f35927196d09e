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


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    url = start(ServerConfig(api_keys=("page-key",)))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"])
        context = browser.new_context(permissions=["microphone"])
        pg = context.new_page()
        pg.goto(url + "/")
        pg.fill("#key", "page-key")
        yield pg
        browser.close()


def test_speak_button_plays_synthesized_audio(page):
    page.fill("#text", "Hello from the browser test.")
    page.click("#speak")
    page.wait_for_function("document.getElementById('speakStatus').textContent.startsWith('voice')", timeout=30000)
    assert "hibari:heart" in page.text_content("#speakStatus")
    assert page.eval_on_selector("#player", "el => el.src").startswith("blob:")


def test_upload_transcribes(page, eval_dir):
    page.set_input_files("#file", str(eval_dir / "faster-whisper/jfk.flac"))
    page.click("#upload")
    page.wait_for_function("document.getElementById('transcript').textContent.startsWith('[')", timeout=60000)
    assert "ask not what your country can do for you" in page.text_content("#transcript").lower()


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
