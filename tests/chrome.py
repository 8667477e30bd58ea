"""A small Chrome DevTools Protocol client for the browser tests: headless Chromium on loopback.

Chromium's own flags (`--screenshot`, `--dump-dom`) cannot submit a form, wait for a script-
rendered page (Swagger UI) or read computed styles; the DevTools protocol over its websocket
can, with nothing but the `websockets` package uvicorn already brings.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


class Page:
    """One tab: navigate, evaluate, screenshot, print; console errors are collected."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.console_errors: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _note(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.console_errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
        self.events.append(message)

    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._note(message)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        for i, message in enumerate(self.events):
            if message.get("method") == method:
                del self.events[: i + 1]
                return message
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self._note(message)
            if message.get("method") == method:
                self.events.clear()
                return message

    def size(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )

    def goto(self, url: str) -> None:
        self.events.clear()
        self.console_errors.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def submit(self, fill: str) -> None:
        """Run `fill` (which submits a form) and wait for the page it leads to."""
        self.events.clear()
        self.console_errors.clear()
        self.eval(fill)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {expression}")

    def screenshot(self, path: Path, width: int, max_height: int = 6000) -> int:
        """A full-page PNG `width` px wide; returns its height."""
        self.size(width, 800)
        height = int(self.eval("Math.ceil(document.documentElement.scrollHeight)"))
        height = max(200, min(height, max_height))
        self.size(width, height)
        # Lazy images start loading once the tall viewport shows them: wait for them.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not self.eval(
            "Array.from(document.images).every(i => i.complete)"
        ):
            time.sleep(0.2)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return height

    def pdf(self, width_in: float, height_in: float) -> bytes:
        data = self.send(
            "Page.printToPDF", paperWidth=width_in, paperHeight=height_in, printBackground=True
        )["data"]
        return base64.b64decode(data)


class Chrome:
    """Headless Chromium with a DevTools websocket on 127.0.0.1; its background traffic is off."""

    def __init__(self, profile: Path) -> None:
        binary = chromium_path()
        assert binary, "Chromium is not installed"
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + 60
        self.endpoint = browser_url = ""
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on ((ws://127\.0\.0\.1:\d+)/\S+)", line)
            if found:
                self.endpoint = found.group(2)
                browser_url = found.group(1)
                break
            if not line and self.process.poll() is not None:
                break
        assert self.endpoint, "Chromium did not open its DevTools port"
        self.stack = ExitStack()
        self.browser = self.stack.enter_context(connect(browser_url, max_size=None))

    def page(self) -> Page:
        self.browser.send(
            json.dumps({"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}})
        )
        while True:
            message = json.loads(self.browser.recv(timeout=30))
            if message.get("id") == 1:
                target = message["result"]["targetId"]
                break
        return Page(
            self.stack.enter_context(
                connect(f"{self.endpoint}/devtools/page/{target}", max_size=None)
            )
        )

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            if self.process.stderr is not None:
                self.process.stderr.close()

    def __enter__(self) -> Chrome:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
