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
    flows          where each category's freelancers work (pool → segment hours)
    attention      the segments that need attention, with their curves and the flows
                   in and out that move each equilibrium off its own curves' crossing
    guidance       rate guidance, sorted by |gap|
    diagnostics    elasticities raw vs shrunk, flagged curves
    interventions  the plan: spend, predicted and verified gain, marginal value

and a scenario's (:func:`scenario_report`): ``scenario-header``, ``findings``,
``scenario-totals``, ``scenario-overview``, ``scenario-flows``, ``scenario-segments``,
``scenario-interventions``, ``scenario-settings``.

**What the overview shows**, per category × tier (a weighted mean over regions when
runs split by region):

    gap, %     = 100 gap_frac = 100 (p* / o − 1)   weights: equilibrium hours
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
from pricing.display import MISSING, Display, escape_controls, number, share, signed_share
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
    "flows",
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
    "scenario-flows",
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
    return number(value, fmt)


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
    gd = gd.merge(market[["segment", "client_fee", "freelancer_fee"]], on="segment", how="left")
    gd["flags"] = gd["segment"].map(flags).fillna("")
    gd["abs_gap"] = gd["gap_frac"].abs()
    by_gap = gd.sort_values(["abs_gap", "segment"], ascending=[False, True], na_position="last")
    solved = by_gap[by_gap["status"].eq("solved") & by_gap["gap_frac"].notna()]
    flows = run.table("flows")
    balance = None if flows is None else _flow_balance(flows, keys)
    panels = _curve_panels(solved.head(attention), market, balance)
    where = f"WHERE as_of = '{run.run_id}'"
    flow_view = _flows_section(flows, rows, categories, f"flows {where}")
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
        "flows": flow_view,
        "attention_figure": plots.curve_grid(panels) if panels else None,
        "attention_count": len(panels),
        "attention": _attention_table(by_gap),
        "guidance": _guidance_table(by_gap, rows),
        "guidance_query": f'pricing sql "SELECT * FROM guidance {where} '
        'ORDER BY abs(gap_frac) DESC"',
        "band_level": f"{run.config.guidance.band_level:.0%}",
        "today_week": _today_week(run.guidance, run.as_of),
        "diagnostics_figure": plots.elasticity_histograms(curves),
        "diagnostics": _diagnostics(curves, rows),
        "curves_query": f"pricing sql \"SELECT * FROM curves {where} AND flags <> ''\"",
        "plan": _plan(m.plan, plan_text(m), run.table, rows),
        "trust": _trust(run, gd),
    }
    images = 2 + bool(panels) + bool(flow_view["figure"])
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

    eq["attention"] = eq["gap_frac"].abs() * eq["hours"].fillna(0)
    short = eq.assign(short=eq["demand_hours_at_observed"] - eq["supply_hours_at_observed"])
    overview = _overview(
        eq,
        [
            _weighted(eq.assign(gap=100 * eq["gap_frac"]), "gap", "hours"),
            _ratio(short, "short", "demand_hours_at_observed"),
        ],
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
            "gap_frac": ("gap", signed_share),
            "flags": ("flags", None),
        },
        limit=25,
    )


def _guidance_table(by_gap: pd.DataFrame, rows: int) -> Table:
    """Guidance on three bases, each beside today's rate on the same basis: the listed
    rate (what the marketplace shows), the freelancer's rate (listed less the freelancer
    fee: what they receive) and the client's (listed plus the client fee: what they
    pay). Today's rate o is the as-of week's listed rate, so today's freelancer rate is
    o (1 − f_f) and today's client rate o (1 + f_c)."""
    frame = _with_bands(by_gap)
    today = frame["observed_rate"]
    frame = frame.assign(
        listed_move=_move(today, frame["listed_rate"]),
        freelancer_move=_move(today * (1 - frame["freelancer_fee"]), frame["freelancer_rate"]),
        client_move=_move(today * (1 + frame["client_fee"]), frame["client_rate"]),
        notes=(frame["capped_text"] + ", " + frame["flags"]).str.strip(", "),
    )
    return _table(
        frame,
        {
            "segment": ("segment", None),
            "market_state": ("state", None),
            "listed_move": ("listed rate: today → guidance", str),
            "gap_frac": ("gap", signed_share),
            "listed_band": ("band", str),
            "freelancer_move": ("freelancer receives: today → asks", str),
            "freelancer_band": ("band", str),
            "client_move": ("client pays: today → budgets", str),
            "client_band": ("band", str),
            "notes": ("capped, flags", None),
        },
        limit=rows,
        row_class=lambda r: str(r["market_state"]),
    )


