"""Helpers for the browser tests: the app served by `moodshelf serve` in its own process (fresh
MOODSHELF_HOME, free port, 127.0.0.1) and headless Chromium from Debian's `chromium` package driven by
Playwright's sync API (no browser download).

    with AppServer(home, env={"OPENAI_API_KEY": ...}, base_model=tiny_model_dir) as app, chromium() as browser:
        page = browser.new_page()
        page.goto(app.url)

Tests that use them skip, with the reason, when Playwright or /usr/bin/chromium is missing.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("MOODSHELF_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent


def require_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def api_client(url: str):
    """gradio_client's Client for the app at `url`, patient with a loaded machine: its default 5 s timeout for
    fetching the app's config ran out on CI while a training run shared the two cores."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={"timeout": 60})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python -m app.cli serve` in a child process; `url` once it answers. Its output goes to a log file
    whose tail is shown if it fails to start."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None, base_model: str | None = None,
                 timeout_s: float = 90):
        self.home, self.port, self.timeout_s = Path(home), free_port(), timeout_s
        self.env = {**os.environ, "MOODSHELF_HOME": str(home), "PYTHONPATH": str(REPO),
                    "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.env.pop("DATABASE_URL", None)
        self.args = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)]
        if base_model:
            self.args += ["--base-model", base_model]
        self.log = self.home / "serve.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> "AppServer":
        self.home.mkdir(parents=True, exist_ok=True)
        out = self.log.open("wb")
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + self.timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"the app did not answer in {self.timeout_s:.0f} s:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    # expect()'s own 5 s default ran out on CI while a training run shared the two cores; a passing check
    # returns as soon as it holds, so a longer limit costs nothing.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
