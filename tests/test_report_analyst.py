"""The analyst's sections of the report in headless Chromium (as tests/test_report_browser.py
opens it): where freelancers work (flows), the attention panels' flows, rate guidance on
one basis, the plan in full, and the scenario's totals with units. Each renders with the
run's own numbers, its figures decode, and nothing overflows horizontally at 1280 px."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE, VIEWPORT, quick_config
from playwright.sync_api import BrowserContext, Page

from pricing.decisions.flows import Flows
from pricing.report.report import REPORT_FILE, run_report
from pricing.runs.pipeline import run_batch, run_whatifs
from pricing.runs.run import Run
from pricing.store.store import RunStore

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The sample run with its plan ($135,000, as the sample's config) and 40 band draws,
    and the design-boom what-if, with the reports they write."""
    config = quick_config()
    config = config.model_copy(
        update={"interventions": config.interventions.model_copy(update={"budget": 135000.0})}
    )
    run = run_batch(SAMPLE, config, tmp_path_factory.mktemp("analyst") / "store", report=True)
    run_whatifs([SAMPLE.parent / "scenarios" / "design-boom.toml"], run, report=True)
    return run


def _open(browser: BrowserContext, path: Path) -> Page:
    page = browser.new_page()
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page


def _fits(page: Page) -> None:
    """Nothing forces a horizontal scroll bar at 1280 px (wide tables scroll in their
    own box)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]


def _figures(page: Page, selector: str) -> list[list[float]]:
    """Natural width and height of every image under ``selector``, once decoded."""
    sizes: list[list[float]] = page.evaluate(
        """async (sel) => Promise.all([...document.querySelectorAll(sel + ' img')].map(
               async (img) => {
                   await img.decode();
                   return [img.naturalWidth, img.naturalHeight];
               }))""",
        selector,
    )
    return sizes


def _table(page: Page, selector: str) -> list[list[str]]:
    """The rows of the table at ``selector`` as cell texts, its head first."""
    rows: list[list[str]] = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' tr')].map(
               (tr) => [...tr.children].map((c) => c.innerText.trim()))""",
        selector,
    )
    return rows


def _hours(text: str) -> float:
    return float(text.replace(",", "").split(" ")[0])


def test_where_freelancers_work_renders_the_runs_flows(
    browser: BrowserContext, stored: Run
) -> None:
    page = _open(browser, stored.path / REPORT_FILE)
    box = page.locator("section#flows").bounding_box()
    assert box is not None and box["height"] > 300
    ((width, height),) = _figures(page, "section#flows")
    assert width >= 400 and height >= 200
    table = _table(page, "section#flows table")
    head, body = table[0], table[1:]
    assert head[:3] == ["category", "its freelancers work, hours/week", "at home"]
    matrix = Flows(stored.required("flows"), stored.config.segment_keys).by_category()
    assert sorted(r[0] for r in body) == sorted(matrix.index)
    # each category's hours as the flows table has them, to the page's whole hours
    for row in body:
        assert _hours(row[1]) == pytest.approx(matrix.loc[row[0]].sum(), abs=0.5)
        assert _hours(row[5]) == pytest.approx(matrix[row[0]].sum(), abs=0.5)
    # the sample is coupled: some category's freelancers work elsewhere, and it says where
    assert any(r[4] != "–" for r in body) and any(r[7] != "–" for r in body)
    assert "pricing sql" in page.locator("section#flows").inner_text()
    _fits(page)
    page.close()


def test_attention_panels_take_their_flows_from_the_run(stored: Run) -> None:
    """The panels' inflow and outflow are the flows table's: for every segment, what its
    pool keeps home plus what flows in is the hours it buys (idle hours at a floor
    included), and home plus outflow is its pool's supply."""
    balance = Flows(stored.required("flows"), stored.config.segment_keys).balance()
    eq = stored.equilibrium.merge(balance, on=list(stored.config.segment_keys))
    np.testing.assert_allclose(
        eq["home_hours"] + eq["inflow_hours"], eq["hours"] + eq["surplus_hours"], rtol=1e-9
    )
    np.testing.assert_allclose(
        eq["home_hours"] + eq["outflow_hours"], eq["supply_hours"], rtol=1e-9
    )
    assert (eq["inflow_hours"] > 0).any() and (eq["outflow_hours"] > 0).any()
    text = (stored.path / REPORT_FILE).read_text(encoding="utf-8")
    assert "the arrow is the net inflow" in text


