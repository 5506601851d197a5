"""Open a report in a real browser (headless Chromium) and check what a reader would see.

``check_report`` loads the page from disk with every network request refused (a report
must work offline), then fails on anything the browser complains about: console errors
and warnings, uncaught script errors, requests that failed or tried the network, and
images that did not load. It saves a full-page screenshot, the evidence a person looks
at. Chromium is Debian's ``chromium`` package (``/usr/bin/chromium``), driven through
Playwright's Python package with that executable: nothing is downloaded.

    python -m latbench.reports.browser latbench-demo/report/report.html --screenshot shot.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
#: Flags for a headless Chromium on a machine with no network: without the background
#: ones it tries (and fails) to reach Google's services at every start.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass(frozen=True)
class BrowserCheck:
    screenshot: Path
    images: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def find_chromium() -> str | None:
    """The Chromium executable on PATH, or ``None``."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def check_report(
    html_path: str | Path,
    screenshot: str | Path,
    *,
    executable: str | None = None,
    width_px: int = 1280,
) -> BrowserCheck:
    """Load ``html_path`` in headless Chromium, offline; list every problem seen."""
    from playwright.sync_api import sync_playwright

    page_path = Path(html_path).resolve()
    if not page_path.is_file():
        raise FileNotFoundError(f"no report at {page_path}")
    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width_px, "height": 900})

            def on_request(route, request):  # type: ignore[no-untyped-def]
                if request.url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    problems.append(f"the page asked the network for {request.url}")
                    route.abort()

            page.route("**/*", on_request)
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed to load {r.url}: {r.failure}"))
            page.goto(page_path.as_uri(), wait_until="load")
            images = page.evaluate("document.images.length")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                ".map(i => i.alt || i.src.slice(0, 60))"
            )
            problems += [f"image did not load: {alt}" for alt in broken]
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return BrowserCheck(Path(screenshot), int(images), tuple(dict.fromkeys(problems)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="report.html")
    parser.add_argument("--screenshot", default="report-screenshot.png", help="PNG to write")
    parser.add_argument("--chromium", help="Chromium executable [chromium on PATH]")
    args = parser.parse_args(argv)
    try:
        result = check_report(args.report, args.screenshot, executable=args.chromium)
    except (FileNotFoundError, ImportError) as exc:
        print(f"latbench.reports.browser: error: {exc}", file=sys.stderr)
        return 2
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    status = "ok" if result.ok else f"{len(result.problems)} problem(s)"
    print(f"{status}: {result.images} images; screenshot {result.screenshot}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
