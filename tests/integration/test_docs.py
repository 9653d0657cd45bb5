"""``/docs``: the page in process (fast), then in a real browser: headless Chromium against
the real server (slow).

Chromium is driven over its DevTools protocol (CDP) through ``--remote-debugging-pipe``: the
JSON messages travel on two pipes (the browser reads fd 3 and writes fd 4, each message ended
by a NUL byte), so the driver below needs no websocket library and no debugging port.

The test loads the page from ``python server.py`` (SECRET set, see the ``server`` fixture)
and checks: no console error, exception or failed load; one operation block per operation of
``/openapi.json``; and a "Try it out" call of ``GET /v1/methods`` after entering the secret
with the Authorize button, which goes out with ``X-SECRET-KEY`` and answers 200.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); set
``CHROMIUM`` to use another binary. Without one the test is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autointerp_grpc.rest.docs import docs_page_html

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    given = os.environ.get("CHROMIUM")
    if given:
        return shutil.which(given)
    return next((path for name in _CANDIDATES if (path := shutil.which(name))), None)


def _above_9(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """A headless Chromium and one page in it, over CDP on a pair of pipes."""

    def __init__(self, executable: str, profile: Path, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser's ends move above fd 9 first, so that making them fds 3 and 4 in the
        # child can never overwrite one with the other.
        to_browser_r, from_browser_w = (_above_9(to_browser_r), _above_9(from_browser_w))
        flags = [
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,2000",
            "about:blank",
        ]
        # bash (not sh) for fd numbers above 9: the pipes become the browser's fds 3 and 4.
        script = (
            f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} '
            f"{to_browser_r}<&- {from_browser_w}>&-"
        )
        self.log_path = profile / "chromium.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", script, executable, *flags],
                pass_fds=(to_browser_r, from_browser_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = ""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=None)
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=None
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _read(self) -> None:
        buffer = b""
        with open(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._changed:
                    for raw in messages:
                        message = json.loads(raw)
                        if "id" in message:
                            self._replies[message["id"]] = message
                        else:
                            self.events.append(message)
                    self._changed.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """Sends one command (to the page unless ``session=None``) and returns its result."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        session = kw.get("session", self.session)
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        with self._changed:
            while message_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise TimeoutError(f"{method}: no answer from Chromium\n{self.log()}")
                self._changed.wait(left)
            reply = self._replies.pop(message_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """Polls ``expression`` in the page until it is truthy; returns its value."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if value := self.evaluate(expression):
                return value
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}")

    def wait_for_event(self, method: str, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        with self._changed:
            while not (found := [e for e in self.events if e["method"] == method]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out waiting for {what}")
                self._changed.wait(left)
        return found[0]

    def problems(self) -> list[str]:
        """Everything the page reported as going wrong: console errors, uncaught exceptions,
        error log entries (a failed load, a refused script) and failed or 4xx/5xx loads."""
        found = []
        with self._changed:
            events = list(self.events)
        for event in events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params}")
            elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                found.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", session=None)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "no Chromium found (tried $CHROMIUM, " + ", ".join(_CANDIDATES) + "): "
            "`apt-get install -y chromium` (.ci/run does) to run the /docs browser test"
        )
    running = Browser(executable, tmp_path)
    try:
        yield running
    finally:
        running.close()


# A JS helper: the page's operation blocks as [METHOD, path] pairs.
_OPERATIONS_JS = """
Array.from(document.querySelectorAll('.opblock')).map(block => [
  block.querySelector('.opblock-summary-method').textContent.trim(),
  block.querySelector('.opblock-summary-path').getAttribute('data-path'),
])
"""

# Finds GET /v1/methods's block; expands it with a click when asked.
_METHODS_BLOCK_JS = """
(() => {
  const block = Array.from(document.querySelectorAll('.opblock-get')).find(b =>
    b.querySelector('.opblock-summary-path').getAttribute('data-path') === '/v1/methods');
  return block;
})()
"""


def _click(browser: Browser, selector: str, within: str = "document") -> None:
    found = browser.evaluate(
        f"(() => {{ const el = ({within}).querySelector({json.dumps(selector)});"
        " if (!el) return false; el.click(); return true; })()"
    )
    assert found, f"nothing to click at {selector!r}"


# --- in process -----------------------------------------------------------------------------


async def test_docs_page_is_open_and_self_contained(app) -> None:
    # Open like /openapi.json: no secret needed, though the app has one.
    response = await app.rest.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '"/openapi.json"' in page
    # No CDN: nothing the page loads comes from another host.
    assert "http://" not in page
    assert "https://" not in page
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        assert f"/docs/assets/{asset}" in page
        served = await app.rest.get(f"/docs/assets/{asset}")
        assert served.status_code == 200
        assert kind in served.headers["content-type"]
        assert len(served.content) > 10_000


async def test_openapi_declares_the_secret_for_the_authorize_button(app) -> None:
    document = (await app.rest.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-SECRET-KEY"} in schemes.values()
    assert document["security"]


def test_docs_page_follows_the_root_path() -> None:
    page = docs_page_html("/autointerp")
    assert 'href="/autointerp/docs/assets/swagger-ui.css"' in page
    assert 'src="/autointerp/docs/assets/swagger-ui-bundle.js"' in page
    assert 'url: "/autointerp/openapi.json"' in page


# --- in Chromium ------------------------------------------------------------------------------


@pytest.mark.slow
def test_docs_page_in_chromium(server, browser: Browser) -> None:
    document = httpx.get(f"{server.http_base}/openapi.json", timeout=10).json()
    expected = sorted(
        [method.upper(), path] for path, item in document["paths"].items() for method in item
    )

    browser.call("Page.navigate", {"url": f"{server.http_base}/docs"})
    browser.wait_for_event("Page.loadEventFired", "the page's load event")
    count = len(expected)
    browser.wait_for(
        f"document.querySelectorAll('.opblock').length >= {count}", "the operations to render"
    )

    # Every operation of the document, and nothing else.
    assert sorted(browser.evaluate(_OPERATIONS_JS)) == expected
    # The page's own files came from this server, not from a CDN.
    loaded = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert f"{server.http_base}/docs/assets/swagger-ui-bundle.js" in loaded
    fetched = [url for url in loaded if not url.startswith(("data:", "blob:"))]
    assert all(url.startswith(f"{server.http_base}/") for url in fetched), fetched

    # Authorize: the secret goes into the apiKey dialog.
    _click(browser, ".auth-wrapper .authorize")
    browser.wait_for("!!document.querySelector('.auth-container input')", "the Authorize dialog")
    browser.evaluate("document.querySelector('.auth-container input').focus()")
    browser.call("Input.insertText", {"text": server.secret})
    _click(browser, ".auth-container .auth-btn-wrapper .authorize")
    browser.wait_for(
        "Array.from(document.querySelectorAll('.auth-container button'))"
        ".some(b => b.textContent.trim() === 'Logout')",
        "the secret to be accepted",
    )
    _click(browser, ".auth-container .btn-done")

    # Try it out: GET /v1/methods from the page.
    _click(browser, ".opblock-summary-control", within=_METHODS_BLOCK_JS)
    browser.wait_for(f"!!{_METHODS_BLOCK_JS}.querySelector('.try-out__btn')", "Try it out")
    _click(browser, ".try-out__btn", within=_METHODS_BLOCK_JS)
    browser.wait_for(f"!!{_METHODS_BLOCK_JS}.querySelector('.execute')", "Execute")
    _click(browser, ".execute", within=_METHODS_BLOCK_JS)
    status = browser.wait_for(
        f"(() => {{ const cell = {_METHODS_BLOCK_JS}"
        ".querySelector('.live-responses-table tr.response .response-col_status');"
        " return cell && cell.textContent.trim(); })()",
        "the response of GET /v1/methods",
    )
    assert status == "200", status
    shown = browser.evaluate(
        f"{_METHODS_BLOCK_JS}.querySelector('.live-responses-table .microlight').textContent"
    )
    assert "methods" in json.loads(shown)

    # The call went out from the page with the secret, and the server answered it.
    sent = [
        e["params"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
        and e["params"]["request"]["url"] == f"{server.http_base}/v1/methods"
    ]
    assert len(sent) == 1
    headers = {k.lower(): v for k, v in sent[0]["request"]["headers"].items()}
    assert headers["x-secret-key"] == server.secret

    assert browser.problems() == [], browser.log()
