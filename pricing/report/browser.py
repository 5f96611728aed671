"""The headless Chromium a report is opened in, by the bench's report stage, ``make docs``
(``docs/screenshot.py``) and the browser tests: which binary, and with which flags (no
sandbox, GPU, background networking or first-run pages, so that it runs in a container
and fetches nothing)."""

from __future__ import annotations

import os
import shutil

#: names another Chromium binary than the one on the PATH
CHROMIUM_ENV = "PRICING_CHROMIUM"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]


def chromium() -> str | None:
    """The Chromium binary: ``$PRICING_CHROMIUM``, else ``chromium`` on the PATH; None
    when there is neither."""
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
