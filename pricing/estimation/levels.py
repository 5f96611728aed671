r"""Where each segment's curves are anchored: their levels in the as-of week and the next
one, with the levels' uncertainty, from the nowcast (:mod:`pricing.estimation.nowcast`).

For side k of segment s, with the filtered level ℓ_T net of the controls, the controls'
coefficients γ and values w_T, the curve in the as-of week is

    log Q = log_level + ε log p,    log_level = ℓ_T + γ'w_T,

anchored at the as-of week's rate a (``ref_rate``: the segment's hours-weighted hired
rate in its last week with hires, ``ref_week``), where it gives ``ref_hours``. The curve
h weeks on (``ahead``: 1, the next week, unless a backtest asks for more) has
``log_level_next`` = ℓ_{T+h} + γ'ŵ_{T+h}: the seasonal terms as they fall, each shifter z
forecast by an AR(1) fitted to its own history (pooled over the segments that share it),
z_{T+h} = m + φ^h (z_T − m) with variance σ²_z Σ_{j<h} φ^{2j} (σ²_z: the innovations'). The
level's forecast error has two parts. The segment's own, with standard error
``level_se_next`` = √P_{T+1} (and the sides' correlation ``level_corr_next`` from P_{T+1}),
is independent between segments. The shifters', Σ_z γ_z e_z, is common: one innovation
e_z moves every segment that shares the shifter's series at once, which in a coupled
component no flow of freelancers can smooth away. It is carried as its standard error
``common_se_next`` = √(Σ_z γ_z² σ²_z), the correlation of the two sides' common parts
``common_corr_next`` = Σ_z γ_D,z γ_S,z σ²_z / (common_se_D common_se_S), and
``common_group``, a code shared by the segments whose shifter series are the same (all of
them when the shifters are market-wide, a category's when they are per category); a
band draws one common innovation per group (exact with one shifter per side, as
perfectly correlated across the group's segments otherwise).

A segment without a fitted curve (no raw estimate: too few weeks) is anchored at its
reference point instead — the hours-weighted rate and mean hours of its last
``reference_weeks`` weeks with hires — with no level uncertainty known (NaN), so it gets
no band.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.estimation.nowcast import Nowcast, arrange, fit_nowcast

FloatArray = npt.NDArray[np.float64]
SIDES = ("demand", "supply")
LEVEL_COLUMNS = (
    "ref_rate",
    "ref_week",
    "ref_hours",
    "log_level",
    "level_se",
    "slope_level_cov",
    "level_corr",
    "log_level_next",
    "level_se_next",
    "level_corr_next",
    "common_se_next",
    "common_corr_next",
    "common_group",
)


def anchor_levels(
    frame: pd.DataFrame,
    keys: list[str],
    fits: dict[str, pd.DataFrame],
    controls: dict[str, list[str]],
    ahead: int = 1,
) -> dict[str, pd.DataFrame]:
    """Per side, the segment keys and :data:`LEVEL_COLUMNS` (module docstring), the
    forecast ``ahead`` weeks after the as-of week."""
    segments, series = arrange(frame, keys, fits, controls)
    now = fit_nowcast(series, ahead)
    anchor = _anchor(frame, keys, segments)
    last = frame[frame["week"] == frame["week"].max()]
    latest = segments.merge(last, on=keys, how="left")
    forecast, group = _shifter_forecasts(frame, keys, segments, controls, ahead)
    common = _common(fits, controls, forecast)
    corr_next = _correlation(now.cov_next)
    out = {}
    for i, side in enumerate(SIDES):
        fit = fits[side]
        gamma_w = np.zeros(len(segments))
        gamma_next = np.zeros(len(segments))
        for name in controls[side]:
            g = fit[f"coef_{name}"].to_numpy(np.float64)
            gamma_w += g * latest[name].to_numpy(np.float64)
            gamma_next += g * forecast[name][0]
        eps = fit["elasticity"].to_numpy(np.float64)
        se = fit["std_error"].to_numpy(np.float64)
        log_level = now.level[:, i] + gamma_w
        columns = _side(now, i, log_level, now.level_next[:, i] + gamma_next, se)
        columns.update(
            level_corr_next=corr_next,
            common_se_next=common[side],
            common_corr_next=common["corr"],
            common_group=group,
        )
        part = segments.assign(**anchor, **columns)
        with np.errstate(invalid="ignore", divide="ignore"):
            reference = np.log(part[f"fallback_hours_{side}"]) - eps * np.log(part["fallback_rate"])
        for column in ("log_level", "log_level_next"):
            part[column] = np.where(np.isfinite(log_level), part[column], reference)
        rate = part["ref_rate"].to_numpy(np.float64)
        part["ref_hours"] = np.exp(part["log_level"] + eps * np.log(rate))
        out[side] = part[[*keys, *LEVEL_COLUMNS]]
    return out


def _correlation(cov: FloatArray) -> FloatArray:
    """The sides' correlation from each segment's 2×2 covariance: 0 where a side's level
    is known exactly (a variance of 0, as when its curve has no filter noise), NaN where
    a variance is NaN."""
    scale = np.sqrt(cov[:, 0, 0] * cov[:, 1, 1])
    out: FloatArray = np.divide(
        cov[:, 0, 1], scale, out=np.where(np.isnan(scale), np.nan, 0.0), where=scale > 0
    )
    return out


def _side(
    now: Nowcast,
    i: int,
    log_level: FloatArray,
    log_level_next: FloatArray,
    se: FloatArray,
) -> dict[str, FloatArray]:
    variance = now.cov[:, i, i]
    corr = _correlation(now.cov)
    return {
        "log_level": log_level,
        "level_se": np.sqrt(variance),
        "slope_level_cov": now.slope_gain[:, i] * se**2,
        "level_corr": corr,
        "log_level_next": log_level_next,
        "level_se_next": np.sqrt(now.cov_next[:, i, i]),
    }


def _common(
    fits: dict[str, pd.DataFrame],
    controls: dict[str, list[str]],
    forecast: dict[str, tuple[FloatArray, FloatArray]],
) -> dict[str, FloatArray]:
    """The common part of next week's level errors (module docstring): per side its
    standard error √(Σ_z γ_z² σ²_z), and the sides' correlation (``corr``)."""
    n = len(fits["demand"])
    variance = {side: np.zeros(n) for side in SIDES}
    covariance = np.zeros(n)
    for name, (_, var) in forecast.items():
        gamma = {
            side: fits[side][f"coef_{name}"].to_numpy(np.float64)
            if name in controls[side]
            else np.zeros(n)
            for side in SIDES
        }
        for side in SIDES:
            variance[side] += gamma[side] ** 2 * var
        covariance += gamma["demand"] * gamma["supply"] * var
    se = {side: np.sqrt(variance[side]) for side in SIDES}
    both = se["demand"] * se["supply"]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(both > 0, covariance / both, 0.0)
    return {**se, "corr": np.clip(corr, -1.0, 1.0)}


