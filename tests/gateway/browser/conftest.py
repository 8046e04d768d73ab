"""Headless Chromium for the dashboard tests: Debian's system browser driven by Playwright.

Never downloads a browser: the executable is RACEDAY_CHROMIUM or the first of the usual system
paths. Without one (or without the playwright package) the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

try:
    from playwright.async_api import Browser, Page, ViewportSize, async_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
VIEWPORT: ViewportSize = {"width": 1680, "height": 1000}


def find_chromium() -> str | None:
    """The system Chromium, if any."""
    configured = os.environ.get("RACEDAY_CHROMIUM", "").strip()
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    return found


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The browser executable, or a skip with the reason (a failure in CI, which installs Chromium)."""
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    missing = None
    if async_playwright is None:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    path = find_chromium()
    if missing is None and path is None:
        missing = "no Chromium found (apt-get install chromium, or set RACEDAY_CHROMIUM)"
    if missing is not None:
        if in_ci:
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)
    assert path is not None
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """One headless Chromium per test module."""
    assert async_playwright is not None
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium_path, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh page (own context, NZ-agnostic UTC zone) that fails the test on script errors."""
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="UTC", locale="en-NZ")
    new_page = await context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    new_page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    try:
        yield new_page
    finally:
        await context.close()
    assert not errors, f"browser errors in {request.node.name}: {errors}"


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
