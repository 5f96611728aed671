r"""Demand and supply curves for every segment, from the segment × week panel.

Per segment s and week t, with the observed rate p_st, hours demanded QD_st and hours
supplied QS_st (DESIGN.md §3):

    log QD_st = a_s + ε_s log p_st + γ_D'z^D_t + δ_D'c_t + u_st     demand, ε_s < 0
    log QS_st = b_s + η_s log p_st + γ_S'z^S_t + δ_S'c_t + v_st     supply, η_s > 0

z^D are the demand shifters (the config's ``supply_instruments``), z^S the supply shifters
(``demand_instruments``), c the shared ``controls`` plus ``seasonal_harmonics`` pairs of
sin/cos(2πh·week_of_year/52). Each curve is estimated by 2SLS with the other curve's
shifters as instruments and its own shifters as included controls (the exogenous
variables of the system are all in the instrument set); by OLS, flagged ``ols``, when the
config names no instrument for that side. A week enters a curve only when it has hires
(so a rate) and positive hours on that side.

**Shrinkage** (empirical Bayes, per side). With raw estimates b_s, standard errors σ_s,
segments s in category c:

    b_s ~ N(θ_s, σ_s²),   θ_s ~ N(μ_c, τ²),   μ_c ~ N(μ, κ²)

τ² and κ² are estimated by the method of moments (τ²: the within-category spread of b_s
beyond its sampling noise; κ²: the spread of category means beyond theirs), iterated
with the weights they imply. Each category mean m_c (precision-weighted, weights
1/(σ_s² + τ²), variance v_c) is first pulled to the global mean: μ̃_c = (κ² m_c + v_c μ̂)
/ (κ² + v_c), V_c ≈ κ² v_c / (κ² + v_c); then each segment:

    B_s = σ_s² / (σ_s² + τ²),   θ̂_s = (1 − B_s) b_s + B_s μ̃_c,
    var(θ̂_s − θ_s) ≈ (1 − B_s) σ_s² + B_s² V_c                (Morris 1983)

A segment without a usable raw estimate gets μ̃_c with variance τ² + V_c. If the shrunk
value still has the wrong sign, the category mean, then the global mean, replaces it
(flag ``wrong_sign_replaced``).

**Levels** put each curve through the segment's reference point: the rate p̄_s
(hours-weighted geometric mean of hired rates over the last ``reference_weeks`` weeks
that had hires) and the mean hours demanded / supplied over the same weeks:

    log A_s = log Q̄D_s − ε̂_s log p̄_s,    log B_s = log Q̄S_s − η̂_s log p̄_s
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.cluster import LOCAL, Executor, plan_parts
from pricing.config import EstimationConfig
from pricing.display import Display
from pricing.estimation.iv import COEF, critical_value, estimate_curve
from pricing.estimation.levels import anchor_levels
from pricing.inputs.panel import Panel

SIDES = ("demand", "supply")
#: The first columns of :meth:`CurveSet.to_frame` after the segment keys (a storage
#: contract).
CURVE_COLUMNS = (
    "side",
    "elasticity",
    "elasticity_raw",
    "std_error",
    "ci_low",
    "ci_high",
    "first_stage_f",
    "n_weeks",
    "ref_rate",
    "ref_hours",
    "flags",
)
_QUANTITY = {"demand": "hours_demanded", "supply": "hours_supplied"}
_SIGN = {"demand": -1.0, "supply": 1.0}
# variance components are floored here so that no segment is pooled completely
_MIN_VARIANCE = 1e-6
#: segments per task on a cluster, at least: 500 take ~0.2 s to estimate
MIN_BATCH = 500


@dataclass(frozen=True)
class CurveSet(Display):
    """Fitted demand and supply curves, one row per segment and side."""

    frame: pd.DataFrame
    segment_keys: tuple[str, ...]
    level: float

    def to_frame(self) -> pd.DataFrame:
        """One row per segment and side: the segment keys, :data:`CURVE_COLUMNS` (the
        stored table's contract, README "Run store"), then the rest."""
        keys = list(self.segment_keys)
        rest = [c for c in self.frame.columns if c not in keys and c not in CURVE_COLUMNS]
        return self.frame[[*keys, *CURVE_COLUMNS, *rest]].copy()

    def side(self, side: str) -> pd.DataFrame:
        """The rows of one side (``demand`` or ``supply``), indexed by segment."""
        return self.frame[self.frame["side"] == side].set_index(list(self.segment_keys))

    def summary(self, max_rows: int = 20) -> str:
        f = self.frame
        lines = [f"Curves for {f.groupby(list(self.segment_keys)).ngroups:,} segments"]
        for side in SIDES:
            s = f[f["side"] == side]
            flagged = s["flags"].str.len() > 0
            lines.append(
                f"  {side}: elasticity median {s['elasticity'].median():.3f} "
                f"(raw {s['elasticity_raw'].median():.3f}), "
                f"{int(flagged.sum())} flagged, methods {dict(s['method'].value_counts())}"
            )
        shown = f.head(max_rows)[
            [
                *self.segment_keys,
                "side",
                "elasticity",
                "elasticity_raw",
                "std_error",
                "n_weeks",
                "flags",
            ]
        ]
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return "\n".join(lines)


def fit_curves(
    panel: Panel, config: EstimationConfig, executor: Executor = LOCAL, ahead: int = 1
) -> CurveSet:
    """Estimate, shrink and anchor the curves of every segment of ``panel``, with their
    levels forecast ``ahead`` weeks after the as-of week (the ``*_next`` columns).

    The per-segment regressions run in batches of whole segments (at least
    :data:`MIN_BATCH`), one task each on a remote ``executor`` (locally one batch);
    each segment's estimate depends on its own weeks only, so the batches give the
    same numbers. Shrinkage and the nowcast's parameters need every segment's estimate
    and run on the gathered ones.
    """
    keys = list(panel.segment_keys)
    frame = _with_seasonality(panel.to_frame(), config.seasonal_harmonics)
    segments = frame[keys].drop_duplicates().reset_index(drop=True)
    runner, parts = plan_parts(executor, len(segments), MIN_BATCH)
    batches = _segment_batches(frame, keys, parts)
    raws = runner.map(partial(_raw_estimates, keys=keys, config=config), batches)
    fits = {}
    for side in SIDES:
        raw = pd.concat([r[side] for r in raws], ignore_index=True)
        result = segments.merge(raw, on=keys, how="left")
        result["n"] = result["n"].fillna(0).astype(np.int64)
        # segments absent from the fit had no usable week on this side
        result["flags"] = result["flags"].fillna("no_usable_weeks")
        result["method"] = result["method"].fillna("none")
        fits[side] = _shrink(result, side, keys, config)
    anchored = anchor_levels(frame, keys, fits, _controls_of(frame, config), ahead)
    out = []
    for side in SIDES:
        coefficients = [c for c in fits[side].columns if str(c).startswith(COEF)]
        part = fits[side].drop(columns=coefficients)
        part = part.merge(anchored[side], on=keys, how="left")
        part.insert(len(keys), "side", side)
        out.append(part)
    curves = pd.concat(out, ignore_index=True)
    curves = curves.sort_values([*keys, "side"], kind="stable").reset_index(drop=True)
    return CurveSet(curves, tuple(keys), config.interval_level)


def _controls_of(frame: pd.DataFrame, config: EstimationConfig) -> dict[str, list[str]]:
    """Each side's included regressors besides the rate: its own shifters (the other
    side's instruments), the shared controls and the seasonal terms."""
    seasonal = [c for c in frame.columns if c.startswith("season_")]
    out = {}
    for side in SIDES:
        own = config.supply_instruments if side == "demand" else config.demand_instruments
        instruments = config.demand_instruments if side == "demand" else config.supply_instruments
        controls = [*dict.fromkeys([*own, *config.controls]), *seasonal]
        out[side] = [c for c in controls if c not in instruments]
    return out


def _segment_batches(frame: pd.DataFrame, keys: list[str], parts: int) -> list[pd.DataFrame]:
    """The panel rows in up to ``parts`` batches of whole segments."""
    if parts <= 1:
        return [frame]
    code = frame.groupby(keys, sort=False).ngroup().to_numpy()
    n = int(code.max()) + 1 if code.size else 0
    batch = code * min(parts, max(n, 1)) // max(n, 1)
    return [frame[batch == b] for b in np.unique(batch).tolist()]


def _raw_estimates(
    frame: pd.DataFrame, keys: list[str], config: EstimationConfig
) -> dict[str, pd.DataFrame]:
    """A task: the unshrunk 2SLS (or OLS) estimate of each segment of ``frame``, per side,
    with the coefficients of its intercept and controls."""
    out = {}
    controls = _controls_of(frame, config)
    for side in SIDES:
        instruments = config.demand_instruments if side == "demand" else config.supply_instruments
        quantity = _QUANTITY[side]
        usable = frame[frame["rate"].notna() & (frame[quantity] > 0)]
        out[side] = estimate_curve(
            usable,
            quantity,
            "rate",
            instruments=instruments,
            controls=controls[side],
            by=keys,
            cov=config.cov,
            bandwidth=config.bandwidth if config.cov in ("HAC", "EWC") else None,
            level=config.interval_level,
            on_error="flag",
        ).to_frame()
    return out


def _with_seasonality(frame: pd.DataFrame, harmonics: int) -> pd.DataFrame:
    if not harmonics:
        return frame
    angle = 2 * np.pi * frame["week"].dt.isocalendar().week.to_numpy(np.float64) / 52.0
    extra = {}
    for h in range(1, harmonics + 1):
        extra[f"season_sin{h}"] = np.sin(h * angle)
        extra[f"season_cos{h}"] = np.cos(h * angle)
    return frame.assign(**extra)


def _reference_point(frame: pd.DataFrame, keys: list[str], weeks: int) -> pd.DataFrame:
    """Rate and hours over each segment's last ``weeks`` weeks with hires."""
    hired = frame[frame["rate"].notna() & (frame["hours_hired"] > 0)].sort_values("week")
    recent = hired.groupby(keys, sort=False).tail(weeks)
    log_rate = np.log(recent["rate"]) * recent["hours_hired"]
    grouped = recent.assign(_wlog=log_rate).groupby(keys)
    ref = grouped.agg(
        _wlog=("_wlog", "sum"),
        _w=("hours_hired", "sum"),
        ref_hours_demanded=("hours_demanded", "mean"),
        ref_hours_supplied=("hours_supplied", "mean"),
        ref_week=("week", "max"),
    ).reset_index()
    ref["ref_rate"] = np.exp(ref["_wlog"] / ref["_w"])
    return ref.drop(columns=["_wlog", "_w"])


def _shrink(
    result: pd.DataFrame, side: str, keys: list[str], config: EstimationConfig
) -> pd.DataFrame:
    """Empirical-Bayes shrinkage toward category then global means (module docstring)."""
    sign = _SIGN[side]
    b = result["elasticity"].to_numpy(np.float64)
    se = result["std_error"].to_numpy(np.float64)
    category = pd.factorize(result["category"])[0]
    usable = np.isfinite(b) & np.isfinite(se) & (se > 0)
    flags = result["flags"].to_numpy(dtype=object)
    flags = _add_flag(flags, np.isfinite(b) & (sign * b <= 0), "wrong_sign")
    flags = _add_flag(flags, result["n"].to_numpy() < config.min_weeks, "thin_data")
    flags = _add_flag(flags, result["method"].eq("OLS").to_numpy(), "ols")

    # raw EWC intervals use Student t; the posterior intervals keep those degrees of freedom
    c = critical_value(config.interval_level, result["dof"].to_numpy(np.float64))
    out = result[keys].copy()
    out["elasticity_raw"] = b
    out["std_error_raw"] = se
    if config.shrinkage and usable.sum() >= 2:
        theta, var, cat_mean, global_mean = _empirical_bayes(b, se**2, category, usable)
    else:
        theta, var = np.where(usable, b, np.nan), np.where(usable, se**2, np.nan)
        cat_mean = np.full(len(b), np.nan)
        global_mean = np.nan
    flags = _add_flag(flags, ~usable & np.isfinite(theta), "borrowed_category_mean")
    flags = _add_flag(flags, ~usable & ~np.isfinite(theta), "unestimated")
    wrong = np.isfinite(theta) & (sign * theta <= 0)
    replacement = np.where(sign * cat_mean > 0, cat_mean, global_mean)
    theta = np.where(wrong, np.where(sign * replacement > 0, replacement, np.nan), theta)
    flags = _add_flag(flags, wrong, "wrong_sign_replaced")
    sd = np.sqrt(var)
    out["elasticity"] = theta
    out["std_error"] = sd
    out["ci_low"] = theta - c * sd
    out["ci_high"] = theta + c * sd
    out["first_stage_f"] = result["first_stage_f"].to_numpy(np.float64)
    out["n_weeks"] = result["n"].to_numpy(np.int64)
    out["dof"] = result["dof"].to_numpy(np.float64)  # of the Student t behind the interval
    out["method"] = result["method"].to_numpy()
    for column in (c for c in result.columns if c.startswith(COEF)):
        out[column] = result[column].to_numpy(np.float64)
    out["flags"] = flags.astype(str)
    return out


def _add_flag(
    flags: npt.NDArray[np.object_], mask: npt.NDArray[np.bool_], name: str
) -> npt.NDArray[np.object_]:
    """Append ``name`` to the comma-separated flags where ``mask`` holds."""
    joined = np.where(flags == "", name, flags + "," + name)
    return np.asarray(np.where(mask, joined, flags), dtype=object)


def _empirical_bayes(
    b: npt.NDArray[np.float64],
    s2: npt.NDArray[np.float64],
    category: npt.NDArray[np.int64],
    usable: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """Posterior means and variances of θ_s, category means μ̃_c per segment, and μ̂."""
    n_cat = int(category.max()) + 1
    cu, bu, s2u = category[usable], b[usable], s2[usable]
    tau2 = kappa2 = float(np.var(bu))
    for _ in range(20):
        w = 1.0 / (s2u + tau2)
        sw = np.bincount(cu, weights=w, minlength=n_cat)
        has = sw > 0
        m = np.where(
            has, np.bincount(cu, weights=w * bu, minlength=n_cat) / np.where(has, sw, 1), np.nan
        )
        v = np.where(has, 1.0 / np.where(has, sw, 1), np.nan)
        # τ²: within-category excess dispersion (categories with ≥ 2 segments)
        count = np.bincount(cu, minlength=n_cat)
        multi = count[cu] >= 2
        resid2 = (bu - m[cu]) ** 2 * count[cu] / np.maximum(count[cu] - 1, 1)
        tau2_new = max(
            float(np.mean(resid2[multi] - s2u[multi])) if multi.any() else 0.0, _MIN_VARIANCE
        )
        # κ²: between-category excess dispersion
        wc = 1.0 / (v[has] + kappa2)
        mu = float(np.sum(wc * m[has]) / np.sum(wc))
        n_has = int(has.sum())
        kappa2_new = (
            max(
                float(np.sum((m[has] - mu) ** 2) / max(n_has - 1, 1) - np.mean(v[has])),
                _MIN_VARIANCE,
            )
            if n_has >= 2
            else _MIN_VARIANCE
        )
        converged = abs(tau2_new - tau2) < 1e-10 and abs(kappa2_new - kappa2) < 1e-10
        tau2, kappa2 = tau2_new, kappa2_new
        if converged:
            break
    # category means pulled to the global mean; a category with no usable segment gets μ̂
    m_shrunk = np.where(has, (kappa2 * m + v * mu) / (kappa2 + v), mu)
    V = np.where(has, kappa2 * v / (kappa2 + v), kappa2)
    B = s2 / (s2 + tau2)
    theta = np.where(usable, (1 - B) * b + B * m_shrunk[category], m_shrunk[category])
    var = np.where(usable, (1 - B) * s2 + B**2 * V[category], tau2 + V[category])
    return theta, var, m_shrunk[category], mu
