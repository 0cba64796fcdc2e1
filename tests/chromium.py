"""Drive the system's headless Chromium through the DevTools protocol (tests only).

Nothing is downloaded: this starts Debian's ``/usr/bin/chromium`` with
``--remote-debugging-port=0``, reads the browser's websocket address from its stderr and
speaks CDP over one websocket (``websocket-client``), one flat session per page. A page
records what a person would notice: console errors, uncaught exceptions, failed loads,
JavaScript dialogs (dismissed at once, and counted), and the document's HTTP status.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websocket

__all__ = ["Browser", "Page", "find_chromium"]

# The flags the machine notes say a root, offline, headless run needs (python.md).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--force-device-scale-factor=1", "--remote-debugging-port=0",
]
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium process and its CDP websocket."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="lc-chromium-")
        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # its home in the profile too: Chromium writes crash reports under
            # ~/.config/chromium and dconf's cache under ~/.cache whatever the profile,
            # and a test run must write nothing in the user's home
            text=True, env={**os.environ, "LANG": "en_US.UTF-8", "HOME": self._profile,
                            "XDG_CONFIG_HOME": os.path.join(self._profile, "config"),
                            "XDG_CACHE_HOME": os.path.join(self._profile, "cache")},
        )
        self._stderr: list[str] = []
        found: list[str] = []
        ready = threading.Event()

        def read_stderr() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self._stderr.append(line)
                m = _LISTENING.search(line)
                if m and not found:
                    found.append(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not ready.wait(timeout) or not found:
            self.close()
            raise RuntimeError("chromium did not start: " + "".join(self._stderr[-20:]))
        self.ws = websocket.create_connection(found[0], timeout=timeout, suppress_origin=True)
        self._next = 0
        self._lock = threading.RLock()  # a dialog is dismissed from inside a read
        self.sessions: dict[str, Page] = {}

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, wait: bool = True) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            ident = self._next
            msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self.ws.send(json.dumps(msg))
            if not wait:
                return {}
            deadline = time.monotonic() + self.timeout
            while True:
                reply = self._recv(deadline)
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})

    def pump(self, seconds: float) -> None:
        """Read events for a while (no call outstanding)."""
        with self._lock:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    self._recv(deadline)
                except TimeoutError:
                    return

    def _recv(self, deadline: float) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium in time")
            self.ws.settimeout(left)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                raise TimeoutError("no answer from chromium in time") from None
            msg = json.loads(raw)
            if "method" in msg and "id" not in msg:
                page = self.sessions.get(msg.get("sessionId", ""))
                if page is not None:
                    page._event(msg["method"], msg.get("params", {}))
                continue
            return msg

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        self.sessions[session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.resize(width, height)
        return page

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self.send("Browser.close", wait=False)
                finally:
                    self.ws.close()
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab: navigate, evaluate, screenshot; what went wrong is in ``problems()``."""

    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.dialogs: list[str] = []
        self.status: int | None = None
        self._loaded = False

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def _event(self, method: str, params: dict[str, Any]) -> None:
        self.events.append((method, params))
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            self.browser.send("Page.handleJavaScriptDialog", {"accept": False},
                              self.session, wait=False)
        elif method == "Page.loadEventFired":
            self._loaded = True
        elif method == "Network.responseReceived" and params.get("type") == "Document":
            self.status = params["response"]["status"]

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def goto(self, url: str, settle: float = 0.3) -> None:
        """Load url, wait for its load event and for every image it shows to finish."""
        self.events.clear()
        self.dialogs.clear()
        self.status = None
        self._loaded = False
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.browser.timeout
        while not self._loaded:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            self.browser.pump(0.05)
        self.wait_for_images()
        self.browser.pump(settle)

    def wait_for_images(self) -> None:
        self.eval("""Promise.all(Array.from(document.images).filter(i => !i.complete &&
            i.loading !== 'lazy').map(i => new Promise(r => { i.onload = i.onerror = r; })))""",
                  await_promise=True)

    def eval(self, expression: str, await_promise: bool = False) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads since the last goto."""
        found = []
        for method, p in self.events:
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                    for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:300])
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                e = p["entry"]
                found.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
            elif method == "Network.loadingFailed" and not p.get("canceled"):
                found.append(f"load failed: {p.get('errorText')}")
        return found

    def screenshot(self, path: Path, width: int = 1280, max_height: int = 2400,
                   selector: str | None = None, top: int = 0) -> Path:
        """A PNG of the whole page from top (up to max_height), or of the element
        selector names (with a margin), every lazy image loaded first."""
        height = int(self.eval("Math.ceil(document.documentElement.scrollHeight)") or 900)
        height = max(400, min(height - top, max_height))
        self.resize(width, height + top)
        self.eval("document.querySelectorAll('img[loading=lazy]').forEach(i => "
                  "i.loading = 'eager')")
        self.wait_for_images_all()
        self.browser.pump(0.2)
        clip = {"x": 0, "y": top, "width": width, "height": height, "scale": 1}
        if selector is not None:
            box = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.left + window.scrollX, "
                            "r.top + window.scrollY, r.width, r.height]; })()")
            clip = {"x": max(0, box[0] - 12), "y": max(0, box[1] - 12),
                    "width": min(width, box[2] + 24), "height": min(max_height, box[3] + 24),
                    "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip,
                         captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.resize(width, 900)
        return path

    def press(self, key: str) -> None:
        """A key pressed and released as a person would (ArrowLeft, ArrowRight, Home...)."""
        codes = {"ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40,
                 "Home": 36, "End": 35, "Enter": 13}
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=codes.get(key, 0))

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value (TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}")
            self.browser.pump(0.05)

    def wait_for_images_all(self) -> None:
        self.eval("""Promise.all(Array.from(document.images).filter(i => !i.complete)
            .map(i => new Promise(r => { i.onload = i.onerror = r; })))""", await_promise=True)

    def texts(self, selector: str) -> list[str]:
        return self.eval(f"Array.from(document.querySelectorAll({json.dumps(selector)}))"
                         ".map(e => e.textContent)")

    def count(self, selector: str) -> int:
        return int(self.eval(f"document.querySelectorAll({json.dumps(selector)}).length"))

    def attrs(self, selector: str, name: str) -> list[str | None]:
        return self.eval(f"Array.from(document.querySelectorAll({json.dumps(selector)}))"
                         f".map(e => e.getAttribute({json.dumps(name)}))")

    def click(self, selector: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)})"
                  ".dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))")
