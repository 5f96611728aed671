"""Regenerate docs/report.png, the README's picture of the report (`make docs`).

A fresh `pricing run` of the shipped sample into a temporary store, its report opened in
headless Chromium the way tests/test_report_browser.py opens it (Debian's `chromium`, or
PRICING_CHROMIUM), and the top of the page — header, findings, overview — saved at
960 px wide. The file is replaced atomically; on any failure the old one stays.

    python docs/screenshot.py [--out docs/report.png] [--report FILE]

``--report`` takes the picture of an existing report instead of a fresh run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pricing.report.browser import FLAGS, chromium

#: the page's width and the height of the picture (the top of the report), in CSS px
WIDTH, HEIGHT = 960, 1312
OUT = Path(__file__).resolve().parent / "report.png"


def fresh_report(store: Path) -> Path:
    """`pricing run` of the sample into ``store`` (a real process); its report's path."""
    done = subprocess.run(
        [sys.executable, "-m", "pricing.cli", "run", "--store", str(store), "--json", "-q"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"pricing run failed (exit {done.returncode}):\n{done.stderr.strip()}")
    return Path(json.loads(done.stdout)["report"])


def screenshot(report: Path, out: Path) -> Path:
    """The top of ``report`` as a PNG at ``out`` (written atomically)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    if executable is None:
        sys.exit("Chromium is not installed: `make browser` installs it, or set PRICING_CHROMIUM")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=".png", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with (
            tempfile.TemporaryDirectory() as profile,
            sync_playwright() as p,
        ):
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=FLAGS,
                viewport={"width": WIDTH, "height": HEIGHT},
            )
            page = context.new_page()
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(tmp), clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
            context.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNG")
    parser.add_argument("--report", type=Path, help="an existing report instead of a fresh run")
    args = parser.parse_args()
    if args.report is not None:
        path = screenshot(args.report, args.out)
    else:
        with tempfile.TemporaryDirectory() as store:
            path = screenshot(fresh_report(Path(store) / "runs"), args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
