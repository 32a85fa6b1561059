"""`wm-hub play`: a local web page to play a Genie world model.

Pick a prompt frame (or upload one), then press buttons or keys 1-8 to choose latent actions; each
press generates the next frame. The server is the standard library's, binds 127.0.0.1 by default,
caps uploads and decodes them with Pillow.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import PIL.Image

from wm_hub.data.clips import tensor_to_frames
from wm_hub.models.genie.pipeline_genie import GeniePipeline, GenieSession

MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_SESSIONS = 8

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wm_hub · play __NAME__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; background: #111; color: #eee; }
#frame { width: 384px; height: 384px; image-rendering: pixelated; background: #222; display: block; }
button { margin: 2px; padding: .4rem .7rem; background: #333; color: #eee; border: 1px solid #555; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
.prompt img { width: 64px; height: 64px; image-rendering: pixelated; display: block; }
#status { margin: .5rem 0; color: #aaa; }
</style></head>
<body>
<h1>__NAME__</h1>
<p>Choose a first frame, then press an action button or the keys 1-__N__.</p>
<div id="prompts">__PROMPTS__</div>
<p><label>or upload an image:
  <input type="file" id="upload" accept="image/png,image/jpeg,image/gif,image/webp"></label></p>
<img id="frame" alt="generated frame">
<div id="status">no session yet</div>
<div id="actions">__ACTIONS__</div>
<script>
let session = null, frames = 0, busy = false;
const status = document.getElementById("status");
const buttons = document.querySelectorAll("button.action");
function show(reply) {
  document.getElementById("frame").src = reply.frame;
  document.getElementById("frame").dataset.frames = String(frames);
  status.textContent = `frame ${frames} · ${reply.ms.toFixed(0)} ms`;
}
async function call(path, body, type) {
  const reply = await fetch(path, {method: "POST", body, headers: {"Content-Type": type}});
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error);
  return data;
}
async function start(body, type) {
  try {
    const reply = await call("/api/start", body, type);
    session = reply.session; frames = 0; show(reply);
    buttons.forEach(b => b.disabled = false);
  } catch (e) { status.textContent = "error: " + e.message; }
}
async function step(action) {
  if (!session || busy) return;
  busy = true;
  try {
    const reply = await call("/api/step", JSON.stringify({session, action}), "application/json");
    frames += 1; show(reply);
  } catch (e) { status.textContent = "error: " + e.message; }
  busy = false;
}
document.querySelectorAll("button.prompt").forEach(b =>
  b.addEventListener("click", () => start(JSON.stringify({prompt: Number(b.dataset.index)}), "application/json")));
document.getElementById("upload").addEventListener("change", e => {
  const file = e.target.files[0];
  if (file) start(file, file.type || "application/octet-stream");
});
buttons.forEach(b => { b.disabled = true; b.addEventListener("click", () => step(Number(b.dataset.action))); });
document.addEventListener("keydown", e => {
  const a = Number(e.key) - 1;
  if (Number.isInteger(a) && a >= 0 && a < buttons.length) step(a);
});
</script>
</body></html>
"""


class UnknownSession(LookupError):
    """A step for a session the server does not hold."""


def png_data_url(frame: np.ndarray) -> str:
    """uint8 `(H, W, C)` -> `data:image/png;base64,...`."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(frame).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decode_upload(data: bytes) -> PIL.Image.Image:
    """Decode an uploaded image with Pillow, refusing anything that is not a plain raster image."""
    try:
        image = PIL.Image.open(io.BytesIO(data))
        if image.format not in ("PNG", "JPEG", "GIF", "WEBP"):
            raise ValueError(f"unsupported image format {image.format}; expected PNG, JPEG, GIF or WebP")
        image.load()
    except (PIL.UnidentifiedImageError, OSError) as err:
        raise ValueError(f"could not decode the upload as an image ({err})") from err
    return image.convert("RGB")


class PlayServer(ThreadingHTTPServer):
    """Serves the play page for one pipeline; sessions are kept in memory (the newest `MAX_SESSIONS`)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], pipe: GeniePipeline, prompts: list[np.ndarray], name: str,
                 steps: int | None = None, temperature: float | None = None) -> None:
        super().__init__(address, PlayHandler)
        self.pipe, self.prompts, self.name = pipe, prompts, name
        self.steps, self.temperature = steps, temperature
        self.sessions: OrderedDict[str, GenieSession] = OrderedDict()
        self.lock = threading.Lock()  # one generation at a time

    def page(self) -> bytes:
        prompts = "".join(
            f'<button class="prompt" data-index="{i}"><img src="{png_data_url(p)}" alt="prompt {i}"></button>'
            for i, p in enumerate(self.prompts)
        )
        actions = "".join(
            f'<button class="action" data-action="{a}">action {a} [{a + 1}]</button>'
            for a in range(self.pipe.num_actions)
        )
        html = PAGE.replace("__PROMPTS__", prompts).replace("__ACTIONS__", actions)
        return html.replace("__NAME__", self.name).replace("__N__", str(self.pipe.num_actions)).encode()

    def start(self, image: np.ndarray | PIL.Image.Image) -> dict:
        begin = time.perf_counter()
        with self.lock:
            session = self.pipe.start(image, num_inference_steps=self.steps, temperature=self.temperature)
            key = secrets.token_hex(8)
            self.sessions[key] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return {"session": key, "frame": png_data_url(tensor_to_frames(session.last)[0]),
                "ms": 1e3 * (time.perf_counter() - begin)}

    def step(self, key: str, action: int) -> dict:
        session = self.sessions.get(key)
        if session is None:
            raise UnknownSession("unknown or expired session: start a new one")
        begin = time.perf_counter()
        with self.lock:
            frame = session.step(action)
        return {"frame": png_data_url(frame), "ms": 1e3 * (time.perf_counter() - begin)}


class PlayHandler(BaseHTTPRequestHandler):
    server: PlayServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep the console quiet
        pass

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, data: dict) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server protocol
        if self.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page(), "text/html; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page at {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - http.server protocol
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            self.close_connection = True  # the unread body is not drained
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_UPLOAD_BYTES} bytes"})
            return
        body = self.rfile.read(length)
        try:
            if self.path == "/api/start":
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    index = json.loads(body)["prompt"]
                    if not isinstance(index, int) or not 0 <= index < len(self.server.prompts):
                        raise ValueError(f"prompt must be an index in range({len(self.server.prompts)})")
                    image = self.server.prompts[index]
                else:
                    image = decode_upload(body)
                self._json(HTTPStatus.OK, self.server.start(image))
            elif self.path == "/api/step":
                request = json.loads(body)
                action = request.get("action")
                if not isinstance(action, int):
                    raise ValueError(f"action must be an integer in range({self.server.pipe.num_actions})")
                self._json(HTTPStatus.OK, self.server.step(str(request.get("session")), action))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint at {self.path}"})
        except UnknownSession as err:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(err)})
        except KeyError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"missing field {err}"})
        except (ValueError, TypeError) as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})


def platformer_prompts(count: int = 6, first_level: int = 1_000_000) -> list[np.ndarray]:
    """First frames of held-out platformer levels."""
    from wm_hub.envs.platformer import PlatformerEnv

    env = PlatformerEnv()
    return [env.reset(seed=first_level + i)[0] for i in range(count)]
