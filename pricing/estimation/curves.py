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
segments s in category c and tier t:

    b_s ~ N(θ_s, σ_s²),   θ_s ~ N(μ_c + α_t, τ²),   μ_c ~ N(μ, κ²),   Σ_t α_t = 0

Tiers are few and each has many segments, so the tier effects α_t are fixed. When
``tier`` is not a segment key all segments are one tier, α ≡ 0: the category-only model.
With weights w_s = 1/(σ_s² + τ²) the category means and tier effects are fitted jointly
by weighted least squares, b_s ≈ m_c + α_t. Per category: W_c = Σ_{s∈c} w_s, v_c = 1/W_c,
the weighted mean m⁰_c = Σ_{s∈c} w_s b_s / W_c and q_c, the shares of W_c by tier. With
m_c = m⁰_c − q_c'α, the T tier equations left are (e_t: the unit vector of s's tier)

    S α = r,   S = Σ_s w_s e_t e_t' − Σ_c W_c q_c q_c',   r = Σ_s w_s b_s e_t − Σ_c W_c m⁰_c q_c

of rank T − 1; α̂ = S⁺r (the pseudo-inverse) sums to zero and has covariance S⁺. m⁰_c is
uncorrelated with α̂, so the fit m̂_c + α̂_t has variance v_c + d_s'S⁺d_s, d_s = e_t − q_c.
A tier without any usable estimate gets α = 0, the average tier.

τ² and κ² are estimated by the method of moments, iterated with the weights they imply.
τ² is the spread of the residuals r_s = b_s − m̂_c − α̂_t beyond sampling noise: the mean
of r_s² k_c / (k_c − 1 − k_c h_s) − σ_s² over the segments of categories with k_c ≥ 2
usable ones, h_s = w_s d_s'S⁺d_s being the tier effects' leverage (without tiers h_s = 0:
the factor k_c / (k_c − 1)). With unequal σ_s it leans high in small categories, by about
(arithmetic − harmonic mean of σ_s² + τ² in c) / (k_c − 1), so the intervals err wide
there. κ² is the spread of the m̂_c around μ̂ = Σ_c ω_c m̂_c (ω_c ∝ 1/(v_c + κ²)) beyond
their mean v_c. Each category mean is then pulled to the global mean, λ_c = v_c/(κ² + v_c):

    μ̃_c = (1 − λ_c) m̂_c + λ_c μ̂,   V_c ≈ κ² v_c / (κ² + v_c)

The segment's prior mean μ̃_c + α̂_t misses μ_c + α_t with variance V_c plus that of the
tier effects it carries, through the contrast d̃_s (its entries sum to zero, so how α is
centred does not matter; the sampling variance of μ̂, of order κ²/C, is left out):

    P_s = V_c + d̃_s'S⁺d̃_s,   d̃_s = e_t − (1 − λ_c) q_c − λ_c q̄,   q̄ = Σ_c ω_c q_c

Then each segment:

    B_s = σ_s² / (σ_s² + τ²),   θ̂_s = (1 − B_s) b_s + B_s (μ̃_c + α̂_t),
    var(θ̂_s − θ_s) ≈ (1 − B_s) σ_s² + B_s² P_s                (Morris 1983)

A segment without a usable raw estimate gets μ̃_c + α̂_t with variance τ² + P_s. If the
shrunk value still has the wrong sign, the prior mean μ̃_c + α̂_t, else the global mean
μ̂, replaces it (flag ``wrong_sign_replaced``).

