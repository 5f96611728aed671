"""The HTML report: sections, self-containment, determinism, known numbers, size caps.

The page is parsed with the standard library's HTMLParser (what a browser sees is checked
in test_report_browser.py). Numbers in the page are checked against the stored tables
they come from, formatted as the page formats them (2 decimals for rates, 1 for %).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLE, quick_config
from PIL import Image

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.config import load_scenario
from pricing.errors import StoreError
from pricing.report.report import (
    REPORT_FILE,
    RUN_SECTIONS,
    SCENARIO_SECTIONS,
    Report,
    _overview,
    _ratio,
    _weighted,
    run_report,
    scenario_report,
)
from pricing.runs.pipeline import run_batch
from pricing.runs.run import Run
from pricing.store.manifest import Counts
from pricing.store.store import RunStore

SCENARIOS = SAMPLE.parent / "scenarios"


class Page(HTMLParser):
    """Ids, images, tables (cell text per row) and every URL-bearing attribute."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.images.append(str(a["src"]))
        for name in ("src", "href", "action", "data", "poster"):
            if a.get(name):
                self.urls.append((tag, name, str(a[name])))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def section(text: str, name: str) -> str:
    start = text.index(f'<section id="{name}">')
    return text[start : text.index("</section>", start)]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The sample's full run (with its plan) and two scenarios, a lever budget and an
    inverse one, stored against it."""
    run = run_batch(SAMPLE, store=tmp_path_factory.mktemp("store") / "runs")
    for name in ("design-boom", "legal-fill-85"):
        run.whatif(load_scenario(SCENARIOS / f"{name}.toml"), save=True)
    return run


@pytest.fixture(scope="module")
def page(stored: Run) -> str:
    return run_report(stored).html


def test_the_run_report_has_every_section_once_in_order(page: str) -> None:
    ids = Page(page).ids
    assert [i for i in ids if i in RUN_SECTIONS] == list(RUN_SECTIONS)
    assert len(ids) == len(set(ids))


def test_the_report_is_self_contained(page: str) -> None:
    parsed = Page(page)
    # nothing to fetch: no script, no style sheet or font link, no frame
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed", "base"}
    for tag, attr, url in parsed.urls:
        assert url.startswith(("data:image/png;base64,", "#")), (tag, attr, url[:60])
    assert "url(" not in page  # no CSS import of an image or font
    assert "default-src 'none'" in page  # and the browser is told to refuse any fetch


def test_every_figure_is_a_png_that_decodes(page: str) -> None:
    images = Page(page).images
    assert len(images) == 4  # overview, flows, attention curves, diagnostics
    for uri in images:
        png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        png.load()
        assert png.format == "PNG" and png.width >= 400 and png.height >= 200


def test_the_same_run_renders_to_the_same_bytes(stored: Run, page: str) -> None:
    again = Run.open(stored.path, stored.store)  # a fresh read of the store
    assert run_report(again).html == page


def test_the_header_shows_the_manifest(stored: Run, page: str) -> None:
    head = section(page, "run-header")
    m = stored.manifest
    for text in (m.as_of.isoformat(), m.build, m.data_dir, m.status):
        assert text in head
    for table in m.inputs.values():
        for f in table.files:
            assert f.sha256 in head
    assert "36 segments" in head and "4 flagged" in head and "36 solved" in head
    for step in m.timings_s:
        assert step in head


def test_the_findings_count_the_market_states(stored: Run, page: str) -> None:
    states = stored.manifest.statuses.guidance.market_state
    text = section(page, "findings")

    def are(state: str) -> str:  # one segment "is", several "are"
        return f"{states[state]} {'is' if states[state] == 1 else 'are'}"

    assert (
        f"Of 36 segments, {are('supply_short')} short of freelancers" in text
        and f"{are('demand_short')} short of clients" in text
        and f"{are('balanced')} balanced" in text
    )
    g = stored.guidance
    top = g.loc[g["gap_frac"].abs().idxmax()]
    assert f"{top['category']} / {top['tier']} {100 * top['gap_frac']:+.0f} %" in text
    plan = stored.manifest.plan
    assert plan is not None
    assert f"spends ${plan.spend:,.0f} of ${plan.budget:,.0f}" in text


def test_the_guidance_table_is_every_segment_sorted_by_gap(stored: Run, page: str) -> None:
    (table,) = Page(section(page, "guidance")).tables
    header, rows = table[0], table[1:]
    assert header[:6] == [
        "segment",
        "state",
        "listed rate: today → guidance",
        "gap",
        "band",
        "freelancer receives: today → asks",
    ]
    g = stored.guidance.assign(abs_gap=stored.guidance["gap_frac"].abs())
    g = g.sort_values("abs_gap", ascending=False)
    assert [r[0] for r in rows] == [
        f"{c} / {t}" for c, t in zip(g["category"], g["tier"], strict=True)
    ]
    # each rate beside today's on the same basis: listed, freelancer's, client's
    assert [r[2] for r in rows] == [
        f"{o:,.2f} → {p:,.2f}" for o, p in zip(g["observed_rate"], g["listed_rate"], strict=True)
    ]
    assert [r[5].split(" → ")[1] for r in rows] == [f"{v:,.2f}" for v in g["freelancer_rate"]]
    assert [r[3] for r in rows] == [f"{100 * v:+.1f} %" for v in g["gap_frac"]]
    low, high = g["freelancer_rate_low"].iloc[0], g["freelancer_rate_high"].iloc[0]
    assert rows[0][6] == f"{low:,.2f} – {high:,.2f}"


def test_long_tables_are_capped_and_say_how_to_get_the_rest(stored: Run) -> None:
    text = run_report(stored, rows=5).html
    (table,) = Page(section(text, "guidance")).tables
    assert len(table) == 1 + 5
    assert "Showing 5 of 36 rows" in text
    assert f"pricing sql &#34;SELECT * FROM guidance WHERE as_of = &#39;{stored.run_id}" in text


def test_the_plan_section_reports_spend_gains_and_marginal_value(stored: Run, page: str) -> None:
    text = section(page, "interventions")
    plan = stored.manifest.plan
    assert plan is not None
    assert f"${plan.spend:,.0f}" in text and f"${plan.budget:,.0f}" in text
    assert f"{plan.predicted_gain:+,.1f}" in text and f"{plan.verified_gain:+,.1f}" in text
    assert f"{1000 * plan.marginal_value_per_usd:+,.2f} filled hours a week per $1,000" in text
    levers = stored.interventions
    assert levers is not None
    *_, table = Page(text).tables  # the plan, by category, constraints, then the levers
    bought = levers[levers["units"] > 0]
    assert len(table) == 1 + len(bought)
    assert sum(int(r[4]) for r in table[1:]) == plan.units


def test_a_run_without_a_budget_says_there_is_no_plan(tmp_path: Path) -> None:
    run = run_batch(SAMPLE, quick_config(), tmp_path / "s")
    text = section(run_report(run).html, "interventions")
    assert "No plan: the run had no interventions catalogue or no [interventions] budget" in text


def test_capped_guidance_is_a_finding_and_marked_in_the_table(tmp_path: Path) -> None:
    store = tmp_path / "s"
    run_batch(SAMPLE, quick_config(), store, as_of=dt.date(2025, 12, 14))
    run = run_batch(SAMPLE, quick_config(), store)
    capped = run.manifest.statuses.guidance.capped
    assert capped > 0
    text = run_report(run).html
    assert (
        f"{capped} segments&#39; published guidance is capped: it moves at most 10 % "
        "from run 2025-12-14&#39;s" in section(text, "findings")
    )
    (table,) = Page(section(text, "guidance")).tables
    assert sum(r[9].startswith("capped") for r in table[1:]) == capped


@pytest.mark.usefixtures("fail_component_zero")
def test_a_degraded_run_shows_its_warnings_and_unsolved_segments_first(tmp_path: Path) -> None:
    run = run_batch(SAMPLE, quick_config(), tmp_path / "s")
    text = run_report(run).html
    assert "Degraded: " in section(text, "run-header")
    assert 'class="badge degraded"' in text
    (table,) = Page(section(text, "attention")).tables
    failed = run.equilibrium["status"].ne("solved").sum()
    assert failed > 0
    assert all(r[1].startswith("not cleared") for r in table[1 : 1 + failed])


def test_the_scenario_report(stored: Run) -> None:
    text = scenario_report(stored, "design-boom").html
    parsed = Page(text)
    assert [i for i in parsed.ids if i in SCENARIO_SECTIONS] == list(SCENARIO_SECTIONS)
    assert len(parsed.images) == 2  # the scenario's changes, where its freelancers work
    totals = pd.read_parquet(
        stored.store.scenario_paths()[(stored.as_of, "design-boom")] / "totals.parquet"
    )
    (table,) = Page(section(text, "scenario-totals")).tables
    hours = totals.set_index("measure").loc["hours"]
    assert table[2][1:4] == [
        f"{hours['baseline']:,.1f}",
        f"{hours['scenario']:,.1f}",
        f"{hours['change']:+,.1f}",
    ]
    assert "multiplier = 1.2" in section(text, "scenario-settings")
    assert scenario_report(stored, "design-boom").html == text


def test_an_inverse_scenario_shows_its_answer(stored: Run) -> None:
    text = section(scenario_report(stored, "legal-fill-85").html, "scenario-totals")
    assert "Inverse answer" in text and "budget for the fill of &#39;legal&#39;" in text


def test_an_unknown_scenario_is_named_with_a_suggestion(stored: Run) -> None:
    with pytest.raises(StoreError, match="did you mean 'design-boom'"):
        scenario_report(stored, "design-bom")


def test_the_report_is_notebook_friendly(stored: Run) -> None:
    report = stored.report()
    assert isinstance(report, Report)
    assert report.summary().startswith(f"Market report, as of {stored.run_id}: ")
    assert report._repr_html_().startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;')


def test_writing_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.html"
    out.write_text("previous")

    def broken(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        Report("t", "<html></html>", (), 0).write(out)
    assert out.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


# ------------------------------------------------------------------ aggregation
def test_regions_are_weighted_by_hours_and_imbalance_sums_hours() -> None:
    frame = pd.DataFrame(
        {
            "category": ["a", "a", "a", "b"],
            "tier": ["x", "x", "y", "x"],
            "gap_frac": [10.0, 30.0, np.nan, -5.0],
            "hours": [1.0, 3.0, 2.0, 0.0],
            "short": [10.0, -4.0, 1.0, 2.0],
            "demand": [20.0, 30.0, 4.0, 0.0],
        }
    )
    gap = _weighted(frame, "gap_frac", "hours")
    # (10·1 + 30·3) / 4 = 25; a NaN gap has no value; zero weight falls back to the mean
    assert gap[("a", "x")] == 25.0 and np.isnan(gap[("a", "y")]) and gap[("b", "x")] == -5.0
    ratio = _ratio(frame, "short", "demand")
    # 100 · (10 − 4) / (20 + 30) = 12; no demand has no ratio
    assert ratio[("a", "x")] == 12.0 and ratio[("a", "y")] == 25.0 and np.isnan(ratio[("b", "x")])


def test_the_overview_keeps_the_categories_with_most_hours_times_gap() -> None:
    frame = pd.DataFrame(
        {
            "category": ["a", "b", "c", "a", "b", "c"],
            "tier": ["entry"] * 3 + ["expert"] * 3,
            "observed_rate": [10.0, 11.0, 12.0, 50.0, 51.0, 52.0],
            "gap_frac": [1.0, -40.0, 20.0, 2.0, 1.0, 5.0],
            "hours": [100.0, 1.0, 10.0, 100.0, 1.0, 10.0],
        }
    )
    frame["score"] = frame["gap_frac"].abs() * frame["hours"]
    overview = _overview(
        frame, [_weighted(frame, "gap_frac", "hours")], "score", "observed_rate", 2
    )
    (grid,) = overview.grids
    # scores: a 300, b 41, c 250
    assert list(grid.index) == ["a", "c"] and list(grid.columns) == ["entry", "expert"]
    assert (overview.shown, overview.total) == (2, 3)


# ------------------------------------------------------------------ the CLI
def test_run_and_whatif_write_their_reports_unless_told_not_to(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = tmp_path / "quick.toml"
    config.write_text(quick_config().to_toml())
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--store", str(store), "--config", str(config), "-q"])
    assert result.exit_code == 0, result.output
    (run_dir,) = RunStore(store).run_paths().values()
    assert (run_dir / REPORT_FILE).is_file()
    assert f"report: {run_dir / REPORT_FILE}" in result.output

    scenario = str(SCENARIOS / "legal-fee-cut.toml")
    result = runner.invoke(main, ["whatif", scenario, "--store", str(store), "-q"])
    assert result.exit_code == 0, result.output
    (scenario_dir,) = RunStore(store).scenario_paths().values()
    assert (scenario_dir / REPORT_FILE).is_file()

    bare = tmp_path / "bare"
    args = ["run", "--store", str(bare), "--config", str(config), "-q", "--no-report"]
    assert runner.invoke(main, args).exit_code == 0
    (bare_dir,) = RunStore(bare).run_paths().values()
    assert not (bare_dir / REPORT_FILE).exists()
    assert (
        runner.invoke(main, ["whatif", scenario, "--store", str(bare), "--no-report"]).exit_code
        == 0
    )
    (bare_scenario,) = RunStore(bare).scenario_paths().values()
    assert not (bare_scenario / REPORT_FILE).exists()


def test_pricing_report_writes_the_same_file_again(stored: Run, tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(stored.store.root)
    out = tmp_path / "again.html"
    result = runner.invoke(
        main, ["report", "latest", "--store", store, "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r'"sections": \[\s*"run-header"', result.stdout)
    assert out.read_bytes() == run_report(stored).html.encode()
    result = runner.invoke(main, ["report", stored.run_id, "--store", store])
    assert result.exit_code == 0
    assert (stored.path / REPORT_FILE).read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "2020-01-05"], "no run as of 2020-01-05"),
        (["report", "latest", "--scenario", "design-bom"], "did you mean 'design-boom'"),
    ],
)
def test_pricing_report_exits_3_on_what_is_not_stored(
    stored: Run, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, [*args, "--store", str(stored.store.root), "-q"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert message in result.output


# ------------------------------------------------------------------ a large market
def tiled(run: Run, copies: int, store: Path) -> Run:
    """The sample run's tables repeated ``copies`` times under new category names: a
    market of 36 × copies segments with the sample's numbers, for the page's caps."""
    tables = {}
    for name in ("curves", "equilibrium", "guidance", "market", "interventions", "catalogue"):
        frame = run.table(name)
        assert frame is not None
        parts = [frame.assign(category=frame["category"] + f"_{k:04d}") for k in range(copies)]
        tables[name] = pd.concat(parts, ignore_index=True)
    edges = run.table("edges")
    assert edges is not None
    tables["edges"] = pd.concat(
        [edges + np.array([36 * k, 36 * k, 0]) for k in range(copies)], ignore_index=True
    )
    counts = {k: v * copies for k, v in run.manifest.counts.model_dump().items()}
    manifest = run.manifest.model_copy(update={"counts": Counts(**counts)})
    return Run.open(RunStore(store).write_run(run.as_of, tables, manifest), RunStore(store))


def test_a_large_market_report_stays_small(stored: Run, tmp_path: Path) -> None:
    big = tiled(stored, 280, tmp_path / "big")  # 10,080 segments
    text = run_report(big).html
    parsed = Page(text)
    assert len(parsed.images) == 3
    (guidance,) = Page(section(text, "guidance")).tables
    assert len(guidance) == 1 + 200
    assert "Showing 200 of 10,080 rows" in text
    assert "30 of 3,360 categories" in section(text, "overview")
    # heatmaps of 30 categories, 9 curve panels and 200-row tables: well under 2 MB
    assert len(text.encode()) < 2_000_000
