"""The report as a browser sees it: headless Chromium (Debian's ``chromium``, which
``make test`` installs when it is missing) opens the stored report files, takes
screenshots, and checks the DOM, the figures and the network.

Chromium runs with ``--headless --no-sandbox --disable-gpu --disable-background-networking
--no-first-run`` and a fresh profile directory; Playwright drives it over its DevTools
pipe. Another Chromium can be named with ``PRICING_CHROMIUM=/path/to/chromium``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE, VIEWPORT
from playwright.sync_api import BrowserContext, Page

from pricing.config import load_scenario
from pricing.report.report import REPORT_FILE, RUN_SECTIONS, SCENARIO_SECTIONS
from pricing.runs.backtest import PREDICTORS
from pricing.runs.run import Run, load_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`pricing run` and two what-ifs on the sample, with the reports they write."""
    from click.testing import CliRunner

    from pricing.cli import main

    store = tmp_path_factory.mktemp("store") / "runs"
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--store", str(store), "-q"]).exit_code == 0
    scenarios = [str(SAMPLE.parent / "scenarios" / f"{n}.toml") for n in ("design-boom",)]
    assert runner.invoke(main, ["whatif", *scenarios, "--store", str(store), "-q"]).exit_code == 0
    return load_run("latest", store)


def open_page(context: BrowserContext, path: Path) -> tuple[Page, list[str], float]:
    """The page at ``path``, every URL it requested, and the seconds until load."""
    requests: list[str] = []
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    started = time.perf_counter()
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, requests, time.perf_counter() - started


def check_page(page: Page, requests: list[str], path: Path, sections: tuple[str, ...]) -> None:
    # the one request is the file itself: nothing else was fetched, let alone remotely
    assert requests == [path.resolve().as_uri()]
    for name in sections:
        box = page.locator(f"section#{name}").bounding_box()
        assert box is not None and box["height"] > 40, name
    images = page.evaluate(
        """async () => Promise.all([...document.images].map(async (img) => {
               await img.decode();
               return [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width];
           }))"""
    )
    assert images, "no figure"
    for natural_width, natural_height, shown_width in images:
        assert natural_width >= 400 and natural_height >= 200 and shown_width > 300
    # readable at 1280 px: nothing forces a horizontal scroll bar
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]


def test_the_run_report_in_chromium(
    browser: BrowserContext, stored: Run, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = stored.path / REPORT_FILE
    page, requests, _ = open_page(browser, path)
    check_page(page, requests, path, RUN_SECTIONS)
    assert page.title() == f"Market report, as of {stored.run_id}"
    assert len(page.locator("img").all()) == 4  # with where freelancers work (flows)
    rows = page.locator("section#guidance tbody tr")
    assert rows.count() == len(stored.guidance)
    findings = page.locator("section#findings li").all_inner_texts()
    assert findings[0].startswith(f"Of {len(stored.guidance)} segments")
    shot = tmp_path_factory.mktemp("shots") / "run.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 100_000  # a page of figures and tables, not a blank one
    page.close()


def test_the_scenario_report_in_chromium(
    browser: BrowserContext, stored: Run, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = stored.store.scenario_paths()[(stored.as_of, "design-boom")]
    path = folder / REPORT_FILE
    page, requests, _ = open_page(browser, path)
    check_page(page, requests, path, SCENARIO_SECTIONS)
    assert "multiplier = 1.2" in page.locator("section#scenario-settings pre").inner_text()
    shot = tmp_path_factory.mktemp("shots") / "scenario.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()


def test_a_page_that_reaches_out_is_caught(browser: BrowserContext, tmp_path: Path) -> None:
    """The request check above can fail: a page with a remote image trips it (the
    request is refused by the page's policy or the network, but it is seen)."""
    path = tmp_path / "leaky.html"
    path.write_text('<html><body><img src="https://example.com/a.png"></body></html>')
    _, requests, _ = open_page(browser, path)
    assert "https://example.com/a.png" in requests


def test_the_large_market_report_stays_usable(
    browser: BrowserContext, stored: Run, tmp_path: Path
) -> None:
    from test_report import tiled

    from pricing.report.report import run_report

    big = tiled(stored, 280, tmp_path / "big")  # 10,080 segments
    path = run_report(big).write(tmp_path / REPORT_FILE)
    page, requests, _ = open_page(browser, path)
    check_page(page, requests, path, RUN_SECTIONS)
    assert page.locator("section#guidance tbody tr").count() == 200
    assert page.locator("img").count() == 3
    page.close()
    # no timing assertion on a shared machine: `pricing bench --only report` measures it


def test_a_stored_scenario_report_matches_a_fresh_render(stored: Run) -> None:
    """What the browser saw is what the library renders (deterministic output)."""
    folder = stored.store.scenario_paths()[(stored.as_of, "design-boom")]
    fresh = stored.report("design-boom").html
    assert (folder / REPORT_FILE).read_text(encoding="utf-8") == fresh
    assert load_scenario(folder / "scenario.toml").name == "design-boom"


@pytest.fixture(scope="module")
def backtested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict[str, Any]]:
    """`pricing backtest --weeks 1 --json`, then `pricing run`, on the sample into one
    store: the run's report has the backtest's headline."""
    from click.testing import CliRunner

    from pricing.cli import main

    store = str(tmp_path_factory.mktemp("backtested") / "runs")
    runner = CliRunner()
    result = runner.invoke(main, ["backtest", "--weeks", "1", "--store", store, "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    assert runner.invoke(main, ["run", "--store", store, "-q"]).exit_code == 0
    return load_run("latest", store), json.loads(result.stdout)


def test_the_trust_section_in_chromium(
    browser: BrowserContext, backtested: tuple[Run, dict[str, Any]]
) -> None:
    """ "How much to trust this run" shows the stored backtest: the verdict, the origins,
    the engine against both baselines on each score (as --json printed them), the truth
    scores, and which week today's rate is from."""
    run, payload = backtested
    path = run.path / REPORT_FILE
    page, requests, _ = open_page(browser, path)
    check_page(page, requests, path, RUN_SECTIONS)
    section = page.locator("section#trust")
    assert section.locator("h2").inner_text() == "How much to trust this run"
    text = section.inner_text()
    assert "the latest complete week" in text and "2025-12-22 – 2025-12-28" in text
    verdict = "beats both" if payload["beats_baselines"] else "does NOT beat the naive baselines"
    assert verdict in section.locator("p.verdict").inner_text()
    assert "1 origins, weekly from the week ending 2025-12-21" in text
    tables = section.locator("table")
    assert tables.count() == 2  # the headline, the truth scores
    headline = tables.nth(0)
    assert headline.locator("thead th").all_inner_texts()[1:] == [
        "engine",
        "last week",
        "4-week mean",
    ]
    rows = headline.locator("tbody tr")
    assert rows.count() == 3
    for i, metric in enumerate(("demand_wape", "supply_wape", "direction")):
        cells = rows.nth(i).locator("td").all_inner_texts()
        shown = [f"{payload['pooled'][metric][k]:.1%}" for k in PREDICTORS]
        assert cells[1:] == shown, metric
    truth = tables.nth(1).locator("tbody tr")
    assert truth.count() == 2
    assert truth.nth(0).locator("td").first.inner_text() == "this week's rate (nowcast)"
    box = section.bounding_box()
    assert box is not None and box["height"] > 200
    page.close()
