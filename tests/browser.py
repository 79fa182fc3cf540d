"""The headless browser the HTML-report tests open pages in, when one is installed."""

from __future__ import annotations

import shutil


def chromium() -> str | None:
    """Path of a Chromium-family browser, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None
