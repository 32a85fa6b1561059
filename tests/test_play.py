from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import PIL.Image
import pytest

from tests.test_genie import SIZE, tiny_pipeline
from wm_hub.models.genie.play_genie import MAX_UPLOAD_BYTES, PlayServer


@pytest.fixture(scope="module")
def server():
    prompts = [np.full((SIZE, SIZE, 3), 40 * i, np.uint8) for i in range(3)]
    srv = PlayServer(("127.0.0.1", 0), tiny_pipeline(), prompts, "tiny-genie")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(server, path=""):
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def post(server, path, body: bytes, content_type="application/json"):
    request = urllib.request.Request(url(server, path), data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_api_start_step_and_errors(server):
    with urllib.request.urlopen(url(server, "/"), timeout=30) as reply:
        page = reply.read().decode()
    assert page.count('class="action"') == 4 and page.count('class="prompt"') == 3
    status, reply = post(server, "/api/start", json.dumps({"prompt": 1}).encode())
    assert status == 200 and reply["frame"].startswith("data:image/png;base64,")
    status, step = post(server, "/api/step", json.dumps({"session": reply["session"], "action": 2}).encode())
    assert status == 200 and step["frame"].startswith("data:image/png;base64,")
    status, err = post(server, "/api/step", json.dumps({"session": reply["session"], "action": 9}).encode())
    assert status == 400 and "range(4)" in err["error"]
    status, err = post(server, "/api/step", json.dumps({"session": "nope", "action": 0}).encode())
    assert status == 404 and "unknown or expired session" in err["error"]
    status, err = post(server, "/api/start", json.dumps({"prompt": 7}).encode())
    assert status == 400 and "range(3)" in err["error"]


def test_upload_is_decoded_and_checked(server):
    status, reply = post(server, "/api/start", png(np.zeros((SIZE, SIZE, 3), np.uint8)), "image/png")
    assert status == 200 and "session" in reply
    status, err = post(server, "/api/start", b"not an image", "image/png")
    assert status == 400 and "could not decode" in err["error"]
    # An oversized body is refused from its Content-Length, before it is read.
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(f"POST /api/start HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     f"Content-Length: {MAX_UPLOAD_BYTES + 1}\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.0 413")


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_pressing_an_action_shows_a_new_frame(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto(url(server, "/"))
        page.click("button.prompt >> nth=0")
        page.wait_for_function("document.getElementById('frame').dataset.frames === '0'")
        first = page.get_attribute("#frame", "src")
        page.click("button.action >> nth=1")
        page.wait_for_function("document.getElementById('frame').dataset.frames === '1'")
        page.keyboard.press("3")
        page.wait_for_function("document.getElementById('frame').dataset.frames === '2'")
        assert page.get_attribute("#frame", "src").startswith("data:image/png;base64,")
        assert page.get_attribute("#frame", "src") != first
        assert page.inner_text("#status").startswith("frame 2")
        browser.close()
