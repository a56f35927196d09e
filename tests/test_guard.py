"""Who may talk to the server, and how: API keys (blank ones never count, any bytes compare
safely), Host and Origin checks, body size, slow clients, model names that are not paths, and
error bodies that always carry a code. Each class of problem issue 20 found has a test here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from voxa.server.config import ServerConfig

from .conftest import start_server

websockets = pytest.importorskip("websockets")
from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402


def call(url: str, path: str, *, headers: dict | None = None, data: bytes | None = None,
         method: str | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one request; header values may be any latin-1 text."""
    req = urllib.request.Request(url + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def raw_request(url: str, lines: list[bytes]) -> bytes:
    """Send raw bytes; the reply until the server closes or goes quiet for 2 s."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"".join(lines))
        return read_reply(s)


def read_reply(s: socket.socket) -> bytes:
    reply = b""
    s.settimeout(20)
    try:
        while chunk := s.recv(65536):
            reply += chunk
            s.settimeout(2)
    except OSError:
        pass
    return reply


# ----------------------------------------------------------------------------------- 1. blank keys
def test_blank_keys_never_count_on_any_path(monkeypatch):
    from voxa.server.config import clean_keys

    assert clean_keys(["", "  ", "k1", "k1", " k2 "]) == ("k1", "k2")
    monkeypatch.setenv("VOXA_API_KEYS", " , ,")
    c = ServerConfig()
    assert c.api_keys == () and not c.accepts("")
    c.api_keys = ("",)  # as the CLI assigns --api-key ""
    assert c.api_keys == ()
    assert ServerConfig(api_keys=("", " ")).api_keys == ()
    with pytest.raises(Exception, match="without an API key"):
        ServerConfig(host="0.0.0.0", api_keys=("",)).check_bind()


@pytest.mark.parametrize("args, env", [(["--api-key", ""], ""), ([], " , "), (["--api-key", " "], ",")])
def test_serve_refuses_a_public_bind_with_only_blank_keys(args, env):
    p = subprocess.run([sys.executable, "-m", "voxa.cli", "serve", "--host", "0.0.0.0", "--port", "1", *args],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "VOXA_API_KEYS": env})
    assert p.returncode == 2 and "without an API key" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_a_blank_key_opens_nothing():
    url = start_server(ServerConfig(api_keys=("", "real-key")))
    assert call(url, "/v1/models")[0] == 401
    assert call(url, "/v1/models", headers={"Authorization": "Bearer "})[0] == 401
    assert call(url, "/v1/models", headers={"Authorization": "Bearer real-key"})[0] == 200


# ------------------------------------------------------------------------------ 2. non-ASCII keys
def test_non_ascii_keys_are_a_401_not_a_500():
    url = start_server(ServerConfig(api_keys=("s3cret", "clé-ü")))
    latin = "Bearer clé".encode().decode("latin-1")  # what an HTTP client puts on the wire, as ASGI reads it
    status, body, _ = call(url, "/v1/models", headers={"Authorization": latin})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert call(url, "/v1/models", headers={"Authorization": "Bearer \xff\xfe"})[0] == 401
    # a non-ASCII key configured by the operator works when the client sends it in UTF-8
    ok = "Bearer clé-ü".encode().decode("latin-1")
    assert call(url, "/v1/models", headers={"Authorization": ok})[0] == 200
    ws = url.replace("http://", "ws://") + "/v1/listen?encoding=linear16&sample_rate=16000"
    with pytest.raises(InvalidStatus) as e:
        connect(ws, additional_headers={"Authorization": "Token clé"})
    assert e.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as e:
        connect(ws, additional_headers={"Sec-WebSocket-Protocol": "token, clé"})
    assert e.value.response.status_code in (400, 401)  # the WebSocket layer rejects the header itself (400)
    assert call(url, "/health")[0] == 200  # still serving


# ----------------------------------------------------------------------- 3. Host and Origin checks
def test_foreign_host_names_are_refused_on_http_and_websocket():
    url = start_server(ServerConfig(api_keys=()))
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io"):
        status, body, _ = call(url, "/health", headers={"Host": host})
        assert status == 400 and body["error"]["code"] == "invalid_host"
    for host in ("localhost", "127.0.0.1", f"127.0.0.1:{url.rsplit(':', 1)[1]}", "[::1]:8000"):
        assert call(url, "/health", headers={"Host": host})[0] == 200
    with pytest.raises(InvalidStatus) as e:
        connect(url.replace("http://", "ws://") + "/v1/listen", additional_headers={"Host": "evil.example"})
    assert e.value.response.status_code == 400


def test_allowed_hosts_are_configurable(monkeypatch):
    url = start_server(ServerConfig(api_keys=(), allowed_hosts=("voxa.lan",)))
    assert call(url, "/health", headers={"Host": "voxa.lan:8000"})[0] == 200
    assert call(url, "/health", headers={"Host": "other.lan"})[0] == 400
    monkeypatch.setenv("VOXA_ALLOWED_HOSTS", "*")
    url = start_server(ServerConfig(api_keys=()))
    assert call(url, "/health", headers={"Host": "anything.example"})[0] == 200


def test_websockets_from_foreign_origins_are_refused(eval_dir):
    url = start_server(ServerConfig(api_keys=()))
    ws = url.replace("http://", "ws://") + "/v1/listen?encoding=linear16&sample_rate=16000"
    with pytest.raises(InvalidStatus) as e:
        connect(ws, origin="http://evil.example")
    assert e.value.response.status_code == 403 and b"origin_not_allowed" in e.value.response.body
    with pytest.raises(InvalidStatus):
        connect(url.replace("http://", "ws://") + "/v1/agent", origin="null")
    # the server's own page (same host and port), and clients that send no Origin, are welcome
    for origin in (url, None):
        with connect(ws, origin=origin) as c:
            c.send(json.dumps({"type": "CloseStream"}))
            assert json.loads(list(c)[-1])["type"] == "Metadata"


def test_cross_site_posts_are_refused_and_allowed_origins_configurable():
    url = start_server(ServerConfig(api_keys=(), allowed_origins=("https://app.example.com/",)))
    speech = json.dumps({"model": "tts-1", "voice": "heart", "input": "Hi.", "response_format": "pcm"}).encode()
    status, body, _ = call(url, "/v1/audio/speech", data=speech, headers={
        "Content-Type": "application/json", "Origin": "http://evil.example"})
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    for origin in ("https://app.example.com", url):
        req = urllib.request.Request(url + "/v1/audio/speech", data=speech,
                                     headers={"Content-Type": "application/json", "Origin": origin})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200 and len(r.read()) > 1000
    # a GET carries no side effect: a page elsewhere may read /health
    assert call(url, "/health", headers={"Origin": "http://evil.example"})[0] == 200


# ------------------------------------------------------------------------------ 4. model names
def test_model_names_are_not_paths_and_every_unknown_gets_the_same_404(tmp_path, tiny, eval_dir, monkeypatch):
    """A path that exists, one that does not, a hub name and a nonsense name all get the same
    text; no download starts; registered names, aliases and named folders work."""
    import shutil

    from voxa import registry

    monkeypatch.setattr(registry, "LOCAL", {})  # the named folder is this test's only

    folder = tmp_path / "my-model"
    shutil.copytree(registry.model_dir(registry.lookup("whisper-tiny.en")), folder)
    url = start_server(ServerConfig(api_keys=(), models={"my-tiny": str(folder)}))
    jfk = (eval_dir / "faster-whisper/jfk.flac").read_bytes()

    def transcribe(model: str) -> tuple[int, dict]:
        import openai

        c = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        try:
            return 200, {"text": c.audio.transcriptions.create(model=model, file=("jfk.flac", jfk)).text}
        except openai.APIStatusError as e:
            return e.status_code, e.body

    texts = set()
    for name in (str(folder), str(tmp_path / "nothing-here"), "/etc", "Systran/faster-whisper-small", "small",
                 "../../etc/passwd", "whisper-huge"):
        status, err = transcribe(name)
        assert status == 404 and err["code"] == "model_not_found"
        texts.add(err["message"].replace(repr(name[:100]), "NAME"))
    assert len(texts) == 1, texts
    assert not (registry.home() / "hub").exists() or not any((registry.home() / "hub").iterdir())
    for name in ("my-tiny", "tiny.en", "whisper-tiny.en"):
        status, r = transcribe(name)
        assert status == 200 and "country" in r["text"].lower()
    ids = {m["id"] for m in json.loads(urllib.request.urlopen(url + "/v1/models").read())["data"]}
    assert {"my-tiny", "whisper-1", "whisper-tiny.en"} <= ids
    ws = url.replace("http://", "ws://") + "/v1/listen?encoding=linear16&sample_rate=16000&model="
    with pytest.raises(InvalidStatus) as e:
        connect(ws + str(folder))
    assert e.value.response.status_code == 404


def test_spellings_of_one_model_load_it_once_and_the_cache_is_bounded(monkeypatch, tiny):
    from voxa import asr

    loads = []
    real = asr.Whisper.__init__

    def counting(self, model=None, **kw):
        loads.append(model)
        real(self, model, **kw)

    monkeypatch.setattr(asr.Whisper, "__init__", counting)
    monkeypatch.setattr(asr, "_ENGINES", type(asr._ENGINES)())
    monkeypatch.setattr(asr, "MAX_MODELS", 1)
    engines = {id(asr.load_model(n)) for n in ("tiny.en", "whisper-tiny.en", "tiny.en", "whisper-tiny.en")}
    assert len(engines) == 1 and len(loads) == 1
    from voxa import registry

    folder = str(registry.model_dir(registry.lookup("whisper-tiny.en")))
    asr.load_model(folder)
    asr.load_model(folder + "/")  # the same folder, spelled differently
    assert len(loads) == 2 and asr.loaded_models() == [folder]  # the bound let tiny.en go


def test_voice_names_are_not_paths():
    url = start_server(ServerConfig(api_keys=()))
    for voice in ("/tmp/x.onnx", "../voices/joe.onnx", "piper:/etc/passwd"):
        body = json.dumps({"model": "tts-1", "voice": voice, "input": "Hi."}).encode()
        status, err, _ = call(url, "/v1/audio/speech", data=body, headers={"Content-Type": "application/json"})
        assert status == 400 and err["error"]["code"] == "voice_not_available", voice


# ------------------------------------------------------------------- 11. slow headers, stalled bodies
def test_slow_headers_and_stalled_bodies_are_dropped():
    url = start_server(ServerConfig(api_keys=(), header_timeout_s=1.0, read_timeout_s=1.0))
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:  # slowloris: a header line now and then
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for _ in range(40):  # 12 s of trickle at most; the deadline is 1 s
            time.sleep(0.3)
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
        assert closed, "a client trickling its headers was never dropped"
    with socket.create_connection((host, int(port)), timeout=30) as s:  # a body that stops coming
        s.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
                  b"Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n")
        s.settimeout(20)
        try:
            data = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            data = None
        assert data == b"" or data is None or data.startswith(b"HTTP/1.1 4")
    assert call(url, "/health")[0] == 200  # and the server serves the next client


def test_a_websocket_outlives_the_http_timeouts():
    """uvicorn upgrades to a WebSocket right after the headers, while h11 still waits for a
    body: the read timeout must not then close the socket (it did, 30 s into every stream and
    agent session)."""
    url = start_server(ServerConfig(api_keys=(), header_timeout_s=1.0, read_timeout_s=1.0))
    with connect(url.replace("http://", "ws://") + "/v1/listen?encoding=linear16&sample_rate=16000") as c:
        for _ in range(8):  # 4 s: four times the read timeout
            c.send(json.dumps({"type": "KeepAlive"}))
            time.sleep(0.5)
        c.send(json.dumps({"type": "CloseStream"}))
        assert json.loads(list(c)[-1])["type"] == "Metadata"


# ------------------------------------------------------------------------------- body size
def test_bodies_over_the_limit_are_refused_before_they_are_read():
    url = start_server(ServerConfig(api_keys=(), max_upload_mb=1.0))
    head = (b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n")
    reply = raw_request(url, [head, b"Content-Length: 500000000\r\n\r\n"])
    assert reply.startswith(b"HTTP/1.1 413") and b"request_too_large" in reply
    # chunked, no length: cut off as it passes the limit (the reply is read while sending: the
    # server answers and closes before the client has finished)
    import threading

    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(read_reply(s)))
        reader.start()
        part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        chunks = [part] + [b"\0" * 65536] * 200  # 13 MB offered
        try:
            for c in chunks:
                s.sendall(b"%x\r\n%s\r\n" % (len(c), c))
        except OSError:
            pass
        reader.join(30)
    assert got and got[0].startswith(b"HTTP/1.1 413") and b"request_too_large" in got[0]
    assert call(url, "/health")[0] == 200


# --------------------------------------------------------------------- 14. error bodies carry a code
def test_error_bodies_always_have_a_code():
    url = start_server(ServerConfig(api_keys=()))
    for path, method, data, status in (("/v1/nothing", "GET", None, 404), ("/health", "POST", b"", 405),
                                       ("/v1/audio/transcriptions", "POST", b"--x--", 400)):
        headers = {"Content-Type": "multipart/form-data; boundary=x"} if data else {}
        got, body, _ = call(url, path, data=data, method=method, headers=headers)
        assert got == status and body["error"]["code"], (path, body)
    speech = b'{"model": "tts-1", "voice": "heart", "input": "Hi.", "speed": NaN}'
    got, body, _ = call(url, "/v1/audio/speech", data=speech, headers={"Content-Type": "application/json"})
    assert got == 400 and "finite number" in body["error"]["message"] and body["error"]["param"] == "speed"
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/offer", "/v1/audio/speech"):
        got, body, _ = call(url, path, data=deep, headers={"Content-Type": "application/json"})
        assert got == 400 and body["error"]["code"], (path, body)
