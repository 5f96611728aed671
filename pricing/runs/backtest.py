r"""The backtest: how far to trust the engine's recommendations on this data
(``shared/EVALUATION.md``, "On data without truth").

**Method.** Rolling origins: the origins t are the last K weeks of the data that have H
weeks after them. At each origin the run's own steps are applied to the panel cut at t
(:meth:`pricing.inputs.panel.Panel.through`, exactly what ``pricing run --as-of t``
aggregates; nothing after t is read): the curves are fitted, the market of week t and
the one h weeks on are built (:func:`pricing.runs.pipeline.fit_market`) and cleared.
Then weeks t + 1 … t + H are scored against what happened in them.

**Observable scores** (any data). For segment s, origin t and horizon h, with the realized
rate r_{t+h} and hours QD_{t+h}, QS_{t+h}:

    hours    the engine's curves for week t+h read at the realized rate,
             QD̂ = D_{t+h}(r_{t+h}(1 + f_c)),  QŜ = S_{t+h}(r_{t+h}(1 − f_f)),
             against the naive forecasts Q_t (last week) and the mean of Q_{t−3} … Q_t;
             WAPE = Σ_s |Q̂ − Q| / Σ_s Q and the median |log(Q̂ / Q)| (weeks with Q > 0)
    direction  among segments whose rate moved, |log(r_{t+h} / r_t)| > 0.05, the share
             where the engine's move sign log(p*_t / o_t) (its clearing rate against
             today's rate) is the realized sign log(r_{t+h} / r_t); against momentum
             (sign of last week's change, log(r_t / r_{t−1})) and reversion to the 4-week
             mean (sign log(r̄_t / r_t), r̄_t the geometric mean of r_{t−3} … r_t)

Every predictor is scored on the same segment-weeks: those where all three are finite.
The engine **beats the baselines** when, pooled over origins, its hours WAPE on both sides
is below both naive forecasts' and its direction share above both baselines'.

**Against the truth** (a simulator's ``truth_weekly.parquet`` in the data folder, or a
table named with ``truth``: the segment keys, ``week`` and ``clearing_rate``, optionally
``thin``): at each origin the nowcast p*_t with its band against week t's true clearing
rate, and the forecast p*_{t+h} with its band against week t+h's, each beside today's
rate (:func:`pricing.decisions.evaluation.score`), pooled over origins. Bands are drawn
only then: without truth nothing can score them.

A backtest is stored in the run store (``backtests/as_of=…/build=…/``) and the latest one
is the "how much to trust this run" section of the run report.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.cluster import LOCAL, Executor, peak_memory_mb
from pricing.config import RunConfig
from pricing.decisions.evaluation import MOVED, Scores, score
from pricing.decisions.guidance import rate_guidance
from pricing.display import Display, records, table
from pricing.errors import DataError
from pricing.inputs import SAMPLE_DIR
from pricing.inputs.panel import Panel, build_panel
from pricing.market.equilibrium import solve
from pricing.market.market import Market, curve_hours
from pricing.runs.pipeline import Inputs, checked_inputs, fit_market, provenance
from pricing.store.manifest import BacktestManifest, Provenance

FloatArray = npt.NDArray[np.float64]
#: the predictors of the observable scores: the engine and the two naive baselines
PREDICTORS = ("engine", "last_week", "mean_4_weeks")
#: the direction scores' baselines under the same column names
DIRECTION_BASELINES = {"last_week": "momentum", "mean_4_weeks": "reversion to the 4-week mean"}
METRICS = (
    "demand_wape",
    "demand_log_error",
    "supply_wape",
    "supply_log_error",
    "direction",
)
#: the file a simulator writes its weekly truth to
TRUTH_FILE = "truth_weekly.parquet"
BASELINE_WEEKS = 4


@dataclass(frozen=True)
class BacktestResult(Display):
    """A rolling-origin backtest (module docstring).

    ``scores`` has one row per scope (each origin and horizon, then ``pooled``) and metric
    (:data:`METRICS`), a column per predictor (:data:`PREDICTORS`) and ``segments``, the
    segment-weeks it read; ``segments`` one row per origin, horizon and segment with what
    each predictor said and what happened; ``truth`` the scores against the truth
    (``nowcast``, ``forecast``), when there was one; ``weeks`` the origins asked for;
    ``provenance`` what it read, as a run's manifest records it."""

    as_of: dt.date
    origins: tuple[dt.date, ...]
    horizon: int
    weeks: int
    scores: pd.DataFrame
    segments: pd.DataFrame
    provenance: Provenance
    created: str
    truth: dict[str, Scores] = field(default_factory=dict)
    truth_source: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0

    def pooled(self, horizon: int = 1) -> dict[str, dict[str, float]]:
        """The scores pooled over the origins, ``horizon`` weeks ahead: per metric, per
        predictor (and ``segments``)."""
        rows = self.scores[(self.scores["scope"] == "pooled") & (self.scores["horizon"] == horizon)]
        return {
            str(r["metric"]): {k: float(r[k]) for k in (*PREDICTORS, "segments")}
            for r in rows.to_dict("records")
        }

    def beats_baselines(self) -> bool:
        """Whether the engine beats both naive baselines (module docstring)."""
        p = self.pooled()
        better = [
            p[f"{side}_wape"]["engine"] < min(p[f"{side}_wape"][b] for b in PREDICTORS[1:])
            for side in ("demand", "supply")
        ]
        better.append(p["direction"]["engine"] > max(p["direction"][b] for b in PREDICTORS[1:]))
        return bool(all(better))

    def headline(self) -> dict[str, Any]:
        """The numbers a report and ``--json`` lead with."""
        p = self.pooled()
        out: dict[str, Any] = {
            "as_of": self.as_of.isoformat(),
            "origins": len(self.origins),
            "first_origin": self.origins[0].isoformat() if self.origins else None,
            "last_origin": self.origins[-1].isoformat() if self.origins else None,
            "horizon": self.horizon,
            "beats_baselines": self.beats_baselines(),
            "pooled": {m: {k: _number(p[m][k]) for k in PREDICTORS} for m in METRICS},
        }
        if self.truth:
            out["truth"] = {
                name: {k: _number(v) for k, v in s.row("all").items()}
                for name, s in self.truth.items()
            }
            out["truth_source"] = self.truth_source
        return out

    def to_frame(self) -> pd.DataFrame:
        return self.scores.copy()

    def tables(self) -> dict[str, pd.DataFrame]:
        """What the store writes (:meth:`pricing.store.store.RunStore.write_backtest`):
        the scores, the segment rows, and the scores against the truth when there was
        one (one row per predictor, ``nowcast`` or ``forecast``, and group)."""
        out = {"scores": self.scores, "segments": self.segments}
        if self.truth:
            out["truth"] = pd.concat(
                [s.to_frame().assign(predictor=name) for name, s in self.truth.items()],
                ignore_index=True,
            )
        return out

    def manifest(self) -> BacktestManifest:
        """The stored backtest's manifest (its build, path and tables' rows are set by
        the store)."""
        return BacktestManifest(
            as_of=self.as_of,
            created=self.created,
            origins=self.origins,
            horizon=self.horizon,
            weeks=self.weeks,
            beats_baselines=self.beats_baselines(),
            headline=self.headline(),
            truth_source=self.truth_source,
            provenance=self.provenance,
            timings_s=self.timings,
            peak_memory_mb=self.peak_memory_mb,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.headline(),
            "origins_list": [d.isoformat() for d in self.origins],
            "scores": records(self.scores),
            "truth_scores": {name: s.to_dict() for name, s in self.truth.items()},
            "timings_s": self.timings,
        }

    def summary(self, max_rows: int = 0) -> str:
        p = self.pooled()
        verdict = "beats" if self.beats_baselines() else "does NOT beat"
        lines = [
            f"Backtest as of {self.as_of}: {len(self.origins)} origins "
            f"({self.origins[0]} .. {self.origins[-1]}), {self.horizon} week(s) ahead; "
            f"the engine {verdict} the naive baselines",
            f"  {'':<18}{'engine':>10}{'last week':>12}{'4-week mean':>13}{'read':>8}",
        ]
        for metric in METRICS:
            row = p[metric]
            lines.append(
                f"  {_LABELS[metric]:<18}"
                + "".join(
                    f"{_format(metric, row[k]):>{w}}"
                    for k, w in zip(PREDICTORS, (10, 12, 13), strict=True)
                )
                + f"{int(row['segments']):>8,}"
            )
        lines.append("  (direction's baselines: momentum and reversion to the 4-week mean)")
        for name, scores in self.truth.items():
            r = scores.row("all")
            lines.append(
                f"  against the truth, {name}: error {_format('ratio', r['relative_error'])}× "
                f"today's rate's, direction {_format('direction', r['direction'])}, 90% band "
                f"coverage {_format('direction', r['coverage'])} "
                f"(width {_format('direction', r['width'])})"
            )
        if max_rows:
            shown = self.scores[self.scores["scope"] != "pooled"].head(max_rows)
            lines.append(table(shown, "{:.3f}"))
        return "\n".join(lines)


