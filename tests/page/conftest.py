"""Fixtures for the demo page tests: the real service in a subprocess and Debian's chromium.

The service is started the way users start it (`python -m uvicorn app.main:app` with
`CAPSNET_*` settings) on a free loopback port, on the shipped weights, and the tests wait for
`/readyz`. The browser is Debian's `chromium` package driven by Playwright (its own browser
download needs internet this machine may not have); `scripts/ensure-chromium.sh` installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.testing import free_port, wait_ready

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights" / "capsnet-mnist.safetensors"
ARTIFACTS = REPO / "test-artifacts"
READY_TIMEOUT_S = 120.0  # generous: a loaded 2-core machine (training alongside) starts slowly
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """Debian's chromium (or CAPSNET_CHROMIUM), or None when there is none on this machine."""
    candidates = [os.environ.get("CAPSNET_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on the shipped weights, on a free loopback port, ready to answer."""
    weights = Path(os.environ.get("CAPSNET_WEIGHTS", WEIGHTS))  # the shipped weights unless told
    if not weights.exists():
        pytest.fail(f"the weights are missing: {weights}")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "uvicorn.log"
    env = os.environ | {
        "CAPSNET_HOST": "127.0.0.1",
        "CAPSNET_PORT": str(port),
        "CAPSNET_WEIGHTS": str(weights),
        "CAPSNET_DEVICE": "cpu",
        "CAPSNET_LOG_LEVEL": "warning",
    }
    env.pop("CAPSNET_API_KEY", None)  # the page sends no key
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, READY_TIMEOUT_S, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium: run scripts/ensure-chromium.sh (installs Debian's chromium package)")
    reason = "playwright is not installed: pip install -e '.[test]'"
    sync_api = pytest.importorskip("playwright.sync_api", reason=reason)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_demo(browser, base_url: str) -> Iterator[Callable[..., object]]:
    """Opens `/` in a fresh browser context (keyword arguments go to `new_context`).

    At teardown, any uncaught script error or any request for something outside the service
    (a CDN, a web font) fails the test: the page must work with no internet.
    """
    contexts, errors, outside = [], [], []

    def only_the_service(route) -> None:
        if route.request.url.startswith((base_url, "blob:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def open_page(**context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        context.route("**/*", only_the_service)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base_url}/")
        page.wait_for_function("document.body.dataset.state === 'idle'")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    assert not outside, f"the page asked for resources outside the service: {outside}"


@pytest.fixture
def page(open_demo):
    """The page on a desktop-sized viewport."""
    return open_demo(viewport={"width": 1280, "height": 900})


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
