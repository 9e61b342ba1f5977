"""Drive the dashboards in a real browser (Debian's chromium through Playwright): load a page,
wait until Streamlit has finished running it, collect what it shows, save a screenshot.

Used by tests/integration/test_dashboards_browser.py, and by maintainers to refresh the
README's screenshots from the demo's data (`make demo` leaves the dashboards running):

    .venv/bin/python -m tests.dashboard_browser --out docs/images

Playwright's own browser download is not used: it launches /usr/bin/chromium (`make
system-deps` installs it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecom.config import load_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ("business", "realtime", "operations", "quality")
VIEWPORT = {"width": 1440, "height": 1000}
MAX_HEIGHT = 6000
#: the app's root element carries the script's state; "notRunning" = the page is drawn
DRAWN = '[data-testid="stApp"][data-test-script-state="notRunning"]'


@dataclass(frozen=True)
class Rendered:
    """What a page showed once Streamlit had finished running it."""

    url: str
    text: str
    metrics: dict[str, str]
    exceptions: list[str]
    errors: list[str]
    charts: int
    screenshot: Path | None
    script_errors: list[str]


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (the Debian package) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def render(chromium: Any, url: str, screenshot: Path | None = None,
           timeout_s: float = 90.0) -> Rendered:
    """Open `url`, wait until the script has run and its charts are drawn, read the page."""
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    # what the page's scripts (Vega drawing a chart, say) report as errors
    script_errors: list[str] = []
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    page.on("console", lambda msg: script_errors.append(msg.text) if msg.type == "error"
            and not msg.text.startswith("Failed to load resource") else None)
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_s * 1000)
        page.wait_for_selector(DRAWN, timeout=timeout_s * 1000)
        # a page may run again at once (`/` switches to /business): drawn, and still drawn
        # a second later
        page.wait_for_timeout(1000)
        page.wait_for_selector(DRAWN, timeout=timeout_s * 1000)
        # Vega draws each chart after the script has finished: wait for their canvases
        page.wait_for_function(
            """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
                     .every(c => c.querySelector('canvas, svg'))""",
            timeout=timeout_s * 1000)
        page.wait_for_timeout(500)  # the last layout pass
        metrics = {}
        for metric in page.locator('[data-testid="stMetric"]').all():
            label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
            metrics[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
        shot = None
        if screenshot is not None:
            # the page scrolls inside the app's main element, not the document: grow the
            # window to the content's height so the screenshot holds the whole page
            height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
                '[data-testid="stMain"], [data-testid="stMainBlockContainer"]')]
                .map(e => e.scrollHeight))""")
            page.set_viewport_size({"width": VIEWPORT["width"],
                                    "height": min(int(height) + 40, MAX_HEIGHT)})
            page.wait_for_timeout(800)  # charts re-lay out to the new size
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            shot = screenshot
        return Rendered(
            url=url,
            text=page.locator('[data-testid="stMain"]').inner_text(),
            metrics=metrics,
            exceptions=page.locator('[data-testid="stException"]').all_inner_texts(),
            errors=[t for t in page.locator('[data-testid="stAlertContentError"]')
                    .all_inner_texts()],
            charts=page.locator('[data-testid="stVegaLiteChart"]').count(),
            screenshot=shot,
            script_errors=script_errors,
        )
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"),
                        help="folder for dashboard-<page>.png (default docs/images)")
    parser.add_argument("--url", help="the dashboards' address (default: "
                        "http://127.0.0.1:ECOM_DASHBOARD_PORT)")
    args = parser.parse_args(argv)
    base = (args.url or f"http://127.0.0.1:{load_settings().dashboard_port}").rstrip("/")
    failed = False
    with browser() as chromium:
        for name in PAGES:
            shown = render(chromium, f"{base}/{name}", args.out / f"dashboard-{name}.png")
            problems = shown.exceptions + shown.errors + shown.script_errors
            failed = failed or bool(problems)
            print(f"{name:<11} {len(shown.metrics)} figures, {shown.charts} charts -> "
                  f"{shown.screenshot}" + (f"  PROBLEM: {problems}" if problems else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