_LABELS = {
    "demand_wape": "demand hours WAPE",
    "demand_log_error": "  median |log err|",
    "supply_wape": "supply hours WAPE",
    "supply_log_error": "  median |log err|",
    "direction": "direction right",
}


def _format(metric: str, value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if metric == "ratio":
        return f"{value:.2f}"
    return f"{value:.1%}" if metric in ("direction",) or "wape" in metric else f"{value:.3f}"


def _number(value: float) -> float | None:
    return value if np.isfinite(value) else None


Progress = Callable[[str], None]


def backtest(
    data_dir: str | Path = SAMPLE_DIR,
    config: RunConfig | str | Path | None = None,
    weeks: int = 12,
    horizon: int = 1,
    truth: str | Path | None = None,
    as_of: dt.date | None = None,
    executor: Executor = LOCAL,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest the engine on ``data_dir`` over its last ``weeks`` origins, scoring
    ``horizon`` weeks after each (module docstring). ``truth``: a weekly truth table
    (default: ``truth_weekly.parquet`` in ``data_dir`` when there is one). Raises
    :class:`DataError` for invalid inputs, too little history or an unusable truth table.
    """
    if weeks < 1 or horizon < 1:
        raise DataError(f"--weeks and --horizon must be ≥ 1 (got {weeks} and {horizon})")
    say = progress or (lambda _: None)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    inputs = checked_inputs(data_dir, config, as_of)
    panel = build_panel(inputs.checked, inputs.through, executor)
    origins = _origins(panel, weeks, horizon)
    keys = list(panel.segment_keys)
    truth_table, source = _truth(inputs.data_dir, truth, keys, panel)
    timings = {"prepare": time.perf_counter() - start}
    parts = []
    for i, origin in enumerate(origins, 1):
        say(f"[{i}/{len(origins)}] origin {origin.isoformat()}")
        t0 = time.perf_counter()
        parts.extend(_origin(inputs, panel, origin, horizon, truth_table is not None, executor))
        timings[f"origin_{origin.isoformat()}"] = time.perf_counter() - t0
    segments = pd.concat(parts, ignore_index=True)
    if truth_table is not None:
        segments = _with_truth(segments, truth_table, keys)
    return BacktestResult(
        as_of=inputs.through,
        origins=tuple(origins),
        horizon=horizon,
        weeks=weeks,
        scores=_scores(segments),
        segments=segments,
        provenance=provenance(inputs, panel, executor),
        created=created,
        truth=_truth_scores(segments) if truth_table is not None else {},
        truth_source=source,
        timings={k: round(v, 3) for k, v in timings.items()},
        peak_memory_mb=peak_memory_mb(),
    )


def _origins(panel: Panel, weeks: int, horizon: int) -> list[dt.date]:
    """The last ``weeks`` Sundays of the panel that have ``horizon`` weeks after them and
    at least :data:`BASELINE_WEEKS` weeks up to them; a :class:`DataError` saying how
    many there are when there are fewer."""
    mondays = panel.weeks
    usable = mondays[BASELINE_WEEKS - 1 : len(mondays) - horizon]
    if len(usable) < weeks:
        fix = (
            f"pass --weeks {len(usable)} or less"
            if len(usable)
            else "it needs more weeks of data, or a smaller --horizon"
        )
        raise DataError(
            f"too little history for {weeks} origins: each origin needs {BASELINE_WEEKS - 1} "
            f"weeks before it (the 4-week baseline) and {horizon} after it (--horizon), so "
            f"the {len(mondays)} weeks of data through {panel.as_of} allow "
            f"{len(usable)}; {fix}"
        )
    return [(m + pd.Timedelta(days=6)).date() for m in usable[-weeks:]]


def _origin(
    inputs: Inputs,
    panel: Panel,
    origin: dt.date,
    horizon: int,
    bands: bool,
    executor: Executor,
) -> list[pd.DataFrame]:
    """The segment rows of one origin, one frame per horizon."""
    cut = panel.through(origin)
    out = []
    now = None
    for h in range(1, horizon + 1):
        fitted = fit_market(inputs, cut, executor, ahead=h)
        if now is None:
            now = solve(fitted.market, executor=executor)
        later = solve(fitted.next_market, baseline=now, executor=executor)
        guidance = (
            rate_guidance(now, inputs.config.guidance, None, executor, forecast=later)
            .to_frame()
            .reset_index(drop=True)
            if bands
            else None
        )
        out.append(
            _outcomes(
                panel, fitted.market, fitted.next_market, now.rate, later.rate, guidance, origin, h
            )
        )
    return out


def _outcomes(
    panel: Panel,
    market: Market,
    following: Market,
    rate: FloatArray,
    forecast: FloatArray,
    guidance: pd.DataFrame | None,
    origin: dt.date,
    h: int,
) -> pd.DataFrame:
    """Per segment of the origin's market: what each predictor said for week t + h and
    what happened (module docstring)."""
    keys = list(panel.segment_keys)
    monday = pd.Timestamp(origin - dt.timedelta(days=6))
    frame = panel.frame
    week = frame.set_index([*keys, "week"])
    segs = market.segments[keys].reset_index(drop=True)

    def at(offset: int, column: str) -> FloatArray:
        index = pd.MultiIndex.from_frame(segs.assign(week=monday + pd.Timedelta(weeks=offset)))
        return week[column].reindex(index).to_numpy(np.float64)

    recent = range(-(BASELINE_WEEKS - 1), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.array([np.log(at(k, "rate")) for k in recent])
        seen = np.isfinite(logs)
        # the geometric mean of the weeks with a rate (NaN for a segment with none)
        mean_rate = np.exp(np.where(seen, logs, 0.0).sum(axis=0) / seen.sum(axis=0))
    target = following.segments
    realized = at(h, "rate")
    out = segs.assign(
        origin=origin,
        horizon=h,
        week=(monday + pd.Timedelta(weeks=h)).date(),
        today_rate=market.array("observed_rate"),
        rate=rate,
        forecast_rate=forecast,
        rate_last_week=at(0, "rate"),
        rate_week_before=at(-1, "rate"),
        rate_mean_4_weeks=mean_rate,
        realized_rate=realized,
    )
    for side, column, fee in (
        ("demand", "hours_demanded", np.log1p(target["client_fee"].to_numpy())),
        ("supply", "hours_supplied", np.log1p(-target["freelancer_fee"].to_numpy())),
    ):
        level = target[f"log_{side}_level"].to_numpy(np.float64)
        slope = target[f"{side}_elasticity"].to_numpy(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{side}_engine"] = curve_hours(level, slope, np.log(realized) + fee)
        out[f"{side}_last_week"] = at(0, column)
        out[f"{side}_mean_4_weeks"] = np.mean([at(k, column) for k in recent], axis=0)
        out[f"{side}_realized"] = at(h, column)
    for name in ("listed_rate_low", "listed_rate_high", "forecast_rate_low", "forecast_rate_high"):
        out[name] = np.nan if guidance is None else guidance[name].to_numpy(np.float64)
    out["thin_data"] = (
        np.zeros(len(out), bool)
        if guidance is None
        else (guidance["market_state"] == "thin_data").to_numpy()
    )
    return out


def _scores(segments: pd.DataFrame) -> pd.DataFrame:
    """:data:`METRICS` per origin and horizon, then pooled over them."""
    rows = []
    horizons = sorted(set(segments["horizon"].tolist()))
    for origin in sorted(set(segments["origin"].tolist())):
        for h in horizons:
            part = segments[(segments["origin"] == origin) & (segments["horizon"] == h)]
            rows.extend(_metric_rows(part, str(origin), h))
    for h in horizons:
        rows.extend(_metric_rows(segments[segments["horizon"] == h], "pooled", h))
    return pd.DataFrame(rows, columns=["scope", "horizon", "metric", *PREDICTORS, "segments"])


def _metric_rows(part: pd.DataFrame, scope: str, h: int) -> list[dict[str, Any]]:
    rows = []
    for side in ("demand", "supply"):
        actual = part[f"{side}_realized"].to_numpy(np.float64)
        predicted = {k: part[f"{side}_{k}"].to_numpy(np.float64) for k in PREDICTORS}
        ok = np.isfinite(actual) & np.logical_and.reduce(
            [np.isfinite(v) for v in predicted.values()]
        )
        positive = ok & (actual > 0) & np.logical_and.reduce([v > 0 for v in predicted.values()])
        wape = {
            k: np.abs(v[ok] - actual[ok]).sum() / actual[ok].sum()
            if actual[ok].sum() > 0
            else np.nan
            for k, v in predicted.items()
        }
        log_error = {
            k: float(np.median(np.abs(np.log(v[positive] / actual[positive]))))
            if positive.any()
            else np.nan
            for k, v in predicted.items()
        }
        rows.append(
            {
                "scope": scope,
                "horizon": h,
                "metric": f"{side}_wape",
                **wape,
                "segments": int(ok.sum()),
            }
        )
        rows.append(
            {
                "scope": scope,
                "horizon": h,
                "metric": f"{side}_log_error",
                **log_error,
                "segments": int(positive.sum()),
            }
        )
    rows.append({"scope": scope, "horizon": h, "metric": "direction", **_direction(part)})
    return rows


def _direction(part: pd.DataFrame) -> dict[str, Any]:
    """Direction shares of the engine and the two baselines on the segments whose rate
    moved by more than :data:`MOVED` (module docstring)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        today = part["today_rate"].to_numpy(np.float64)
        last = part["rate_last_week"].to_numpy(np.float64)
        realized = np.log(part["realized_rate"].to_numpy(np.float64) / last)
        calls = {
            "engine": np.log(part["rate"].to_numpy(np.float64) / today),
            "last_week": np.log(last / part["rate_week_before"].to_numpy(np.float64)),
            "mean_4_weeks": np.log(part["rate_mean_4_weeks"].to_numpy(np.float64) / last),
        }
    moved = np.isfinite(realized) & (np.abs(realized) > MOVED)
    moved &= np.logical_and.reduce([np.isfinite(v) for v in calls.values()])
    shares = {
        k: float((np.sign(v[moved]) == np.sign(realized[moved])).mean()) if moved.any() else np.nan
        for k, v in calls.items()
    }
    return {**shares, "segments": int(moved.sum())}


# --------------------------------------------------------------------------- truth
def _truth(
    data_dir: Path, path: str | Path | None, keys: list[str], panel: Panel
) -> tuple[pd.DataFrame | None, str | None]:
    """The weekly truth table (module docstring) and where it came from; None without one.
    A :class:`DataError` lists every problem of a table that cannot be used: a missing
    column, a week that is not a date, a clearing rate that is not a positive number, a
    repeated segment-week, no segment-week in common with the data."""
    chosen = Path(path) if path is not None else data_dir / TRUTH_FILE
    if path is None and not chosen.is_file():
        return None, None
    if not chosen.is_file():
        raise DataError(f"truth table {chosen} does not exist; name a Parquet or CSV file")
    try:
        table = pd.read_csv(chosen) if chosen.suffix.lower() == ".csv" else pd.read_parquet(chosen)
    except Exception as exc:  # a file that is not a table: say so, whatever the reader raised
        raise DataError(f"truth table {chosen} cannot be read: {exc}") from None
    problems = [f"missing column {c!r}" for c in (*keys, "week", "clearing_rate") if c not in table]
    if "week" in table and "clearing_rate" in table:
        problems += _truth_values(table, keys if not problems else None)
    if not problems:
        table = table.assign(
            week=pd.to_datetime(table["week"], format="mixed")
            .dt.to_period("W-SUN")
            .dt.start_time.dt.date,
            clearing_rate=pd.to_numeric(table["clearing_rate"]),
        )
        data = panel.frame[[*keys, "week"]].assign(week=panel.frame["week"].dt.date)
        common = table[[*keys, "week"]].astype({k: str for k in keys})
        common = common.merge(data.astype({k: str for k in keys}), on=[*keys, "week"])
        if common.empty:
            first, last = panel.weeks.min().date(), panel.weeks.max().date()
            problems.append(
                f"no segment-week in common with the data ({len(table):,} rows, weeks "
                f"{min(table['week'])} .. {max(table['week'])}; the data's weeks "
                f"{first} .. {last}): is it the truth of another market?"
            )
    if problems:
        raise DataError(
            f"truth table {chosen} cannot be used:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + f"\nIt needs {', '.join(keys)}, week (a date in the week) and clearing_rate "
            "(USD per hour, > 0), one row per segment and week; optionally thin."
        )
    if "thin" in table:  # a CSV's flags are text
        table = table.assign(thin=_flag(table["thin"]).isin(_TRUE))
    columns = [*keys, "week", "clearing_rate", *(["thin"] if "thin" in table else [])]
    return table[columns], str(chosen)


_TRUE = ("true", "1", "1.0")
_FALSE = ("false", "0", "0.0")


def _flag(values: pd.Series) -> pd.Series:
    """A true/false column as lower-case text, as Parquet's booleans and a CSV's read."""
    return values.astype(str).str.strip().str.lower()


def _truth_values(table: pd.DataFrame, keys: list[str] | None) -> list[str]:
    """The problems of a truth table's values: weeks that are not dates, rates that are
    not positive numbers, a ``thin`` that is not true/false, repeated segment-weeks (row
    numbers from 0, the first five;
    ``keys`` None: a key column is missing, so repeats cannot be told)."""
    problems = []
    week = pd.to_datetime(table["week"], errors="coerce", format="mixed")
    rate = pd.to_numeric(table["clearing_rate"], errors="coerce")
    bad_week = np.flatnonzero(week.isna().to_numpy())
    bad_rate = np.flatnonzero(~(rate > 0).to_numpy() & table["clearing_rate"].notna().to_numpy())
    if bad_week.size:
        shown = table["week"].iloc[bad_week[:3]].tolist()
        problems.append(
            f"'week' is not a date in {bad_week.size:,} rows (rows {bad_week[:5].tolist()}: "
            f"{shown})"
        )
    if bad_rate.size:
        shown = table["clearing_rate"].iloc[bad_rate[:3]].tolist()
        problems.append(
            f"'clearing_rate' is not a positive number in {bad_rate.size:,} rows (rows "
            f"{bad_rate[:5].tolist()}: {shown})"
        )
    if "thin" in table:
        thin = table["thin"]
        bad_thin = np.flatnonzero(~_flag(thin).isin([*_TRUE, *_FALSE]).to_numpy())
        if bad_thin.size:
            problems.append(
                f"'thin' is not true/false in {bad_thin.size:,} rows (rows "
                f"{bad_thin[:5].tolist()}: {thin.iloc[bad_thin[:3]].tolist()})"
            )
    if keys is None:
        return problems
    duplicated = table.assign(week=week).duplicated([*keys, "week"])
    if duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy())[:5].tolist()
        problems.append(f"{int(duplicated.sum())} repeated segment-weeks (rows {rows})")
    return problems


def _with_truth(segments: pd.DataFrame, truth: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The true clearing rates of each origin's week and of its target week."""
    monday = pd.to_datetime(segments["origin"]) - pd.Timedelta(days=6)
    now = truth.rename(columns={"week": "_now", "clearing_rate": "true_rate"})
    later = truth[[*keys, "week", "clearing_rate"]].rename(
        columns={"week": "week", "clearing_rate": "true_rate_target"}
    )
    out = segments.assign(_now=monday.dt.date)
    out = out.merge(now, on=[*keys, "_now"], how="left").merge(
        later, on=[*keys, "week"], how="left"
    )
    if "thin" not in out:
        out["thin"] = out["thin_data"]
    out["thin"] = out["thin"].fillna(False).astype(bool)
    return out.drop(columns="_now")


def _truth_scores(segments: pd.DataFrame) -> dict[str, Scores]:
    """The nowcast and the forecast against the truth, pooled over origins (first horizon
    for the nowcast, every horizon for the forecast)."""

    def column(name: str, rows: pd.DataFrame) -> FloatArray:
        return rows[name].to_numpy(np.float64)

    first = segments[segments["horizon"] == 1]
    thin = first["thin"].to_numpy(bool)
    return {
        "nowcast": score(
            column("rate", first),
            column("today_rate", first),
            column("true_rate", first),
            column("listed_rate_low", first),
            column("listed_rate_high", first),
            thin,
            "nowcast",
        ),
        "forecast": score(
            column("forecast_rate", segments),
            column("today_rate", segments),
            column("true_rate_target", segments),
            column("forecast_rate_low", segments),
            column("forecast_rate_high", segments),
            segments["thin"].to_numpy(bool),
            "forecast",
        ),
    }
