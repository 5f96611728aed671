"""Stage ``report``: the HTML report of a stored run, rendered and opened in headless
Chromium.

Markets: the shipped sample (36 segments, with its intervention plan) and simulated
markets of 1,000 and 10,000 segments (``pricing simulate --jobs-per-week 2 --seed 1``:
skill families of 12 categories), each run once by the nightly run without a budget
(planning is the interventions stage's subject) and stored in the cache. Per market:

- ``report.render`` times :func:`pricing.report.report.run_report` (three matplotlib
  figures, the tables, the template) on a freshly opened run, against **reading the
  stored run**: opening it and reading the tables the report uses, what any report of
  the run must at least do. The ratio says what the report costs beyond its data (it is
  all figure drawing).
- ``report.load`` times Chromium opening the written page until its load event with
  every figure decoded, against **an empty HTML page** opened in the same browser (the
  browser's own floor); its details are the seconds of one full-page screenshot.

The page is capped (30 heatmap categories, nine curve panels, 200 rows per table), so the
10,000-segment rows should match the 1,000-segment ones; the caps themselves are checked
in ``tests/test_report_browser.py``. Chromium is Debian's ``chromium`` (``make test``
installs it) or ``$PRICING_CHROMIUM``, driven by playwright with the flags the report
tests use.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pricing.bench.harness import Case
from pricing.bench.paths import cache_dir, sample_dir
from pricing.config import load_config
from pricing.market.simulate import SimulationSpec, simulate_market
from pricing.report.browser import FLAGS, chromium
from pricing.report.report import run_report
from pricing.runs.pipeline import run_batch
from pricing.runs.run import Run, load_run

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

#: the sample's size: this many segments means the shipped sample, with its plan
SAMPLE_SEGMENTS = 36
READ = ("curves", "equilibrium", "guidance", "market", "interventions")


def stored_run(segments: int) -> Run:
    """The stored nightly run of the sample (36) or of a simulated market (cached)."""
    folder = cache_dir() / f"report_{segments}"
    store = folder / "store"
    if not (store / "runs").is_dir():
        if segments == SAMPLE_SEGMENTS:
            data = sample_dir()
            config = load_config(data / "pricing.toml")
        else:
            data = folder / "data"
            spec = SimulationSpec(segments=segments, jobs_per_week=2.0, seed=1)
            simulate_market(spec).write(data, overwrite=True)
            config = load_config(data / "pricing.toml")
            config = config.model_copy(
                update={"interventions": config.interventions.model_copy(update={"budget": 0})}
            )
        started = time.perf_counter()
        run_batch(data, config, store)
        print(f"stored the {segments:,}-segment run in {time.perf_counter() - started:.0f} s")
    return load_run("latest", store)


def read(run: Run) -> None:
    """The render baseline: open the stored run and read the tables the report uses."""
    fresh = Run.open(run.path, run.store)
    for name in READ:
        fresh.table(name)


def page_load(browser: BrowserContext, page: Path) -> None:
    """Open ``page`` until its load event, every figure decoded."""
    tab = browser.new_page()
    tab.goto(page.as_uri(), wait_until="load")
    tab.evaluate("Promise.all([...document.images].map((i) => i.decode()))")
    tab.close()


def screenshot(browser: BrowserContext, page: Path, out: Path) -> dict[str, float]:
    """Seconds of one full-page screenshot of ``page``, once it is loaded."""
    tab = browser.new_page()
    tab.goto(page.as_uri(), wait_until="load")
    started = time.perf_counter()
    tab.screenshot(path=str(out), full_page=True)
    seconds = time.perf_counter() - started
    tab.close()
    return {"screenshot": seconds}


def _market_cases(
    segments: int, browser: BrowserContext, blank: Path, scratch: Path
) -> Iterator[Case]:
    run = stored_run(segments)
    params = {"segments": segments}
    yield Case(
        "report.render",
        params,
        lambda: run_report(Run.open(run.path, run.store)),
        "read the stored run",
        lambda: read(run),
    )
    page = run_report(run).write(scratch / f"report_{segments}.html")
    yield Case(
        "report.load",
        params,
        lambda: page_load(browser, page),
        "an empty page",
        lambda: page_load(browser, blank),
        details=lambda _: screenshot(browser, page, scratch / f"report_{segments}.png"),
    )


def cases(sizes: tuple[int, ...]) -> Iterator[Case]:
    """Both benchmarks for each market size, in one headless Chromium kept open while
    they run."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium: install chromium or set PRICING_CHROMIUM")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        scratch = Path(tmp)
        browser = p.chromium.launch_persistent_context(
            scratch / "profile",
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        blank = scratch / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body></body></html>")
        for segments in sizes:
            yield from _market_cases(segments, browser, blank, scratch)
        browser.close()
