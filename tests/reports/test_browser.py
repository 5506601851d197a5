"""The report in a real browser: headless Chromium (Debian's package) opens it offline,
with no console errors and every image loaded, and the checker itself catches a page
that has them. scripts/test installs Chromium and sets LATBENCH_TEST_CHROMIUM, so CI
runs these; elsewhere they are skipped when no Chromium is found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from latbench.reports.browser import check_report, find_chromium
from latbench.reports.build import build_report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> str:
    pytest.importorskip("playwright", reason="playwright is optional: the browser tests need it and Chromium")
    wanted = os.environ.get("LATBENCH_TEST_CHROMIUM")
    found = wanted or find_chromium()
    if not found:
        pytest.skip(
            "no Chromium here (scripts/test installs Debian's chromium and sets LATBENCH_TEST_CHROMIUM)"
        )
    return found


def test_the_report_renders_offline_with_every_image_and_no_console_error(
    searches: Any, chromium: str, tmp_path: Path
) -> None:
    files = build_report([searches.gp], tmp_path / "r", baselines=[searches.random])
    shot = Path(os.environ.get("LATBENCH_SCREENSHOT_DIR", tmp_path)) / "report-screenshot.png"
    result = check_report(files.html, shot, executable=chromium)
    assert result.ok, result.problems
    assert result.images == len(files.images) == 3
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000


def test_the_check_catches_console_errors_broken_images_and_network_requests(
    chromium: str, tmp_path: Path
) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        '<img src="missing.png" alt="missing figure">'
        '<img src="https://example.invalid/x.png" alt="remote figure">'
        '<script>console.error("boom")</script></body></html>'
    )
    result = check_report(page, tmp_path / "bad.png", executable=chromium)
    text = "\n".join(result.problems)
    assert not result.ok
    assert "console error: boom" in text
    assert "image did not load: missing figure" in text and "image did not load: remote figure" in text
    assert "the page asked the network for https://example.invalid/x.png" in text
