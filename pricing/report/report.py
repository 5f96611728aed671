r"""The HTML report of a stored run or of a what-if scenario solved against it.

One self-contained static file: the figures are PNG data URIs, the style sheet is
inline, there is no script, and nothing is fetched when the page is opened. The same
stored run always renders to the same bytes (no clock, no random state, figures without
a software stamp), so two reports can be compared with ``cmp`` (the ``trust`` section
reads the store's latest backtest: storing a newer one changes it).

A run's report (:func:`run_report`) has these sections, each with a stable ``id``:

    run-header     as-of date, status, data fingerprint, counts, solver statuses,
                   timings, warnings
    findings       the state of the market in a few sentences
    trust          how much to trust this run: which week "today" is, and the latest
                   stored backtest as of the run's week or before (engine against the
                   naive baselines, against the truth when it had one), or how to run one
    overview       category × tier heatmaps of the gap and of the imbalance
    attention      the segments that need attention, with their curves
    guidance       rate guidance, sorted by |gap|
    diagnostics    elasticities raw vs shrunk, flagged curves
    interventions  the plan: spend, predicted and verified gain, marginal value

and a scenario's (:func:`scenario_report`): ``scenario-header``, ``findings``,
``scenario-totals``, ``scenario-overview``, ``scenario-segments``,
``scenario-interventions``, ``scenario-settings``.

**What the overview shows**, per category × tier (a weighted mean over regions when
runs split by region):

    gap_pct    = 100 (p* / o − 1)          weights: equilibrium hours
    imbalance  = 100 (D(o) − S(o)) / D(o)  sums of hours over the regions

for the equilibrium listed rate p*, today's rate o, and the hours clients ask for, D(o),
and the segment's own pool offers, S(o), at today's rate: a positive imbalance is a
shortage of freelancers at today's rate, a negative one a surplus.

A market of thousands of segments stays readable: the heatmaps show at most
``categories`` categories (those with the most hours × |gap|), the curves the
``attention`` segments with the largest |gap|, and each table its first ``rows`` rows,
saying how many more there are and how to query them with ``pricing sql``.
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pricing.cluster import compute_text
from pricing.display import Display, escape_controls
from pricing.inputs.io import atomic_file
from pricing.statuses import PlanStatus, RunStatus
from pricing.store.stored import latest_backtest, plan_text

if TYPE_CHECKING:
    from pricing.config import GuidanceConfig
    from pricing.store.manifest import (
        BacktestManifest,
        InputTable,
        Manifest,
        PlanSummary,
        ScenarioManifest,
    )
    from pricing.store.stored import StoredRun

REPORT_FILE = "report.html"
RUN_SECTIONS = (
    "run-header",
    "findings",
    "trust",
    "overview",
    "attention",
    "guidance",
    "diagnostics",
    "interventions",
)
SCENARIO_SECTIONS = (
    "scenario-header",
    "findings",
    "scenario-totals",
    "scenario-overview",
    "scenario-segments",
    "scenario-interventions",
    "scenario-settings",
)


# --------------------------------------------------------------------- results
@dataclass(frozen=True)
class Table:
    """A table ready for the page: formatted cells, right-aligned numeric columns, and
    how many rows there were before the cap."""

    columns: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]
    total: int
    classes: tuple[str, ...] = ()  # one CSS class per row ("" for none)

    @property
    def hidden(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class Report(Display):
    """A rendered report: the HTML text, its title and section ids."""

    title: str
    html: str
    sections: tuple[str, ...]
    images: int

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` atomically (a crash leaves the old file intact)."""
        path = Path(path)
        with atomic_file(path) as tmp:
            tmp.write_text(self.html, encoding="utf-8")
        return path

    def to_frame(self) -> pd.DataFrame:
        """The report's sections, in page order."""
        return pd.DataFrame({"section": list(self.sections)})

    def summary(self, max_rows: int = 0) -> str:
        """Title, size, figures and sections in one line."""
        size = len(self.html.encode("utf-8"))
        return (
            f"{self.title}: {size / 1024:,.0f} KiB, {self.images} figure(s), "
            f"sections {', '.join(self.sections)}"
        )

    def _repr_html_(self) -> str:
        """The page itself, in a frame (not the summary: a report is made to be seen)."""
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width:100%;height:720px;border:1px solid #ddd"></iframe>'
        )


