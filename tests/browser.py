"""A real headless Chromium (Debian's ``chromium``) for the page tests and the README's
screenshot, driven over the DevTools protocol with aiohttp's websocket client: no Selenium, no
driver binary.

Flags as FIELD-NOTES says for root on this machine (``--no-sandbox``, no background networking,
no component updates, a fresh ``--user-data-dir``), ``--remote-debugging-port=0`` (Chromium
writes the port it took to ``DevToolsActivePort`` in the profile). Every wait is bounded: page
conditions are awaited inside the page (a MutationObserver, resolved or timed out in
JavaScript), never by sleeping and looking again. ``close()`` ends every process Chromium
started (its own session, killed as a group).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.netfakes import ThreadedLoop

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
_RECORDER = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def chromium_binary() -> str:
    """Debian's chromium, or a clear failure saying how to get it (``.ci/run`` installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium not found: apt-get install chromium (.ci/run does it for CI)")
    return found


class BrowserError(Exception):
    pass


class Chromium:
    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        self.width, self.height, self.timeout = width, height, timeout
        self._profile = Path(tempfile.mkdtemp(prefix="erixcast-chromium-"))
        self._log = (self._profile / "chromium-output.log").open("wb")  # removed with it
        self._loop = ThreadedLoop()
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.requests: list[str] = []
        """Every URL the page asked for (Network.requestWillBeSent)."""
        self.console_errors: list[str] = []
        self._events: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            [
                chromium_binary(),
                *FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._loop.run(self._connect(), timeout=timeout + 5)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------ life
    async def _connect(self) -> None:
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        # Chromium writes the file once it listens; watched by its process being alive and the
        # deadline (the file appears within a second or two here).
        while not port_file.exists():
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port in time")
            await _tick()
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        for method in ("Page.enable", "Runtime.enable", "Network.enable"):
            await self._call(method)
        await self._call("Page.addScriptToEvaluateOnNewDocument", source=_RECORDER)
        await self._call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None:
                self._loop.run(self._call("Browser.close"), timeout=5)
        with contextlib.suppress(Exception):
            if self._session is not None:
                self._loop.run(self._session.close(), timeout=5)
        family = []
        with contextlib.suppress(psutil.NoSuchProcess):
            family = psutil.Process(self.process.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        psutil.wait_procs(family, timeout=10)
        self._loop.close()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------------------- protocol
    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        ident = next(self._ids)
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = await self._ws.receive(timeout=self.timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise BrowserError(f"DevTools connection ended: {message.type}")
            data = json.loads(message.data)
            if data.get("id") == ident:
                if "error" in data:
                    raise BrowserError(f"{method}: {data['error']}")
                return data.get("result", {})
            self._note(data)

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params.get("exceptionDetails")))
        self._events.append(event)

    async def _until_event(self, name: str) -> None:
        assert self._ws is not None
        if any(e.get("method") == name for e in self._events):
            return
        while True:
            message = await self._ws.receive(timeout=self.timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise BrowserError(f"DevTools connection ended: {message.type}")
            data = json.loads(message.data)
            self._note(data)
            if data.get("method") == name:
                return

    # ------------------------------------------------------------------------- for tests
    def open(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Navigate and wait for the load event."""

        async def go() -> None:
            if headers:
                await self._call("Network.setExtraHTTPHeaders", headers=headers)
            self._events.clear()
            answer = await self._call("Page.navigate", url=url)
            if answer.get("errorText"):
                raise BrowserError(f"{url}: {answer['errorText']}")
            await self._until_event("Page.loadEventFired")

        self._loop.run(go(), timeout=self.timeout + 5)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (a Promise is awaited)."""

        async def run() -> Any:
            answer = await self._call(
                "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
            )
            if "exceptionDetails" in answer:
                raise BrowserError(f"{expression[:80]}: {answer['exceptionDetails']}")
            return answer.get("result", {}).get("value")

        return self._loop.run(run(), timeout=self.timeout + 5)

    def wait_for_text(self, text: str, timeout: float = 20.0) -> str:
        """Wait (in the page) until ``text`` is part of what a person sees (``innerText``);
        the visible text then."""
        script = f"""new Promise((resolve, reject) => {{
          const wanted = {json.dumps(text)};
          const seen = () => document.body && document.body.innerText.includes(wanted);
          if (seen()) return resolve(document.body.innerText);
          const watch = new MutationObserver(() => {{
            if (seen()) {{ watch.disconnect(); clearTimeout(timer); resolve(document.body.innerText); }}
          }});
          watch.observe(document, {{subtree: true, childList: true, characterData: true}});
          const timer = setTimeout(() => {{
            watch.disconnect();
            reject(new Error('not shown within {timeout} s: ' + wanted));
          }}, {int(timeout * 1000)});
        }})"""
        return str(self.evaluate(script))

    def visible_text(self) -> str:
        return str(self.evaluate("document.body.innerText"))

    def type_and_enter(self, selector: str, text: str) -> None:
        """Focus ``selector``, type ``text`` as keystrokes would insert it, press Enter."""

        async def run() -> None:
            await self._call(
                "Runtime.evaluate",
                expression=f"document.querySelector({json.dumps(selector)}).focus()",
            )
            await self._call("Input.insertText", text=text)
            for kind in ("keyDown", "keyUp"):
                await self._call(
                    "Input.dispatchKeyEvent",
                    type=kind,
                    key="Enter",
                    code="Enter",
                    windowsVirtualKeyCode=13,
                    text="\r" if kind == "keyDown" else "",
                )

        self._loop.run(run(), timeout=self.timeout + 5)

    def violations(self) -> list[str]:
        """Content-Security-Policy violations the page reported."""
        return list(self.evaluate("window.__violations || []") or [])

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        async def run() -> bytes:
            params: dict[str, Any] = {"format": "png"}
            if full_page:
                metrics = await self._call("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                params.update(
                    captureBeyondViewport=True,
                    clip={
                        "x": 0,
                        "y": 0,
                        "width": self.width,
                        "height": max(self.height, int(size["height"])),
                        "scale": 1,
                    },
                )
            answer = await self._call("Page.captureScreenshot", **params)
            return base64.b64decode(answer["data"])

        path.write_bytes(self._loop.run(run(), timeout=self.timeout + 5))
        return path


async def _tick() -> None:
    """Yield to the loop briefly while Chromium starts (bounded by the caller's deadline)."""
    await asyncio.sleep(0.05)