def test_guidance_shows_each_basis_beside_today_on_it(browser: BrowserContext, stored: Run) -> None:
    page = _open(browser, stored.path / REPORT_FILE)
    table = _table(page, "section#guidance table")
    head = table[0]
    assert head[2:4] == ["listed rate: today → guidance", "gap"]
    assert head[5] == "freelancer receives: today → asks"
    assert head[7] == "client pays: today → budgets"
    intro = page.locator("section#guidance p").first.inner_text()
    assert re.search(r"listed rate of (the week of|each segment's latest observed week)", intro)
    market = stored.required("market").set_index(["category", "tier"])
    guidance = stored.guidance.set_index(["category", "tier"])
    for row in table[1:6]:
        category, tier = row[0].split(" / ")
        fees = market.loc[(category, tier)]
        g = guidance.loc[(category, tier)]
        today = g["observed_rate"]
        expect = [
            (row[2], today, g["listed_rate"]),
            (row[5], today * (1 - fees["freelancer_fee"]), g["freelancer_rate"]),
            (row[7], today * (1 + fees["client_fee"]), g["client_rate"]),
        ]
        for cell, before, after in expect:
            shown = [float(v.replace(",", "")) for v in cell.split(" → ")]
            assert shown == pytest.approx([before, after], abs=0.005)
    _fits(page)
    page.close()


def test_the_plan_section_shows_the_plan_in_full(browser: BrowserContext, stored: Run) -> None:
    plan = stored.manifest.plan
    assert plan is not None
    page = _open(browser, stored.path / REPORT_FILE)
    facts = dict(_table(page, "section#interventions table.facts"))
    assert facts["budget"].startswith("$135,000 in total")
    assert facts["binding constraints"] == "budget"
    assert "filled hours a week per $1,000 more (step $" in facts["marginal value of budget"]
    assert f"{plan.verified_gain:+,.1f}" in facts["verified gain (joint re-solve)"]
    assert "round(s)" in facts["rounding"]
    text = page.locator("section#interventions").inner_text()
    for heading in ("Gains by category", "Constraints", "Levers bought", "Every gain is per week"):
        assert heading in text
    tables = page.locator("section#interventions table:not(.facts)")
    assert tables.count() == 3
    categories = tables.nth(0).evaluate(
        "(t) => [...t.rows].map((tr) => [...tr.cells].map((c) => c.innerText.trim()))"
    )
    head = categories[0]
    verified = head.index("gain verified, hours/week")
    total = sum(float(r[verified].replace(",", "")) for r in categories[1:])
    # the categories' verified gains add up to the plan's, to the page's 0.1 hours
    assert total == pytest.approx(plan.verified_gain, abs=0.05 * len(categories))
    levers = tables.nth(2).evaluate(
        "(t) => [...t.rows].map((tr) => [...tr.cells].map((c) => c.innerText.trim()))"
    )
    for heading in ("gain predicted, filled hours a week", "gain verified, filled hours a week"):
        gain = levers[0].index(heading)
        assert all(re.fullmatch(r"[+-][\d,]+\.\d", r[gain]) for r in levers[1:])
    assert len(levers) - 1 == int((stored.required("interventions")["units"] > 0).sum())
    _fits(page)
    page.close()


