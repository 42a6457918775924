"""Headless Chromium driven over the DevTools protocol: just enough to look at a dashboard.

`--dump-dom` cannot log in: the Ray dashboard asks for the token in a dialog and keeps it
in an HttpOnly cookie. So the page is opened for real, the token is posted to the
dashboard's own `/api/authenticate` from inside the page (what the dialog's button does),
and then the page's rendered text and a screenshot are read back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp  # comes with ray[default] (the dashboard is built on it)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
]


class Chromium:
    """One headless Chromium with a fresh profile; `async with` one page (`Page`)."""

    def __init__(self, size=(1400, 1000)):
        self.profile = tempfile.mkdtemp(prefix="medflip-chromium-")
        cmd = [
            shutil.which("chromium") or "chromium",
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "--remote-debugging-port=0",
            f"--window-size={size[0]},{size[1]}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = self._wait_port()

    def _wait_port(self, timeout_s=60.0) -> int:
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode()[-2000:]}")
            if port_file.exists() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.2)
        raise TimeoutError("chromium did not open its DevTools port")

    def page_ws(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        return pages[0]["webSocketDebuggerUrl"]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """A DevTools session on one tab: evaluate JS, navigate, screenshot."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def js(self, expression: str):
        out = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression[:80]}: {out['exceptionDetails']}")
        return out["result"].get("value")

    async def goto(self, url: str):
        await self.call("Page.navigate", url=url)

    async def wait_text(self, needles: list[str], timeout_s: float = 60.0) -> str:
        """Poll the rendered text until every needle shows (React renders after fetches)."""
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            try:
                text = await self.js("document.body ? document.body.innerText : ''") or ""
            except RuntimeError:  # the page navigated or reloaded under us: look again
                text = ""
            if all(n in text for n in needles):
                return text
            await asyncio.sleep(1.0)
        return text

    async def screenshot(self, path: Path):
        out = await self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(out["data"]))


async def _visit(ws_url: str, steps):
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        return await steps(Page(ws))


def visit(steps, size=(1400, 1000)):
    """Run `async steps(page)` in a fresh headless Chromium; returns what steps returns."""
    browser = Chromium(size)
    try:
        return asyncio.run(_visit(browser.page_ws(), steps))
    finally:
        browser.close()