# ------------------------------------------------------------------ formatting
def _num(value: Any, fmt: str = "{:,.2f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


def _pct(value: Any) -> str:
    return _num(value, "{:+.1f} %")


def _usd(value: Any) -> str:
    return _num(value, "${:,.0f}")


def _table(
    frame: pd.DataFrame,
    columns: dict[str, tuple[str, Callable[[Any], str] | None]],
    limit: int,
    total: int | None = None,
    row_class: Callable[[pd.Series], str] | None = None,
) -> Table:
    """Format ``frame``'s first ``limit`` rows: ``columns`` maps a frame column to its
    heading and a formatter (None: text, left-aligned)."""
    rows, classes = [], []
    for _, record in frame.head(limit).iterrows():
        rows.append(
            tuple(
                str(record[c]) if fmt is None else fmt(record[c]) for c, (_, fmt) in columns.items()
            )
        )
        if row_class is not None:
            classes.append(row_class(record))
    return Table(
        columns=tuple(head for head, _ in columns.values()),
        numeric=tuple(fmt is not None for _, fmt in columns.values()),
        rows=tuple(rows),
        total=len(frame) if total is None else total,
        classes=tuple(classes),
    )


def _label(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    out = frame[keys[0]].astype(str)
    for key in keys[1:]:
        out = out + " / " + frame[key].astype(str)
    return out


def _fingerprint(inputs: dict[str, InputTable]) -> str:
    """One SHA-256 over the input files' own hashes, in table and file order."""
    digest = hashlib.sha256()
    for table in sorted(inputs):
        for f in inputs[table].files:
            digest.update(f"{table}/{f.file}:{f.sha256}\n".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------- overview
def _tier_order(frame: pd.DataFrame, rate: str) -> list[str]:
    """Tiers from cheapest to dearest by median ``rate`` (entry before expert)."""
    medians = frame.groupby("tier", sort=True)[rate].median()
    return [str(t) for t in medians.sort_values(kind="stable").index]


def _weighted(frame: pd.DataFrame, value: str, weight: str) -> pd.Series:
    """Per category × tier, the ``weight``-weighted mean of ``value`` (a plain mean
    where the weights sum to zero)."""
    v = frame[value].to_numpy(np.float64)
    w = np.nan_to_num(frame[weight].to_numpy(np.float64))
    ok = np.isfinite(v)
    parts = pd.DataFrame(
        {
            "category": frame["category"].to_numpy(),
            "tier": frame["tier"].to_numpy(),
            "num": np.where(ok, v * w, 0.0),
            "den": np.where(ok, w, 0.0),
            "sum": np.where(ok, v, 0.0),
            "n": ok.astype(np.float64),
        }
    )
    g = parts.groupby(["category", "tier"], sort=True).sum()
    plain = g["sum"] / g["n"].where(g["n"] > 0)
    return (g["num"] / g["den"].where(g["den"] > 0)).fillna(plain)


def _ratio(frame: pd.DataFrame, top: str, bottom: str) -> pd.Series:
    """Per category × tier, 100 · Σ top / Σ bottom (NaN where Σ bottom ≤ 0)."""
    sums = frame.groupby(["category", "tier"], sort=True)[[top, bottom]].sum(min_count=1)
    return 100 * sums[top] / sums[bottom].where(sums[bottom] > 0)


@dataclass(frozen=True)
class Overview:
    """Heatmap values (categories × tiers) for the categories that matter most."""

    grids: tuple[pd.DataFrame, ...]
    shown: int
    total: int


def _overview(
    frame: pd.DataFrame, values: Sequence[pd.Series], score: str, rate: str, categories: int
) -> Overview:
    """``values`` (indexed by category, tier) as grids with tiers in rate order; when
    there are more than ``categories`` categories, those with the largest Σ ``score``."""
    tiers = _tier_order(frame, rate)
    # a Series indexed by (category, tier) to its grid; pivot_table would drop empty cells
    grids = [v.unstack("tier").reindex(columns=tiers) for v in values]  # noqa: PD010
    total = len(grids[0])
    if total > categories:
        weight = frame.groupby("category", sort=True)[score].sum()
        keep = sorted(weight.sort_values(ascending=False, kind="stable").index[:categories])
        grids = [g.loc[keep] for g in grids]
    return Overview(tuple(grids), len(grids[0]), total)


def _overview_note(overview: Overview, measure: str, query: str) -> str:
    if overview.shown == overview.total:
        return ""
    return (
        f"{overview.shown:,} of {overview.total:,} categories: those with the most "
        f"hours × |{measure}|. All of them: {query}"
    )


# ------------------------------------------------------------------- the run
def run_report(run: StoredRun, rows: int = 200, attention: int = 9, categories: int = 30) -> Report:
    """The report of a stored run (see the module docstring for its sections)."""
    from pricing.report import plots

    m = run.manifest
    keys = list(run.config.segment_keys)
    eq, gd, curves = run.equilibrium, run.guidance, run.curves
    market = run.required("market")
    for frame in (eq, gd, curves, market):
        frame["segment"] = _label(frame, keys)
    curves["flags"] = curves["flags"].fillna("")
    flags = (
        curves[curves["flags"] != ""]
        .groupby("segment", sort=False)["flags"]
        .agg(lambda f: ", ".join(sorted(set(",".join(f).split(",")))))
    )
    curves["flags"] = curves["flags"].str.replace(",", ", ")
    overview, overview_figure = _run_overview(eq, categories)
    gd = gd.merge(
        eq[["segment", "rate", "hours", "demand_hours_at_observed", "supply_hours_at_observed"]],
        on="segment",
        how="left",
    )
    gd["flags"] = gd["segment"].map(flags).fillna("")
    gd["abs_gap"] = gd["gap_pct"].abs()
    by_gap = gd.sort_values(["abs_gap", "segment"], ascending=[False, True], na_position="last")
    solved = by_gap[by_gap["status"].eq("solved") & by_gap["gap_pct"].notna()]
    panels = _curve_panels(solved.head(attention), market)
    where = f"WHERE as_of = '{run.run_id}'"
    context = {
        "title": f"Market report, as of {run.run_id}",
        "m": m,
        "fingerprint": _fingerprint(m.inputs),
        "header": _run_header(m),
        "warnings": _run_warnings(m),
        "findings": _run_findings(m, eq, gd, curves, run.config.guidance),
        "overview_figure": overview_figure,
        "overview_note": _overview_note(
            overview, "gap", f'pricing sql "SELECT * FROM equilibrium {where}"'
        ),
        "attention_figure": plots.curve_grid(panels) if panels else None,
        "attention_count": len(panels),
        "attention": _attention_table(by_gap),
        "guidance": _guidance_table(by_gap, rows),
        "guidance_query": f'pricing sql "SELECT * FROM guidance {where} '
        'ORDER BY abs(gap_pct) DESC"',
        "band_level": f"{run.config.guidance.band_level:.0%}",
        "diagnostics_figure": plots.elasticity_histograms(curves),
        "diagnostics": _diagnostics(curves, rows),
        "curves_query": f"pricing sql \"SELECT * FROM curves {where} AND flags <> ''\"",
        "plan": _plan(m.plan, plan_text(m), run.interventions, rows),
        "trust": _trust(run, gd),
    }
    images = 2 + bool(panels)
    return _render("run.html.j2", context, RUN_SECTIONS, images)


# ------------------------------------------------------------------- trust
#: the backtest's pooled metrics shown, with their labels and formats
_BACKTEST_ROWS = (
    ("demand_wape", "demand hours WAPE", "{:.1%}"),
    ("supply_wape", "supply hours WAPE", "{:.1%}"),
    ("direction", "direction right (rate moved > 5 %)", "{:.1%}"),
)


def _trust(run: StoredRun, guidance: pd.DataFrame) -> dict[str, Any]:
    """The "How much to trust this run" section: which week today's rate is from, and
    the latest backtest stored as of the run's week or before (None: how to run one)."""
    weeks = pd.to_datetime(guidance.get("observed_week", pd.Series(dtype="datetime64[ns]")))
    today = weeks.dropna()
    week = None if today.empty else today.mode().iloc[0].date()
    m = run.manifest
    context: dict[str, Any] = {
        "today_week": None if week is None else f"{week} – {week + pd.Timedelta(days=6)}",
        "today_other": int((today.dt.date != week).sum()) if week is not None else 0,
        "command": f"pricing backtest --data {m.data_dir} --store {run.store.root}",
        "backtest": None,
    }
    stored = latest_backtest(run.store, run.as_of, lambda _: None)
    if stored is None:
        return context
    with stored.hold:
        b = stored.manifest
        context["backtest"] = _backtest_context(b, run.as_of)
    return context


def _backtest_context(b: BacktestManifest, as_of: Any) -> dict[str, Any]:
    """The headline of a stored backtest, ready for the page."""
    pooled = b.headline["pooled"]
    rows = tuple(
        (label, *(_num(pooled[metric][k], fmt) for k in ("engine", "last_week", "mean_4_weeks")))
        for metric, label, fmt in _BACKTEST_ROWS
    )
    headline = Table(
        ("", "engine", "last week", "4-week mean"), (False, True, True, True), rows, len(rows)
    )
    truth = b.headline.get("truth") or {}
    truth_rows = tuple(
        (
            {"nowcast": "this week's rate (nowcast)", "forecast": "next week's (forecast)"}.get(
                name, name
            ),
            _num(r["relative_error"], "{:.2f}×"),
            _num(r["direction"], "{:.1%}"),
            f"{_num(r['coverage'], '{:.1%}')} of {_num(r['banded'], '{:,.0f}')} banded",
            _num(r["width"], "{:.1%}"),
            _num(r["segments"], "{:,.0f}"),
        )
        for name, r in truth.items()
    )
    return {
        "as_of": b.as_of,
        "older": b.as_of != as_of,
        "build": b.build,
        "origins": len(b.origins),
        "first": b.origins[0] if b.origins else None,
        "last": b.origins[-1] if b.origins else None,
        "horizon": b.horizon,
        "beats": b.beats_baselines,
        "lost": _lost(pooled),
        "headline": headline,
        "truth": Table(
            (
                "against the truth",
                "error vs keeping today's rate",
                "direction right",
                "90 % band coverage",
                "band width",
                "segment-weeks",
            ),
            (False, True, True, True, True, True),
            truth_rows,
            len(truth_rows),
        )
        if truth_rows
        else None,
        "truth_source": b.truth_source,
    }


def _lost(pooled: dict[str, dict[str, float | None]]) -> list[str]:
    """The scores on which the engine does not beat both baselines (the backtest's rule:
    a lower WAPE, a higher direction share), each with the best baseline's number."""
    out = []
    names = {"last_week": "last week", "mean_4_weeks": "the 4-week mean"}
    for metric, label, fmt in _BACKTEST_ROWS:
        row = pooled[metric]
        engine = row["engine"]
        others = {k: v for k in names if (v := row[k]) is not None}
        if engine is None or len(others) < len(names):
            out.append(f"{label} (not measured)")
            continue
        sign = 1.0 if metric.endswith("wape") else -1.0  # lower is better for a WAPE
        best = min(others, key=lambda k: sign * others[k])
        if sign * engine >= sign * others[best]:
            shown = f"{fmt.format(engine)} against {fmt.format(others[best])}"
            out.append(f"{label}: {shown} for {names[best]}")
    return out


def _run_overview(eq: pd.DataFrame, categories: int) -> tuple[Overview, str]:
    """The category × tier grids of the gap and of the shortage at today's rate, and
    their figure."""
    from pricing.report import plots

    eq["attention"] = eq["gap_pct"].abs() * eq["hours"].fillna(0)
    short = eq.assign(short=eq["demand_hours_at_observed"] - eq["supply_hours_at_observed"])
    overview = _overview(
        eq,
        [_weighted(eq, "gap_pct", "hours"), _ratio(short, "short", "demand_hours_at_observed")],
        score="attention",
        rate="observed_rate",
        categories=categories,
    )
    figure = plots.heatmaps(
        [
            plots.Grid("gap: equilibrium vs today's rate", overview.grids[0], "gap, %"),
            plots.Grid(
                "shortage (+) / surplus (−) at today's rate",
                overview.grids[1],
                "% of hours demanded",
            ),
        ]
    )
    return overview, figure


def _attention_table(by_gap: pd.DataFrame) -> Table:
    return _table(
        _attention(by_gap),
        {
            "segment": ("segment", None),
            "why": ("note", None),
            "market_state": ("state", None),
            "observed_rate": ("today, USD/h", _num),
            "rate": ("equilibrium, USD/h", _num),
            "gap_pct": ("gap", _pct),
            "flags": ("flags", None),
        },
        limit=25,
    )


def _guidance_table(by_gap: pd.DataFrame, rows: int) -> Table:
    return _table(
        _with_bands(by_gap),
        {
            "segment": ("segment", None),
            "market_state": ("state", None),
            "observed_rate": ("today", _num),
            "freelancer_rate": ("freelancer asks", _num),
            "freelancer_band": ("band", str),
            "client_rate": ("client budgets", _num),
            "client_band": ("band", str),
            "gap_pct": ("gap", _pct),
            "capped_text": ("capped", None),
            "flags": ("flags", None),
        },
        limit=rows,
        row_class=lambda r: str(r["market_state"]),
    )


def _curve_panels(top: pd.DataFrame, market: pd.DataFrame) -> list[Any]:
    """One curve panel per row of ``top`` (guidance rows with their equilibrium)."""
    from pricing.report.plots import CurvePanel

    mk = market.set_index("segment")
    panels = []
    for _, g in top.iterrows():
        s = mk.loc[g["segment"]]
        ff = float(s["freelancer_fee"])
        state = str(g["market_state"]).replace("_", " ")
        # one line of flags at most: the full list is in the table below the figure
        flags = f"\nflags: {g['flags']}" if g["flags"] else ""
        flags = flags if len(flags) <= 46 else flags[:45] + "…"
        panels.append(
            CurvePanel(
                title=str(g["segment"]),
                subtitle=f"{state} · gap {g['gap_pct']:+.1f} %{flags}",
                demand_elasticity=float(s["demand_elasticity"]),
                log_demand_level=float(s["log_demand_level"]),
                supply_elasticity=float(s["supply_elasticity"]),
                log_supply_level=float(s["log_supply_level"]),
                client_fee=float(s["client_fee"]),
                freelancer_fee=ff,
                observed_rate=float(g["observed_rate"]),
                demand_at_observed=float(g["demand_hours_at_observed"]),
                supply_at_observed=float(g["supply_hours_at_observed"]),
                rate=float(g["rate"]),
                hours=float(g["hours"]),
                band_low=float(g["freelancer_rate_low"]) / (1 - ff),
                band_high=float(g["freelancer_rate_high"]) / (1 - ff),
                rate_floor=float(s["rate_floor"]),
                rate_cap=float(s["rate_cap"]),
            )
        )
    return panels


def _attention(by_gap: pd.DataFrame) -> pd.DataFrame:
    """Segments not cleared first, then the largest |gap|; a note says what else is
    wrong with a segment (not cleared, thin data, a capped rate)."""
    failed = ~by_gap["status"].eq("solved")
    why = np.where(
        failed,
        "not cleared: " + by_gap["status"].astype(str),
        np.where(
            by_gap["market_state"].eq("thin_data"),
            "thin data",
            np.where(by_gap["capped"].fillna(False).astype(bool), "guidance capped", ""),
        ),
    )
    out = by_gap.assign(why=why, failed=failed)
    return out.sort_values("failed", ascending=False, kind="stable")


def _with_bands(frame: pd.DataFrame) -> pd.DataFrame:
    def band(low: pd.Series, high: pd.Series) -> pd.Series:
        text = low.map(_num) + " – " + high.map(_num)
        return text.where(low.notna() & high.notna(), "–")

    return frame.assign(
        freelancer_band=band(frame["freelancer_rate_low"], frame["freelancer_rate_high"]),
        client_band=band(frame["client_rate_low"], frame["client_rate_high"]),
        capped_text=np.where(frame["capped"].fillna(False).astype(bool), "capped", ""),
    )


def _run_header(m: Manifest) -> Table:
    c, s = m.counts, m.statuses
    equilibrium = ", ".join(f"{n:,} {k}" for k, n in s.equilibrium.items())
    comps = s.components
    states = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in s.guidance.market_state.items())
    facts = [
        ("status", str(m.status)),
        ("data", f"{m.data_dir} (weeks {m.weeks.first}, {m.weeks.count} of them)"),
        ("configuration", str(m.config_source or "defaults")),
        (
            "segments",
            f"{c.segments:,}: {c.estimated:,} estimated, {c.flagged:,} flagged, "
            f"{c.failed:,} failed",
        ),
        ("equilibrium", equilibrium),
        (
            "components",
            f"{comps.total:,} ({comps.failed:,} failed), largest market-clearing "
            f"residual {comps.max_residual:.1e}",
        ),
        ("market state", states),
        (
            "guidance",
            f"{s.guidance.capped:,} capped"
            + (f" against run {m.previous_run}" if m.previous_run else " (no earlier run)")
            + f", {s.guidance.failed_draws:,} failed band draws",
        ),
        ("interventions", plan_text(m)),
        (
            "time",
            ", ".join(f"{k} {v:.2f} s" for k, v in m.timings_s.items())
            + f"; peak memory {m.peak_memory_mb:,.0f} MB",
        ),
        ("ran on", compute_text(m.compute)),
        ("created", f"{m.created} (build {m.build})"),
        ("versions", ", ".join(f"{k} {v}" for k, v in m.versions.items())),
    ]
    return Table(("", ""), (False, False), tuple(facts), len(facts))


def _run_warnings(m: Manifest) -> list[str]:
    out = [f"Degraded: {d}" for d in m.degraded]
    after = {t: n for t, n in m.rows_after_as_of.items() if n}
    if after:
        out.append(
            "Left out, after the as-of week: "
            + ", ".join(f"{n:,} {t} rows" for t, n in after.items())
        )
    guidance = m.statuses.guidance
    thin = guidance.market_state.get("thin_data", 0)
    if thin:
        out.append(f"{thin:,} segment(s) have thin data: their guidance has no band or state.")
    if guidance.failed_draws:
        out.append(f"{guidance.failed_draws:,} band draws failed to clear and were left out.")
    if m.status == RunStatus.INFEASIBLE:
        out.append("The intervention plan is infeasible: see Interventions.")
    return out


def _run_findings(
    m: Manifest,
    eq: pd.DataFrame,
    gd: pd.DataFrame,
    curves: pd.DataFrame,
    settings: GuidanceConfig,
) -> list[str]:
    balanced_pct = settings.balanced_pct
    states = m.statuses.guidance.market_state
    n = m.counts.segments
    out = [
        f"Of {n:,} segments, {states.get('supply_short', 0):,} are short of freelancers "
        f"(they clear more than {balanced_pct:g} % above today's rate), "
        f"{states.get('demand_short', 0):,} are short of clients (more than "
        f"{balanced_pct:g} % below), {states.get('balanced', 0):,} are balanced and "
        f"{states.get('thin_data', 0):,} have too little data to say."
    ]
    solved = gd[gd["gap_pct"].notna()].sort_values(["abs_gap", "segment"], ascending=[False, True])
    if len(solved):
        top = ", ".join(f"{r.segment} {r.gap_pct:+.0f} %" for r in solved.head(3).itertuples())
        median = float(np.median(solved["gap_pct"]))
        out.append(f"Largest gaps: {top}. The median gap is {median:+.1f} %.")
    ok = eq["status"].eq("solved")
    demand = float(eq.loc[ok, "demand_hours_at_observed"].sum())
    supply = float(eq.loc[ok, "supply_hours_at_observed"].sum())
    hours = float(eq.loc[ok, "hours"].sum())
    gmv = float((eq.loc[ok, "rate"] * eq.loc[ok, "hours"]).sum())
    if demand > 0:
        out.append(
            f"At today's rates clients ask for {demand:,.0f} hours a week and the segments' "
            f"own freelancers offer {supply:,.0f} ({100 * (supply / demand - 1):+.1f} %); at "
            f"the equilibrium rates {hours:,.0f} hours a week clear, worth "
            f"${gmv:,.0f} a week at listed rates."
        )
    flagged = curves[curves["flags"] != ""]
    if len(flagged):
        kinds = pd.Series(", ".join(flagged["flags"]).split(", ")).value_counts()
        listed = ", ".join(f"{k} {v}" for k, v in kinds.items())
        out.append(f"{len(flagged):,} of {len(curves):,} fitted curves carry flags ({listed}).")
    capped = m.statuses.guidance.capped
    if capped:
        out.append(
            f"{capped:,} segments' published guidance is capped: it moves at most "
            f"{settings.max_change_pct:g} % from run {m.previous_run}'s, so it differs "
            "from their equilibrium rates (marked in the guidance table)."
        )
    if m.plan:
        out.append(_plan_sentence(m.plan))
    elif m.statuses.interventions == PlanStatus.FAILED:
        out.append(f"The intervention plan {plan_text(m)}.")
    return out


def _plan_sentence(plan: PlanSummary) -> str:
    if plan.explanation:
        return f"No intervention plan meets the targets: {plan.explanation}"
    unit = _OBJECTIVES.get(plan.objective, plan.objective)
    base = plan.base_value
    share = f" ({100 * plan.verified_gain / base:+.1f} %)" if base else ""
    return (
        f"The intervention plan spends ${plan.spend:,.0f} of ${plan.budget:,.0f} on "
        f"{plan.units:,} lever unit(s) for {plan.verified_gain:+,.1f} {unit}{share}, "
        f"verified by a joint re-solve; another $1,000 would add "
        f"{1000 * plan.marginal_value_per_usd:,.2f}."
    )


_OBJECTIVES = {
    "hours": "filled hours a week",
    "gmv": "USD of GMV a week",
    "surplus": "USD of total surplus a week",
}


def _diagnostics(curves: pd.DataFrame, rows: int) -> dict[str, Any]:
    flagged = curves[curves["flags"] != ""].sort_values(["segment", "side"])
    exploded = flagged.assign(flag=flagged["flags"].str.split(", ")).explode("flag")
    kinds = (
        pd.crosstab(exploded["flag"], exploded["side"])
        .reindex(columns=["demand", "supply"], fill_value=0)
        .reset_index()
    )
    f_stat = curves["first_stage_f"].to_numpy(np.float64)
    finite = f_stat[np.isfinite(f_stat)]
    return {
        "curves": len(curves),
        "median_f": float(np.median(finite)) if finite.size else math.nan,
        "flag_counts": _table(
            kinds,
            {"flag": ("flag", None), "demand": ("demand", str), "supply": ("supply", str)},
            limit=50,
        ),
        "flagged": _table(
            flagged,
            {
                "segment": ("segment", None),
                "side": ("side", None),
                "flags": ("flags", None),
                "elasticity_raw": ("raw", _num),
                "elasticity": ("shrunk (used)", _num),
                "std_error": ("s.e.", _num),
                "first_stage_f": ("first-stage F", lambda v: _num(v, "{:,.1f}")),
                "n_weeks": ("weeks", lambda v: _num(v, "{:,.0f}")),
                "method": ("method", None),
            },
            limit=rows,
        ),
    }


def _plan(
    plan: PlanSummary | None,
    status: str,
    levers: pd.DataFrame | None,
    rows: int,
) -> dict[str, Any]:
    """The intervention section: headline numbers and the levers the plan buys."""
    if plan is None:
        why = (
            "No plan: the run had no interventions catalogue or no [interventions] budget."
            if status == "not_configured"
            else f"No plan: planning {status}."
        )
        return {"status": status, "note": why, "kpis": None, "levers": None}
    unit = _OBJECTIVES.get(plan.objective, plan.objective)
    base = plan.base_value
    kpis = [
        ("objective", unit),
        ("budget", _usd(plan.budget)),
        ("spend", _usd(plan.spend)),
        ("lever units", f"{plan.units:,}"),
        ("baseline value", _num(base, "{:,.1f}")),
        ("predicted gain", _num(plan.predicted_gain, "{:+,.1f}")),
        (
            "verified gain (joint re-solve)",
            _num(plan.verified_gain, "{:+,.1f}")
            + (f" ({100 * plan.verified_gain / base:+.2f} %)" if base else ""),
        ),
        (
            "marginal value of budget",
            _num(1000 * plan.marginal_value_per_usd, "{:+,.2f}") + f" {unit} per $1,000",
        ),
    ]
    chosen = None
    if levers is not None:
        bought = levers[levers["units"] > 0].sort_values(
            ["spend", "intervention_id"], ascending=[False, True]
        )
        chosen = _table(
            bought.assign(to_category=bought["to_category"].fillna("")),
            {
                "intervention_id": ("lever", None),
                "kind": ("kind", None),
                "category": ("category", None),
                "to_category": ("to", None),
                "units": ("units", lambda v: _num(v, "{:,.0f}")),
                "max_units": ("of", lambda v: _num(v, "{:,.0f}")),
                "cost_per_unit": ("USD per unit", _usd),
                "spend": ("spend", _usd),
            },
            limit=rows,
        )
    return {
        "status": status,
        "note": plan.explanation,
        "kpis": Table(("", ""), (False, True), tuple(kpis), len(kpis)),
        "levers": chosen,
    }


# ------------------------------------------------------------------ a scenario
def scenario_report(run: StoredRun, name: str, rows: int = 200, categories: int = 30) -> Report:
    """The report of the scenario ``name`` stored against ``run``."""
    from pricing.report import plots

    stored = run.scenario(name)
    m = stored.manifest
    segments, totals = stored.required("segments"), stored.required("totals")
    keys = list(run.config.segment_keys)
    segments["segment"] = _label(segments, keys)
    segments["hours_change_pct"] = (
        100
        * segments["hours_change"]
        / segments["hours_baseline"].where(segments["hours_baseline"] > 0)
    )
    segments["attention"] = segments["rate_change_pct"].abs() * segments["hours_scenario"].fillna(0)
    overview = _overview(
        segments,
        [
            _weighted(segments, "rate_change_pct", "hours_scenario"),
            _ratio(segments, "hours_change", "hours_baseline"),
        ],
        score="attention",
        rate="rate_baseline",
        categories=categories,
    )
    figure = plots.heatmaps(
        [
            plots.Grid("rate change", overview.grids[0], "rate, % change", 1),
            plots.Grid("hours change", overview.grids[1], "hours, % change", 1),
        ]
    )
    changed = segments[segments["changed"].astype(bool)].assign(
        abs_change=segments["rate_change_pct"].abs()
    )
    changed = changed.sort_values(["abs_change", "segment"], ascending=[False, True])
    where = f"WHERE baseline = '{run.run_id}' AND scenario = '{name}'"
    interventions = stored.table("interventions")
    context = {
        "title": f"Scenario {name} against the run of {run.run_id}",
        "m": m,
        "findings": _scenario_findings(m, totals, changed, len(segments)),
        "header": _scenario_header(m, run),
        "totals": _table(
            _percent_fill(totals).assign(
                measure=totals["measure"].map(lambda k: _MEASURES.get(k, k))
            ),
            {
                "measure": ("measure", None),
                "baseline": ("baseline", _num),
                "scenario": ("scenario", _num),
                "change": ("change", lambda v: _num(v, "{:+,.2f}")),
                "change_pct": ("change, %", _pct),
            },
            limit=len(totals),
        ),
        "inverse": m.inverse,
        "overview_figure": figure,
        "overview_note": _overview_note(
            overview, "rate change", f'pricing sql "SELECT * FROM scenario_segments {where}"'
        ),
        "segments": _table(changed, _SCENARIO_SEGMENT_COLUMNS, limit=rows),
        "unchanged": len(segments) - len(changed),
        "segments_query": f'pricing sql "SELECT * FROM scenario_segments {where}"',
        "plan": _plan(
            m.plan, "not_configured" if m.plan is None else str(m.status), interventions, rows
        ),
        "settings": stored.settings,
    }
    return _render("scenario.html.j2", context, SCENARIO_SECTIONS, 1)


_SCENARIO_SEGMENT_COLUMNS: dict[str, tuple[str, Callable[[Any], str] | None]] = {
    "segment": ("segment", None),
    "rate_baseline": ("rate, baseline", _num),
    "rate_scenario": ("rate, scenario", _num),
    "rate_change_pct": ("rate change", _pct),
    "hours_baseline": ("hours, baseline", lambda v: _num(v, "{:,.1f}")),
    "hours_scenario": ("hours, scenario", lambda v: _num(v, "{:,.1f}")),
    "gmv_change": ("GMV change", lambda v: _num(v, "{:+,.0f}")),
    "fill_scenario": ("fill", lambda v: _num(100 * v, "{:.1f} %")),
    "status_scenario": ("status", None),
}

_MEASURES = {
    "rate": "mean listed rate, USD/h (hours-weighted)",
    "hours": "hours a week",
    "gmv": "GMV, USD a week",
    "fee_revenue": "fee revenue, USD a week",
    "fill": "fill, % (hours ÷ hours demanded at today's rates)",
    "shortage_hours": "shortage at rate bounds, hours a week",
}


def _percent_fill(totals: pd.DataFrame) -> pd.DataFrame:
    """Totals with the fill (a ratio) in percent, as the segments table shows it."""
    out = totals.copy()
    fill = out["measure"].eq("fill")
    out.loc[fill, ["baseline", "scenario", "change"]] *= 100
    return out


def _scenario_header(m: ScenarioManifest, run: StoredRun) -> Table:
    facts = [
        ("scenario", f"{m.scenario}: {m.description}" if m.description else m.scenario),
        ("status", str(m.status)),
        ("baseline", f"run {run.run_id} (build {m.baseline_build}), {run.path}"),
        ("ran on", compute_text(m.compute)),
        ("created", f"{m.created} (build {m.build})"),
        ("time", ", ".join(f"{k} {v:.2f} s" for k, v in m.timings_s.items())),
    ]
    if m.baseline_build != run.manifest.build:
        facts.append(
            (
                "note",
                f"the baseline run was re-run since (now build {run.manifest.build}); "
                "solve the scenario again to compare against it",
            )
        )
    return Table(("", ""), (False, False), tuple(facts), len(facts))


def _scenario_findings(
    m: ScenarioManifest, totals: pd.DataFrame, changed: pd.DataFrame, n: int
) -> list[str]:
    change = totals.set_index("measure")["change_pct"].astype(np.float64)
    out = [f"{len(changed):,} of {n:,} segments change."]
    parts = []
    for key, text in (("hours", "hours"), ("gmv", "GMV"), ("fee_revenue", "fee revenue")):
        value = float(change.get(key, math.nan))
        if math.isfinite(value):
            parts.append(f"{text} {value:+.2f} %")
    if parts:
        out.append("In total: " + ", ".join(parts) + ".")
    if len(changed):
        top = ", ".join(
            f"{r.segment} {r.rate_change_pct:+.1f} %" for r in changed.head(3).itertuples()
        )
        out.append(f"Largest rate changes: {top}.")
    inverse = m.inverse
    if inverse:
        out.append(f"Inverse ({inverse['subject']}): {inverse['status']}, {inverse['method']}.")
    if m.plan:
        out.append(_plan_sentence(m.plan))
    return out


# ------------------------------------------------------------------- rendering
def _render(
    template: str, context: dict[str, Any], sections: tuple[str, ...], images: int
) -> Report:
    import jinja2
    import markupsafe

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pricing.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # every value shown, names from the data among them: control characters and
        # bidirectional overrides escaped before HTML escaping (they would reorder or
        # hide the text around them); a macro's output (Markup) is HTML whose values were
        # escaped as they were rendered, and keeps its newlines
        finalize=lambda v: (
            escape_controls(v, newlines=False)
            if isinstance(v, str) and not isinstance(v, markupsafe.Markup)
            else v
        ),
    )
    page = env.get_template(template).render(**context, sections=sections)
    return Report(str(context["title"]), page, sections, images)


def report_path(path: Path) -> Path:
    """Where a run's or scenario's report lives in the store: beside its tables."""
    return path / REPORT_FILE