def test_the_scenario_report_says_when_it_ran_and_its_units(
    browser: BrowserContext, stored: Run
) -> None:
    folder = stored.store.scenario_paths()[(stored.as_of, "design-boom")]
    page = _open(browser, folder / REPORT_FILE)
    facts = dict(_table(page, "section#scenario-header table.facts"))
    assert facts["ran on"].startswith("this process (")
    totals = _table(page, "section#scenario-totals table")
    measures = [r[0] for r in totals[1:]]
    assert measures[:4] == [
        "listed rate, USD/h (hours-weighted mean)",
        "hours/week",
        "GMV, USD/week",
        "fee revenue, USD/week",
    ]
    fill = dict((r[0], r[1:]) for r in totals[1:])["fill, % of hours asked at today's rates"]
    assert re.fullmatch(r"\d+\.\d %", fill[0]) and fill[2].endswith(" pp")
    assert "exceeds 100 %" in page.locator("section#scenario-totals").inner_text()
    assert all(w >= 400 for w, _ in _figures(page, "body"))
    # where the scenario's freelancers work, from its stored flows
    ((width, _),) = _figures(page, "section#scenario-flows")
    rows = _table(page, "section#scenario-flows table")[1:]
    assert width >= 400 and len(rows) == stored.required("market")["category"].nunique()
    _fits(page)
    page.close()


def _tiled(run: Run, copies: int, store: Path) -> Run:
    """The run's tables repeated ``copies`` times under new category names (flows and
    the plan's tables included): a market of 36 × copies segments."""
    from test_report import tiled

    big = tiled(run, copies, store / "tiled")
    tables = {
        name: big.required(name)
        for name in (
            "curves",
            "equilibrium",
            "guidance",
            "market",
            "edges",
            "catalogue",
            "interventions",
        )
    }
    flows = run.required("flows")
    tables["flows"] = pd.concat(
        [
            flows.assign(
                category=flows["category"] + f"_{k:04d}",
                pool_category=flows["pool_category"] + f"_{k:04d}",
            )
            for k in range(copies)
        ],
        ignore_index=True,
    )
    for name in ("plan_categories", "plan_constraints"):
        tables[name] = run.required(name)
    return Run.open(
        RunStore(store / "big").write_run(run.as_of, tables, big.manifest), RunStore(store / "big")
    )


def test_the_flows_of_a_large_market_stay_readable(
    browser: BrowserContext, stored: Run, tmp_path: Path
) -> None:
    big = _tiled(stored, 100, tmp_path)  # 3,600 segments, 1,200 categories
    path = run_report(big).write(tmp_path / REPORT_FILE)
    page = _open(browser, path)
    text = page.locator("section#flows").inner_text()
    assert "30 of 1,200 categories" in text
    assert page.locator("section#flows tbody tr").count() == 200
    ((width, height),) = _figures(page, "section#flows")
    assert width >= 400 and height >= 200
    _fits(page)
    page.close()


def test_make_docs_screenshots_the_top_of_a_report(stored: Run, tmp_path: Path) -> None:
    """`make docs` runs docs/screenshot.py: a fresh run (as `pricing run` makes it, the
    step tests/test_report_browser.py covers), then this: the report's top in Chromium."""
    from PIL import Image

    out = tmp_path / "report.png"
    report = stored.path / REPORT_FILE
    done = subprocess.run(
        [sys.executable, str(DOCS / "screenshot.py"), "--report", str(report), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    with Image.open(out) as image:
        assert image.size == (960, 1312)
        colours = image.convert("L").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # a page of text and figures, not blank
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]  # no temporary left


def test_a_market_whose_freelancers_all_work_at_home(stored: Run, tmp_path: Path) -> None:
    """No hours move between categories: the flows section says so ("–" for where else)
    and the matrix is the diagonal, without failing on the empty off-home pairs."""
    names = (
        "curves", "equilibrium", "guidance", "market", "edges", "interventions",
        "plan_categories", "plan_constraints",
    )  # fmt: skip
    tables = {name: stored.required(name) for name in names}
    flows = stored.required("flows")
    tables["flows"] = flows[flows["kind"] == "home"]
    store = RunStore(tmp_path / "home")
    run = Run.open(store.write_run(stored.as_of, tables, stored.manifest), store)
    text = run_report(run).html
    section = text[text.index('<section id="flows">') : text.index('<section id="attention">')]
    assert "0.0 % of their hours (0 hours/week) are worked outside" in section
    assert section.count("<td>–</td>") == 2 * stored.required("market")["category"].nunique()