def _anchor(
    frame: pd.DataFrame, keys: list[str], segments: pd.DataFrame
) -> dict[str, npt.NDArray[Any]]:
    """The as-of rate and its week per segment (the last week with hires), and the
    reference point of the segments without a fitted curve."""
    hired = frame[frame["rate"].notna() & (frame["hours_hired"] > 0)].sort_values("week")
    last = hired.groupby(keys, sort=False).tail(1)[[*keys, "rate", "week"]]
    at = segments.merge(last, on=keys, how="left")
    recent = hired.groupby(keys, sort=False).tail(4)
    log_rate = np.log(recent["rate"]) * recent["hours_hired"]
    ref = (
        recent.assign(_wlog=log_rate)
        .groupby(keys)
        .agg(
            _wlog=("_wlog", "sum"),
            _w=("hours_hired", "sum"),
            fallback_hours_demand=("hours_demanded", "mean"),
            fallback_hours_supply=("hours_supplied", "mean"),
        )
        .reset_index()
    )
    ref["fallback_rate"] = np.exp(ref["_wlog"] / ref["_w"])
    fallback = segments.merge(ref.drop(columns=["_wlog", "_w"]), on=keys, how="left")
    return {
        "ref_rate": at["rate"].to_numpy(np.float64),
        "ref_week": at["week"].to_numpy(),
        **{
            str(c): fallback[c].to_numpy(np.float64)
            for c in fallback.columns
            if str(c).startswith("fallback_")
        },
    }


def _shifter_forecasts(
    frame: pd.DataFrame,
    keys: list[str],
    segments: pd.DataFrame,
    controls: dict[str, list[str]],
    ahead: int,
) -> tuple[dict[str, tuple[FloatArray, FloatArray]], FloatArray]:
    """Each control's value ``ahead`` weeks on per segment and the variance of that forecast
    (module docstring): exact for the seasonal terms, an AR(1) for the shifters; and each
    segment's common group (the same code where every shifter's series is the same)."""
    names = sorted({c for side in SIDES for c in controls[side]})
    weeks = np.sort(frame["week"].unique())
    following = pd.Timestamp(weeks[-1]) + pd.Timedelta(days=7 * ahead)
    angle = 2 * np.pi * following.isocalendar().week / 52.0
    out: dict[str, tuple[FloatArray, FloatArray]] = {}
    codes = [np.zeros(len(segments), np.int64)]
    index = segments.set_index(keys).index
    for name in names:
        if name.startswith("season_"):
            h = int(name.removeprefix("season_sin").removeprefix("season_cos"))
            value = np.sin(h * angle) if name.startswith("season_sin") else np.cos(h * angle)
            out[name] = (np.full(len(segments), value), np.zeros(len(segments)))
            continue
        wide = frame.pivot_table(index="week", columns=keys, values=name, dropna=False)
        wide = wide.reindex(columns=index)
        series = wide.to_numpy(np.float64)  # weeks × segments, in the segments' order
        now, before = series[1:].ravel(), series[:-1].ravel()
        ok = np.isfinite(now) & np.isfinite(before)
        phi, m, var = _ar1(before[ok], now[ok])
        steps = sum(phi ** (2 * j) for j in range(ahead))
        out[name] = (m + phi**ahead * (series[-1] - m), np.full(len(segments), var * steps))
        codes.append(np.unique(np.nan_to_num(series.T, nan=np.inf), axis=0, return_inverse=True)[1])
    group = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)[1]
    return out, np.asarray(group, np.float64).ravel()


def _ar1(before: FloatArray, now: FloatArray) -> tuple[float, float, float]:
    """φ, m and the innovation variance of now = m + φ (before − m) + e, by least squares."""
    if before.size < 3 or np.var(before) == 0:
        return (
            0.0,
            float(np.mean(now)) if now.size else 0.0,
            float(np.var(now)) if now.size else 0.0,
        )
    phi, c = np.polyfit(before, now, 1)
    m = c / (1 - phi) if abs(1 - phi) > 1e-9 else float(np.mean(now))
    residual = now - (c + phi * before)
    return float(phi), float(m), float(np.var(residual))