**Levels** anchor each curve in the as-of week: the segment's latest rate and the hours
its nowcast puts there, with their uncertainty and next week's forecast
(:mod:`pricing.estimation.levels`, :mod:`pricing.estimation.nowcast`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.cluster import LOCAL, Executor, plan_parts
from pricing.config import EstimationConfig
from pricing.display import Display, table
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
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
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
        lines.append(table(shown, "{:.3f}"))
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
    """Empirical-Bayes shrinkage toward category (plus tier) then global means (module
    docstring)."""
    sign = _SIGN[side]
    b = result["elasticity"].to_numpy(np.float64)
    se = result["std_error"].to_numpy(np.float64)
    category = pd.factorize(result["category"])[0]
    tier = pd.factorize(result["tier"])[0] if "tier" in keys else None
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
        theta, var, prior_mean, global_mean = _empirical_bayes(b, se**2, category, usable, tier)
    else:
        theta, var = np.where(usable, b, np.nan), np.where(usable, se**2, np.nan)
        prior_mean = np.full(len(b), np.nan)
        global_mean = np.nan
    flags = _add_flag(flags, ~usable & np.isfinite(theta), "borrowed_category_mean")
    flags = _add_flag(flags, ~usable & ~np.isfinite(theta), "unestimated")
    wrong = np.isfinite(theta) & (sign * theta <= 0)
    replacement = np.where(sign * prior_mean > 0, prior_mean, global_mean)
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
    b: FloatArray,
    s2: FloatArray,
    category: IntArray,
    usable: BoolArray,
    tier: IntArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Posterior means and variances of θ_s, each segment's prior mean μ̃_c + α̂_t, and μ̂
    (module docstring). Without ``tier`` every segment is in one tier: α ≡ 0."""
    tier = np.zeros_like(category) if tier is None else tier
    n_cat, n_tier = int(category.max()) + 1, int(tier.max()) + 1
    p = _fit_prior(b[usable], s2[usable], category[usable], tier[usable], n_cat, n_tier)
    kappa2, m, v, mu = p.kappa2, p.fit.mean, p.fit.var, p.mu
    # category means pulled to the global mean; a category with no usable segment gets μ̂
    has = np.isfinite(m)
    m_shrunk = np.where(has, (kappa2 * m + v * mu) / (kappa2 + v), mu)
    V = np.where(has, kappa2 * v / (kappa2 + v), kappa2)
    pull = np.where(has, v / (kappa2 + v), 1.0)[category, None]
    # the α̂ contrast the prior mean carries; its entries sum to zero
    contrast = np.eye(n_tier)[tier] - (1 - pull) * p.fit.share[category] - pull * p.share_mean
    prior = m_shrunk[category] + p.fit.alpha[tier]
    P = V[category] + _quadratic(contrast, p.fit.alpha_cov)
    B = s2 / (s2 + p.tau2)
    theta = np.where(usable, (1 - B) * b + B * prior, prior)
    var = np.where(usable, (1 - B) * s2 + B**2 * P, p.tau2 + P)
    return theta, var, prior, mu


@dataclass(frozen=True)
class _AdditiveFit:
    """b_s ≈ m_c + α_t by weighted least squares (module docstring)."""

    mean: FloatArray  # m̂_c; NaN for a category without usable segments
    var: FloatArray  # v_c = 1 / Σ_{s∈c} w_s
    alpha: FloatArray  # α̂_t, summing to zero over the tiers with usable segments
    alpha_cov: FloatArray  # S⁺
    share: FloatArray  # q_ct, category × tier


@dataclass(frozen=True)
class _Prior:
    """The estimated prior: τ², κ², μ̂, the additive fit at those weights, and q̄."""

    tau2: float
    kappa2: float
    mu: float
    fit: _AdditiveFit
    share_mean: FloatArray  # q̄ = Σ_c ω_c q_c


def _fit_prior(
    b: FloatArray, s2: FloatArray, category: IntArray, tier: IntArray, n_cat: int, n_tier: int
) -> _Prior:
    """τ² and κ² by the method of moments, iterated with the weights they imply, on the
    usable segments (module docstring)."""
    tau2 = kappa2 = float(np.var(b))
    count = np.bincount(category, minlength=n_cat)[category]
    unit = np.eye(n_tier)[tier]
    for _ in range(20):
        w = 1.0 / (s2 + tau2)
        fit = _additive_fit(b, w, category, tier, n_cat, n_tier)
        m, v = fit.mean, fit.var
        has = np.isfinite(m)
        # τ²: within-category excess dispersion of the residuals, per residual degree of
        # freedom: 1 − 1/k_c for the category mean, less the tier effects' leverage h_s
        leverage = w * _quadratic(unit - fit.share[category], fit.alpha_cov)
        residual_dof = count - 1 - count * leverage
        multi = (count >= 2) & (residual_dof > 0)
        resid = b - m[category] - fit.alpha[tier]
        resid2 = resid**2 * count / np.where(multi, residual_dof, 1)
        tau2_new = max(
            float(np.mean(resid2[multi] - s2[multi])) if multi.any() else 0.0, _MIN_VARIANCE
        )
        # κ²: between-category excess dispersion
        wc = 1.0 / (v[has] + kappa2)
        mu = float(np.sum(wc * m[has]) / np.sum(wc))
        share_mean = wc @ fit.share[has] / np.sum(wc)
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
    return _Prior(tau2, kappa2, mu, fit, share_mean)


def _additive_fit(
    b: FloatArray, w: FloatArray, category: IntArray, tier: IntArray, n_cat: int, n_tier: int
) -> _AdditiveFit:
    """Category means and tier effects jointly by weighted least squares: the tier effects
    from the Schur complement S α = r, then m̂_c = m⁰_c − q_c'α̂ (module docstring)."""
    sw = np.bincount(category, weights=w, minlength=n_cat)
    has = sw > 0
    rc = np.bincount(category, weights=w * b, minlength=n_cat)
    m0 = np.where(has, rc / np.where(has, sw, 1), np.nan)
    v = np.where(has, 1.0 / np.where(has, sw, 1), np.nan)
    cell = np.bincount(category * n_tier + tier, weights=w, minlength=n_cat * n_tier)
    weight = cell.reshape(n_cat, n_tier)
    share = weight / np.where(has, sw, 1)[:, None]
    alpha, cov = np.zeros(n_tier), np.zeros((n_tier, n_tier))
    present = np.flatnonzero(weight.sum(axis=0) > 0)
    if present.size > 1:
        # S has the constant in its null space: invert it with the first tier held at
        # zero, then centre; that is the pseudo-inverse S⁺ when the design is connected
        schur = (np.diag(weight.sum(axis=0)) - weight.T @ share)[np.ix_(present, present)]
        rhs = np.bincount(tier, weights=w * b, minlength=n_tier) - share.T @ rc
        g = np.zeros_like(schur)
        g[1:, 1:] = np.linalg.pinv(schur[1:, 1:], rcond=1e-10, hermitian=True)
        centre = np.eye(present.size) - 1.0 / present.size
        cov[np.ix_(present, present)] = centre @ g @ centre
        alpha[present] = cov[np.ix_(present, present)] @ rhs[present]
    return _AdditiveFit(m0 - share @ alpha, v, alpha, cov, share)


def _quadratic(x: FloatArray, a: FloatArray) -> FloatArray:
    """x_s' A x_s for each row x_s of ``x``."""
    return np.asarray(((x @ a) * x).sum(axis=1), dtype=np.float64)