def _today_week(guidance: pd.DataFrame, as_of: Any) -> str:
    """Which week "today" is: the as-of week, or each segment's latest observed week."""
    weeks = pd.to_datetime(guidance["observed_week"]).dt.date.dropna().unique()
    if len(weeks) == 1:
        return f"the week of {weeks[0]} (the as-of week, ending {as_of})"
    return (
        f"each segment's latest observed week ({min(weeks)} to {max(weeks)}; the as-of "
        f"week ends {as_of})"
    )


def _move(today: pd.Series, guided: pd.Series) -> pd.Series:
    """``35.88 → 48.61``: today's rate and the guidance, on one basis (USD/h)."""
    return today.map(_num) + " → " + guided.map(_num)


def _curve_panels(
    top: pd.DataFrame, market: pd.DataFrame, balance: pd.DataFrame | None
) -> list[Any]:
    """One curve panel per row of ``top`` (guidance rows with their equilibrium), with
    the segment's inflow and outflow (``balance``, by segment label; None: not stored)."""
    from pricing.report.plots import CurvePanel

    mk = market.set_index("segment")
    panels = []
    for _, g in top.iterrows():
        s = mk.loc[g["segment"]]
        moved = (
            (math.nan, math.nan)
            if balance is None
            else (
                float(balance.loc[g["segment"], "inflow_hours"]),
                float(balance.loc[g["segment"], "outflow_hours"]),
            )
        )
        ff = float(s["freelancer_fee"])
        state = str(g["market_state"]).replace("_", " ")
        # one line of flags at most: the full list is in the table below the figure
        flags = f"\nflags: {g['flags']}" if g["flags"] else ""
        flags = flags if len(flags) <= 46 else flags[:45] + "…"
        panels.append(
            CurvePanel(
                title=str(g["segment"]),
                subtitle=f"{state} · gap {signed_share(g['gap_frac'])}{flags}",
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
                inflow_hours=moved[0],
                outflow_hours=moved[1],
            )
        )
    return panels


# ---------------------------------------------------------------------- flows
def _flow_balance(flows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per segment label: hours kept home, taken in from other pools, sent out."""
    from pricing.decisions.flows import segment_balance

    balance = segment_balance(flows, keys)
    return balance.set_index(_label(balance, keys))


def _flows_section(
    flows: pd.DataFrame | None, rows: int, categories: int, source: str, what: str = "run"
) -> dict[str, Any]:
    """Where each category's freelancers work: the pool category × work category matrix
    (% of the pool's hours, a figure) and, per category, the hours its freelancers work
    at home and elsewhere and the hours it buys from other categories (a table).
    ``source``: the ``pricing sql`` view and filter that list every flow; ``what``: a
    run or a scenario."""
    from pricing.decisions.flows import category_pairs
    from pricing.report import plots

    query = f'pricing sql "SELECT * FROM {source} AND hours > 0 ORDER BY hours DESC"'
    if flows is None:
        return {
            "figure": None,
            "table": None,
            "query": query,
            "note": f"This {what} was stored before flows were kept; solve it again to see them.",
        }
    pairs = category_pairs(flows)
    pool, cat, hours_ = (pairs[c].to_numpy() for c in ("pool_category", "category", "hours"))
    names = pd.Index(sorted(set(flows["pool_category"]) | set(flows["category"])))
    supplied = pairs.groupby("pool_category")["hours"].sum().reindex(names, fill_value=0.0)
    bought = pairs.groupby("category")["hours"].sum().reindex(names, fill_value=0.0)
    at_home = pool == cat
    home = pd.Series(hours_[at_home], index=cat[at_home]).reindex(names, fill_value=0.0)
    away = pairs[~at_home].sort_values(["hours", "pool_category", "category"], ascending=False)
    moved = (supplied - home) + (bought - home)
    keep = names
    if len(keep) > categories:
        keep = pd.Index(
            sorted(moved.sort_values(ascending=False, kind="stable").index[:categories])
        )
    per_category = pd.DataFrame(
        {
            "category": names,
            "supplied": supplied.to_numpy(),
            "home": home.to_numpy(),
            "out": (supplied - home).to_numpy(),
            "out_to": _main_partner(away, "pool_category", "category", names),
            "bought": bought.to_numpy(),
            "in": (bought - home).to_numpy(),
            "in_from": _main_partner(away, "category", "pool_category", names),
        }
    )
    per_category["out_text"] = _with_share(per_category["out"], per_category["supplied"])
    per_category["in_text"] = _with_share(per_category["in"], per_category["bought"])
    per_category = per_category.assign(moved=moved.to_numpy()).sort_values(
        ["moved", "category"], ascending=[False, True]
    )
    away_total = float(away["hours"].sum())
    total = float(supplied.sum())
    hours = _hours_fmt
    return {
        "figure": plots.flow_matrix(_shares(pairs, keep, supplied), supplied),
        "shown": len(keep),
        "categories": len(names),
        "away_pct": _share(away_total, total),
        "away_hours": hours(away_total),
        "table": _table(
            per_category,
            {
                "category": ("category", None),
                "supplied": ("its freelancers work, hours/week", hours),
                "home": ("at home", hours),
                "out_text": ("elsewhere", str),
                "out_to": ("mostly in", None),
                "bought": ("its clients buy, hours/week", hours),
                "in_text": ("from other categories", str),
                "in_from": ("mostly from", None),
            },
            limit=rows,
        ),
        "query": query,
        "note": "",
    }


def _shares(pairs: pd.DataFrame, keep: pd.Index, supplied: pd.Series) -> pd.DataFrame:
    """The ``keep`` × ``keep`` matrix of the % of each pool category's hours (rows) worked
    in each category (columns)."""
    shown = pairs[pairs["pool_category"].isin(keep) & pairs["category"].isin(keep)]
    matrix = shown.pivot_table(
        index="pool_category", columns="category", values="hours", aggfunc="sum"
    )
    matrix = matrix.reindex(index=keep, columns=keep).fillna(0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100 * matrix.div(supplied.loc[keep].where(supplied.loc[keep] > 0), axis=0)


def _main_partner(away: pd.DataFrame, side: str, other: str, names: pd.Index) -> list[str]:
    """Per category of ``names`` (on ``side`` of the off-home pairs ``away``, sorted by
    hours, largest first), the ``other`` category with the most hours, ``name (hours)``,
    or "–" for none worth naming (less than half an hour shows as 0)."""
    top = away[away["hours"] >= 0.5].drop_duplicates(side).set_index(side)
    text = top[other].astype(str) + " (" + top["hours"].map(_hours_fmt).astype(str) + ")"
    return text.reindex(names).fillna(MISSING).tolist()


def _with_share(part: pd.Series, whole: pd.Series) -> pd.Series:
    """``1,008 (63.6 %)``: hours with their share of ``whole``."""
    fraction = part / whole.where(whole > 0)
    return part.map(_hours_fmt) + " (" + fraction.map(share) + ")"


def _hours_fmt(value: Any) -> str:
    return _num(value, "{:,.0f}")


def _share(part: float, whole: float) -> str:
    return share(part / whole if whole > 0 else math.nan)


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
        listed_band=band(frame["listed_rate_low"], frame["listed_rate_high"]),
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

    def count(state: str, verb: tuple[str, str] = ("is", "are")) -> str:
        k = int(states.get(state, 0))
        return f"{k:,} {verb[0] if k == 1 else verb[1]}"

    out = [
        f"Of {n:,} segments, {count('supply_short')} short of freelancers "
        f"(they clear more than {balanced_pct:g} % above today's rate), "
        f"{count('demand_short')} short of clients (more than "
        f"{balanced_pct:g} % below), {count('balanced')} balanced and "
        f"{count('thin_data', ('has', 'have'))} too little data to say."
    ]
    solved = gd[gd["gap_frac"].notna()].sort_values(["abs_gap", "segment"], ascending=[False, True])
    if len(solved):
        head = solved.head(3)
        top = ", ".join(
            f"{segment} {gap:+.0f} %"
            for segment, gap in zip(head["segment"], 100 * head["gap_frac"], strict=True)
        )
        median = 100 * float(np.median(solved["gap_frac"]))
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
    table: Callable[[str], pd.DataFrame | None],
    rows: int,
) -> dict[str, Any]:
    """The intervention section: what `pricing plan` prints — headline numbers, the
    marginal value of budget, binding constraints, rounding — and the gains per category
    (predicted by the plan's model, verified by the joint re-solve) and per lever, the
    constraints and the levers bought. ``table``: the stored table of that name."""
    if plan is None:
        why = (
            "No plan: the run had no interventions catalogue or no [interventions] budget."
            if status == "not_configured"
            else f"No plan: planning {status}."
        )
        return {"status": status, "note": why, "kpis": None, "levers": None}
    unit = _OBJECTIVES.get(plan.objective, plan.objective)
    constraints = table("plan_constraints")
    return {
        "status": status,
        "note": plan.explanation,
        "kpis": _plan_kpis(plan, unit, constraints),
        "categories": _plan_categories(table("plan_categories"), rows),
        "constraints": None if constraints is None else _plan_constraints(constraints, unit),
        "levers": _plan_levers(table("interventions"), unit, rows),
    }


def _plan_kpis(plan: PlanSummary, unit: str, constraints: pd.DataFrame | None) -> Table:
    base = plan.base_value
    share = f" ({signed_share(plan.verified_gain / base)})" if base else ""
    step = "" if plan.budget_step is None else f" (step {_usd(plan.budget_step)})"
    kpis = [
        ("objective", unit),
        ("budget", f"{_usd(plan.budget)} in total for the units bought (not a weekly budget)"),
        ("spend", f"{_usd(plan.spend)} ({_share(plan.spend, plan.budget)} of the budget)"),
        ("lever units", f"{plan.units:,}"),
        ("baseline value", f"{_num(base, '{:,.1f}')} {unit}"),
        ("predicted gain (the plan's model)", f"{_num(plan.predicted_gain, '{:+,.1f}')} {unit}"),
        (
            "verified gain (joint re-solve)",
            f"{_num(plan.verified_gain, '{:+,.1f}')} {unit}{share}",
        ),
        (
            "marginal value of budget",
            f"{_num(1000 * plan.marginal_value_per_usd, '{:+,.2f}')} {unit} per $1,000 more" + step,
        ),
    ]
    if constraints is not None:
        binding = constraints.loc[constraints["binding"].astype(bool), "constraint"]
        kpis.append(("binding constraints", ", ".join(binding) or "none"))
    if plan.value_rounding is not None and plan.cost_rounding is not None:
        kpis.append(
            (
                "rounding",
                f"value {plan.value_rounding:.2g}, cost {_num(plan.cost_rounding, '${:,.2f}')}; "
                f"{plan.rounds} round(s)",
            )
        )
    return Table(("", ""), (False, True), tuple(kpis), len(kpis))


def _plan_categories(categories: pd.DataFrame | None, rows: int) -> Table | None:
    """Per category the plan touches: spend, hours a week before, as predicted and as
    verified, the gains, and the fill before and after with its target."""
    if categories is None:
        return None
    frame = categories.assign(
        predicted=categories["hours_predicted"] - categories["hours_before"],
        verified=categories["hours_after"] - categories["hours_before"],
        fill_move=_fill(categories["fill_before"]) + " → " + _fill(categories["fill_after"]),
    )
    frame = frame[(frame["spend"] > 0) | (frame["verified"].abs() >= 0.005)]
    frame = frame.sort_values(["verified", "category"], ascending=[False, True])
    hours = _hours_fmt
    return _table(
        frame,
        {
            "category": ("category", None),
            "spend": ("spend, USD", _usd),
            "hours_before": ("hours/week before", hours),
            "predicted": ("gain predicted, hours/week", lambda v: _num(v, "{:+,.1f}")),
            "verified": ("gain verified, hours/week", lambda v: _num(v, "{:+,.1f}")),
            "fill_move": ("fill before → after", str),
            "min_fill": ("fill target", share),
            "spend_cap": ("spend cap, USD", _usd),
        },
        limit=rows,
    )


def _plan_constraints(constraints: pd.DataFrame, unit: str) -> Table:
    money = ~constraints["constraint"].str.startswith("min_fill")
    frame = constraints.assign(
        limit_text=np.where(money, constraints["limit"].map(_usd), _fill(constraints["limit"])),
        used_text=np.where(money, constraints["used"].map(_usd), _fill(constraints["used"])),
        slack_text=np.where(money, constraints["slack"].map(_usd), _fill(constraints["slack"])),
        binding_text=np.where(constraints["binding"].astype(bool), "binding", ""),
    )
    return _table(
        frame,
        {
            "constraint": ("constraint", None),
            "limit_text": ("limit", str),
            "used_text": ("used", str),
            "slack_text": ("slack", str),
            "binding_text": ("binds", None),
            "gain_if_relaxed": (f"gain if relaxed one step, {unit}", lambda v: _num(v, "{:+,.2f}")),
        },
        limit=len(frame),
    )


def _plan_levers(levers: pd.DataFrame | None, unit: str, rows: int) -> Table | None:
    if levers is None:
        return None
    bought = levers[levers["units"] > 0].sort_values(
        ["spend", "intervention_id"], ascending=[False, True]
    )
    for column in ("predicted_gain", "verified_gain"):  # stored before they were kept
        if column not in bought:
            bought = bought.assign(**{column: np.nan})
    return _table(
        bought.assign(to_category=bought["to_category"].fillna("")),
        {
            "intervention_id": ("lever", None),
            "kind": ("kind", None),
            "category": ("category", None),
            "to_category": ("to", None),
            "units": ("units", lambda v: _num(v, "{:,.0f}")),
            "max_units": ("of", lambda v: _num(v, "{:,.0f}")),
            "cost_per_unit": ("USD per unit", _usd),
            "spend": ("spend, USD", _usd),
            "predicted_gain": (f"gain predicted, {unit}", lambda v: _num(v, "{:+,.1f}")),
            "verified_gain": (f"gain verified, {unit}", lambda v: _num(v, "{:+,.1f}")),
        },
        limit=rows,
    )


def _fill(values: pd.Series) -> pd.Series:
    return values.map(share)


# ------------------------------------------------------------------ a scenario
def scenario_report(run: StoredRun, name: str, rows: int = 200, categories: int = 30) -> Report:
    """The report of the scenario ``name`` stored against ``run``."""
    from pricing.decisions.scenario import totals_text
    from pricing.report import plots

    stored = run.scenario(name)
    m = stored.manifest
    segments, totals = stored.required("segments"), stored.required("totals")
    keys = list(run.config.segment_keys)
    segments["segment"] = _label(segments, keys)
    segments["attention"] = segments["rate_change_frac"].abs() * segments["hours_scenario"].fillna(
        0
    )
    overview = _overview(
        segments,
        [
            _weighted(
                segments.assign(rate_change=100 * segments["rate_change_frac"]),
                "rate_change",
                "hours_scenario",
            ),
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
        abs_change=segments["rate_change_frac"].abs()
    )
    changed = changed.sort_values(["abs_change", "segment"], ascending=[False, True])
    where = f"WHERE baseline = '{run.run_id}' AND scenario = '{name}'"
    flow_view = _flows_section(
        stored.table("flows"), rows, categories, f"scenario_flows {where}", "scenario"
    )
    context = {
        "title": f"Scenario {name} against the run of {run.run_id}",
        "m": m,
        "findings": _scenario_findings(m, totals, changed, len(segments)),
        "header": _scenario_header(m, run),
        "totals": _text_table(totals_text(totals)),
        "inverse": m.inverse,
        "overview_figure": figure,
        "overview_note": _overview_note(
            overview, "rate change", f'pricing sql "SELECT * FROM scenario_segments {where}"'
        ),
        "segments": _table(changed, _SCENARIO_SEGMENT_COLUMNS, limit=rows),
        "unchanged": len(segments) - len(changed),
        "segments_query": f'pricing sql "SELECT * FROM scenario_segments {where}"',
        "flows": flow_view,
        "plan": _plan(
            m.plan, "not_configured" if m.plan is None else str(m.status), stored.table, rows
        ),
        "settings": stored.settings,
    }
    return _render("scenario.html.j2", context, SCENARIO_SECTIONS, 1 + bool(flow_view["figure"]))


_SCENARIO_SEGMENT_COLUMNS: dict[str, tuple[str, Callable[[Any], str] | None]] = {
    "segment": ("segment", None),
    "rate_baseline": ("listed rate, baseline, USD/h", _num),
    "rate_scenario": ("listed rate, scenario, USD/h", _num),
    "rate_change_frac": ("rate change", signed_share),
    "hours_baseline": ("hours/week, baseline", lambda v: _num(v, "{:,.1f}")),
    "hours_scenario": ("hours/week, scenario", lambda v: _num(v, "{:,.1f}")),
    "gmv_change": ("GMV change, USD/week", lambda v: _num(v, "{:+,.0f}")),
    "fill_scenario": ("fill", share),
    "status_scenario": ("status", None),
}


def _text_table(frame: pd.DataFrame) -> Table:
    """A frame of text, shown as it is (numbers right-aligned after the first column)."""
    columns: dict[str, tuple[str, Callable[[Any], str] | None]] = {
        c: (c, None if i == 0 else str) for i, c in enumerate(frame.columns)
    }
    return _table(frame, columns, limit=len(frame))


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
    change = 100 * totals.set_index("measure")["change_frac"].astype(np.float64)
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
            f"{r.segment} {signed_share(r.rate_change_frac)}" for r in changed.head(3).itertuples()
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
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pricing.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # every value shown, names from the data among them: control characters and
        # bidirectional overrides escaped before HTML escaping (they would hide or
        # reorder the text around them); markup a macro made (a table) is left as it
        # is: its values went through here one by one
        finalize=lambda v: (
            escape_controls(v, newlines=False)
            if isinstance(v, str) and not isinstance(v, Markup)
            else v
        ),
    )
    page = env.get_template(template).render(**context, sections=sections)
    return Report(str(context["title"]), page, sections, images)


def report_path(path: Path) -> Path:
    """Where a run's or scenario's report lives in the store: beside its tables."""
    return path / REPORT_FILE
