r"""The nowcast of every segment's demand and supply levels in the as-of week, and the
forecast of the next week: where the market's curves are anchored.

Rates are sticky and shocks persist, so a trailing average of past weeks lags the market,
while one week of a thin segment is mostly noise. The levels are therefore filtered: a
state-space model per segment, its parameters estimated from the panel, run for all
segments at once (vectorized over segments, one loop over weeks).

**Model.** For segment s, week t, with the observed log rate x_t, the curve's controls
w_t (its own shifters, the shared controls, the seasonal terms) and the fitted elasticities
ε, η and control coefficients γ_D, γ_S (from :mod:`pricing.estimation.curves`), the
levels net of the controls, ℓ^D_t and ℓ^S_t, are AR(1) around the fitted intercepts μ:

    ℓ^D_t = μ^D + u_t,   u_t = ρ_D u_{t−1} + ω^D_t,   ω^D_t ~ N(0, q_D)
    ℓ^S_t = μ^S + v_t,   v_t = ρ_S v_{t−1} + ω^S_t,   ω^S_t ~ N(0, q_S)

and three observations measure them:

    y^D_t = log QD_t − ε x_t − γ_D'w_t = ℓ^D_t + e^D_t,   e^D_t ~ N(0, h_D / n^D_t)
    y^S_t = log QS_t − η x_t − γ_S'w_t = ℓ^S_t + e^S_t,   e^S_t ~ N(0, h_S / n^S_t)
    y^R_t = x_t − (1 − λ) x_{t−1} − λ (γ_D'w_t − γ_S'w_t)/(η − ε)
          = λ (ℓ^D_t − ℓ^S_t)/(η − ε) + r_t,             r_t ~ N(0, σ²_R)

The first two say that a week's hours are the curve at that week's rate plus sampling
noise, whose variance falls with the number of observations behind the week's number
(n^D: jobs posted, n^S: freelancers offering hours), so a thin segment's weeks count for
less. The third is the sticky rate: each week the rate moves a share λ of the way from
last week's rate to where the segment's own curves cross (partial adjustment; λ = 1 is a
market that clears every week, λ → 0 one whose rate never moves), so the rate's moves
measure the imbalance of demand and supply. A week without a rate or hours on a side has
no observation there; the filter carries the levels through it.

**Estimation.** θ = (ρ_D, ρ_S, q_D, q_S, h_D, h_S, λ, σ²_R) is shared by the segments and
estimated by maximum likelihood (the prediction-error decomposition of the Kalman filter,
summed over segments; on at most :data:`FIT_SEGMENTS` segments, chosen evenly, when there
are more): first the levels' dynamics and noise from the hours alone, one side at a time,
then λ and σ²_R given them. How sticky a rate is differs between segments, so each
segment then gets its own λ_s, by empirical Bayes on a grid: with L_s(λ) the segment's
likelihood at λ (θ's other parameters held) and logit λ_s ~ N(c, τ²), c and τ maximize
Σ_s log ∫ L_s(λ) N(logit λ; c, τ²) dlogit λ, and λ_s is the posterior mean of logit λ_s
(a thin segment's few rate moves leave it near c, a thick one's set it).

The filter then gives every segment's levels in the as-of week T, their
covariance P_T (how sure the data are about them), and the forecast h weeks ahead (one
for a run, the week guidance is acted on; a backtest may ask for more)

    ℓ_{T+h} = μ + ρ^h (ℓ_T − μ),    P_{T+h} = diag(ρ^h) P_T diag(ρ^h) + diag(q Σ_{j<h} ρ^{2j}),

with the controls of week T+h (:mod:`pricing.estimation.levels`).

**Slope and level together.** A level is read through the fitted slope: were ε different
by dε, every y^D_t would shift by −x_t dε and the filtered level by −x̄_T dε, with x̄_T the
filter's weighted average of the rates it read (the filter is linear in its observations,
so x̄_T is the filter run on the rates). The log hours at the anchor rate a (the as-of
week's rate, the point the curves are turned around) therefore move with the slope by
g = log a − x̄_T, which is small where the anchor is where the data are. The market
carries, per side, the filter's standard error √P (``level_se``), the covariance of slope
and level g·se(ε)² (``slope_level_cov``), and the correlation of the two sides' levels
(``level_corr``: the rate measures their difference, so it can be large).

**Intercepts.** μ is itself estimated, from the segment's m_k weeks on side k, with
variance (σ²_k (1 + 2 Σ_{j<m_k} (1 − j/m_k) ρ_k^j) + h_k·mean(1/n))/m_k, σ²_k =
q_k/(1 − ρ_k²): the variance of the mean of an AR(1) level over its m_k weeks, read with
noise (exact for any m_k, so a level that barely moves, ρ_k → 1, is not given an
unbounded intercept variance). The level moves with μ_j by G_kj = δ_kj + ∂s_k/∂μ_j
(the same linearity: ∂s/∂μ is the filter run on the readings' derivatives), so P_T gains
G diag(Var μ̂) G' (and P_{T+1} the same with ρ ∂s/∂μ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: segments the parameters are estimated on, at most (evenly chosen): the likelihood's
#: value per segment settles long before, and the filter then runs on every segment
FIT_SEGMENTS = 400
#: counts below this are taken as this (a week with one job is noisy, not infinitely so)
MIN_COUNT = 1.0
#: logit λ_s values each segment's likelihood is read at (λ from 0.05 to 0.95)
ADJUSTMENT_GRID = np.linspace(-3.0, 3.0, 13)
# spreads of the prior on logit λ_s tried (its centre is tried on the grid; narrower than
# half the grid's step would not be resolved)
_PRIOR_SPREADS = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
_SIDES = ("demand", "supply")
# θ on unconstrained scales: logit for ρ and λ, log for the variances
_START = np.array([1.0, 1.0, math.log(0.01), math.log(0.01), 0.0, 0.0, 0.0, math.log(4e-4)])


@dataclass(frozen=True)
class Parameters:
    """θ of the module docstring, on their natural scales."""

    rho: tuple[float, float]  # demand, supply
    q: tuple[float, float]
    h: tuple[float, float]
    adjustment: float  # λ
    rate_noise: float  # σ²_R

    @classmethod
    def from_vector(cls, v: FloatArray) -> Parameters:
        logistic = expit(v)
        # a search may try a variance beyond the floats: inf, whose likelihood is not finite
        with np.errstate(over="ignore"):
            scale = np.exp(v)
        return cls(
            rho=(float(logistic[0]), float(logistic[1])),
            q=(float(scale[2]), float(scale[3])),
            h=(float(scale[4]), float(scale[5])),
            adjustment=float(logistic[6]),
            rate_noise=float(scale[7]),
        )


@dataclass(frozen=True)
class Series:
    """Every segment's weekly series, arranged (weeks, segments): the residual levels
    y^D, y^S (NaN where unobserved), the counts n^D, n^S, the log rate x, the rate
    observation's parts, and the fitted elasticities and intercepts."""

    y: FloatArray  # (T, S, 2): y^D, y^S
    count: FloatArray  # (T, S, 2): n^D, n^S
    x: FloatArray  # (T, S) log rate, NaN without hires
    control_gap: FloatArray  # (T, S) (γ_D'w_t − γ_S'w_t)/(η − ε)
    spread: FloatArray  # (S,) η − ε
    mu: FloatArray  # (S, 2) fitted intercepts μ^D, μ^S
    x_mean: FloatArray  # (S, 2) the mean log rate of the weeks each side was fitted on

    @cached_property
    def readings(self) -> _Readings:
        return _Readings.of(self)


@dataclass(frozen=True)
class Nowcast:
    """Levels net of the controls in the as-of week and ``ahead`` weeks later, per segment
    and side, with their covariances; ``slope_gain`` is g of the module docstring."""

    level: FloatArray  # (S, 2) ℓ_T
    cov: FloatArray  # (S, 2, 2) P_T
    level_next: FloatArray  # (S, 2) ℓ_{T+h}
    cov_next: FloatArray  # (S, 2, 2) P_{T+h}
    slope_gain: FloatArray  # (S, 2): d(log hours at the anchor)/d(elasticity)
    parameters: Parameters
    log_likelihood: float


def fit_nowcast(series: Series, ahead: int = 1) -> Nowcast:
    """Estimate θ by maximum likelihood, filter every segment and forecast its levels
    ``ahead`` weeks after the as-of week (module docstring)."""
    n = series.y.shape[1]
    usable = np.isfinite(series.mu).all(axis=1) & np.isfinite(series.spread)
    fit = np.flatnonzero(usable)
    if fit.size == 0:  # no segment has both curves: nothing to filter
        empty = np.full((n, 2), np.nan)
        covariance = np.full((n, 2, 2), np.nan)
        return Nowcast(
            empty, covariance, empty, covariance, empty, Parameters.from_vector(_START), np.nan
        )
    if fit.size > FIT_SEGMENTS:
        fit = fit[np.linspace(0, fit.size - 1, FIT_SEGMENTS).astype(np.int64)]
    sample = _subset(series, fit)

    # two stages: the levels' own dynamics and noise from the hours alone (the rate's
    # equation, read through the curves' own crossing, would otherwise bend them to fit
    # its misfit where freelancers move between segments), then the rate's adjustment
    # given them
    without_rate = _moments(sample)
    without_rate[6:] = [_START[6], math.inf]
    for side in range(2):
        free = np.array([side, 2 + side, 4 + side])
        without_rate[free] = _fit_side(sample, side, without_rate[free])
    second = _maximize(sample, np.r_[without_rate[:6], _START[6:]], np.array([6, 7]))
    parameters = Parameters.from_vector(second.x)
    rows = np.flatnonzero(usable)
    everyone = _subset(series, rows)
    adjustment = _adjustments(everyone, parameters)
    out = _filter(everyone, parameters, slope=True, adjustment=adjustment)
    level, cov, level_next, cov_next = _forecast(out, everyone, parameters, ahead)

    def scatter(values: FloatArray) -> FloatArray:
        full = np.full((n, *values.shape[1:]), np.nan)
        full[rows] = values
        return full

    return Nowcast(
        level=scatter(level),
        cov=scatter(cov),
        level_next=scatter(level_next),
        cov_next=scatter(cov_next),
        slope_gain=scatter(out.slope_gain),
        parameters=parameters,
        log_likelihood=float(-second.fun) * rows.size / max(fit.size, 1),
    )


def _adjustments(series: Series, theta: Parameters) -> FloatArray:
    """Each segment's λ_s: the posterior mean of logit λ_s on a grid (module docstring),
    under the normal prior whose centre and spread maximize the segments' marginal
    likelihood."""
    n = series.y.shape[1]
    loglik = np.stack(
        [
            _filter(series, theta, adjustment=np.full(n, lam)).log_likelihood
            for lam in 1.0 / (1.0 + np.exp(-ADJUSTMENT_GRID))
        ]
    )  # (grid, S)
    centres, spreads = np.meshgrid(ADJUSTMENT_GRID, _PRIOR_SPREADS, indexing="ij")
    log_prior = -0.5 * ((ADJUSTMENT_GRID - centres[..., None]) / spreads[..., None]) ** 2
    log_prior -= logsumexp(log_prior, axis=-1, keepdims=True)  # (centre, spread, grid)
    joint = log_prior[..., None] + loglik  # (centre, spread, grid, S)
    marginal = logsumexp(joint, axis=2).sum(axis=-1)
    best = np.unravel_index(int(np.argmax(marginal)), marginal.shape)
    posterior = np.exp(joint[best] - logsumexp(joint[best], axis=0))
    logit = (ADJUSTMENT_GRID[:, None] * posterior).sum(axis=0)
    out: FloatArray = 1.0 / (1.0 + np.exp(-logit))
    return out


def _moments(series: Series) -> FloatArray:
    """θ's level parameters by the method of moments, where the likelihood's search starts:
    with r_t the level residuals about each segment's mean, pooled over segments,
    γ_k = E[r_t r_{t−k}] gives ρ = γ₂/γ₁, Var(s) = γ₁/ρ, q = Var(s)(1 − ρ²) and
    h = (γ₀ − Var(s)) / E[1/n_t]."""
    v = _START.copy()
    for side in range(2):
        y = series.y[:, :, side]
        r = y - _nanmean(y)
        seen = np.isfinite(r)
        if not seen.any():  # no segment has a reading on this side: the search starts as set
            continue
        r0 = np.where(seen, r, 0.0)
        lags = [
            float(
                np.sum(r0[k:] * r0[: r.shape[0] - k])
                / max(np.sum(seen[k:] & seen[: -k or None]), 1)
            )
            for k in range(3)
        ]
        rho = float(np.clip(lags[2] / lags[1], 0.05, 0.95)) if lags[1] > 0 else 0.5
        var_state = max(lags[1] / rho, 1e-6) if lags[1] > 0 else max(lags[0] / 2, 1e-6)
        inverse = float(np.mean(1.0 / np.maximum(series.count[:, :, side][seen], MIN_COUNT)))
        h = max((lags[0] - var_state) / inverse, 1e-6)
        v[side] = math.log(rho / (1 - rho))
        v[2 + side] = math.log(var_state * (1 - rho**2))
        v[4 + side] = math.log(h)
    return v


def _fit_side(series: Series, side: int, start: FloatArray) -> FloatArray:
    """ρ, q and h of one side (logit, log, log) by maximum likelihood without the rate's
    equation, when the sides' filters are independent: a scalar filter per segment."""
    y = series.y[:, :, side] - series.mu[:, side]
    seen = np.isfinite(y)
    y = np.where(seen, y, 0.0)
    inverse = 1.0 / np.maximum(series.count[:, :, side], MIN_COUNT)

    def loss(v: FloatArray) -> float:
        rho, q, h = 1.0 / (1.0 + math.exp(-v[0])), math.exp(v[1]), math.exp(v[2])
        state, var = np.zeros(y.shape[1]), np.full(y.shape[1], q / (1 - rho**2))
        total = 0.0
        with np.errstate(all="ignore"):  # variances that underflow: the loss is not finite
            for t in range(y.shape[0]):
                if t:
                    state, var = rho * state, rho * rho * var + q
                s = var + np.where(seen[t], h * inverse[t], 1.0)
                innovation = y[t] - state
                gain = np.where(seen[t], var / s, 0.0)
                state, var = state + gain * innovation, var - gain * var
                total += float(np.sum(np.where(seen[t], np.log(s) + innovation**2 / s, 0.0)))
        return 0.5 * total if math.isfinite(total) else 1e300

    best = minimize(
        loss, start, method="Nelder-Mead", options={"maxiter": 1000, "xatol": 1e-2, "fatol": 0.5}
    )
    out: FloatArray = best.x
    return out


@dataclass(frozen=True)
class _Optimum:
    x: FloatArray
    fun: float


def _maximize(sample: Series, start: FloatArray, free: npt.NDArray[np.int64]) -> _Optimum:
    """The likelihood's maximum over the parameters ``free`` of θ, the others held."""

    def loss(v: FloatArray) -> float:
        full = start.copy()
        full[free] = v
        value = -float(_filter(sample, Parameters.from_vector(full)).log_likelihood.sum())
        return value if np.isfinite(value) else 1e300

    # the likelihood is a sum over weeks and segments: half a unit of it is far below
    # what the data can tell apart, and θ on its log/logit scales to 1e-2 is plenty
    best = minimize(
        loss,
        start[free],
        method="Nelder-Mead",
        options={"maxiter": 2000, "xatol": 1e-2, "fatol": 0.5},
    )
    full = start.copy()
    full[free] = best.x
    return _Optimum(full, float(best.fun))


def _subset(series: Series, rows: npt.NDArray[np.int64]) -> Series:
    return Series(
        series.y[:, rows],
        series.count[:, rows],
        series.x[:, rows],
        series.control_gap[:, rows],
        series.spread[rows],
        series.mu[rows],
        series.x_mean[rows],
    )


@dataclass(frozen=True)
class _Filtered:
    """The filter's state s_T (deviations from μ) and covariance P_T, how the state moves
    with the intercepts (∂s_k/∂μ_j, (S, 2, 2); zero without ``slope``), g, and each
    segment's log likelihood."""

    state: FloatArray
    cov: FloatArray
    intercept_images: FloatArray
    slope_gain: FloatArray
    log_likelihood: FloatArray


@dataclass(frozen=True)
class _Readings:
    """A series' observations as the filter reads them, computed once: per side the
    readings net of the intercepts (0 where unseen), whether seen, 1/n, and their
    derivative with respect to the side's elasticity; the rate's reading as a + λ b
    (module docstring) and whether seen. All (weeks, segments)."""

    y: tuple[FloatArray, FloatArray]
    seen: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]
    inverse: tuple[FloatArray, FloatArray]
    slope: tuple[FloatArray, FloatArray]
    rate_a: FloatArray
    rate_b: FloatArray
    rate_seen: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, series: Series) -> _Readings:
        x = series.x
        ys, seens, inverses, slopes = [], [], [], []
        for side in range(2):
            raw = series.y[:, :, side] - series.mu[:, side]
            seen = np.isfinite(raw)
            ys.append(np.where(seen, raw, 0.0))
            seens.append(seen)
            inverses.append(1.0 / np.maximum(series.count[:, :, side], MIN_COUNT))
            # the intercept moves with the slope too: μ = ȳ − ε x̄ on its weeks
            slopes.append(np.where(seen, series.x_mean[:, side] - x, 0.0))
        previous = np.vstack([np.full((1, x.shape[1]), np.nan), x[:-1]])
        # x_t − (1 − λ) x_{t−1} − λ gap_t − λ (μ_D − μ_S)/(η − ε) = a + λ b
        a = x - previous
        b = previous - series.control_gap - (series.mu[:, 0] - series.mu[:, 1]) / series.spread
        rate_seen = np.isfinite(a) & np.isfinite(b)
        return cls(
            (ys[0], ys[1]),
            (seens[0], seens[1]),
            (inverses[0], inverses[1]),
            (slopes[0], slopes[1]),
            np.where(rate_seen, a, 0.0),
            np.where(rate_seen, b, 0.0),
            rate_seen,
        )


def _filter(
    series: Series, theta: Parameters, slope: bool = False, adjustment: FloatArray | None = None
) -> _Filtered:
    """The Kalman filter of the module docstring over every segment at once.

    The state is the deviation s_t = (u_t, v_t) from the intercepts, starting at its
    stationary distribution; its covariance is kept as its three entries (every step is
    elementwise over segments). Each week is updated one observation at a time (their
    noises are independent). With ``slope`` the same gains also filter the rates (the
    linearity of the filter, module docstring) to give g."""
    r = series.readings
    weeks, n = series.x.shape
    (r0, r1), (q0, q1) = theta.rho, theta.q
    lam = theta.adjustment if adjustment is None else adjustment
    s0, s1 = np.zeros(n), np.zeros(n)
    p00, p01, p11 = np.full(n, q0 / (1 - r0**2)), np.zeros(n), np.full(n, q1 / (1 - r1**2))
    # d[k][b] = d s_k / d (ε, η, μ^D, μ^S)[b]: the readings' images under the same gains
    d = [[np.zeros(n) for _ in range(4)] for _ in range(2)]
    with_rate = math.isfinite(theta.rate_noise)
    h0, h1 = lam / series.spread, -lam / series.spread
    loglik = np.zeros(n)
    for t in range(weeks):
        if t:
            s0, s1 = r0 * s0, r1 * s1
            d = [[r0 * v for v in d[0]], [r1 * v for v in d[1]]]
            p00, p01, p11 = r0 * r0 * p00 + q0, r0 * r1 * p01, r1 * r1 * p11 + q1
        for side in range(2):  # the hours: design rows (1, 0) and (0, 1)
            seen = r.seen[side][t]
            var = (p00 if side == 0 else p11) + np.where(
                seen, theta.h[side] * r.inverse[side][t], 1
            )
            innovation = r.y[side][t] - (s0 if side == 0 else s1)
            ph0, ph1 = (p00, p01) if side == 0 else (p01, p11)
            k0, k1 = np.where(seen, ph0 / var, 0.0), np.where(seen, ph1 / var, 0.0)
            s0, s1 = s0 + k0 * innovation, s1 + k1 * innovation
            if slope:
                d = _carry(d, k0, k1, side, r.slope[side][t])
            p00, p01, p11 = p00 - k0 * ph0, p01 - k0 * ph1, p11 - k1 * ph1
            loglik += _loglik(seen, var, innovation)
        if with_rate and t:
            seen = r.rate_seen[t]
            ph0, ph1 = p00 * h0 + p01 * h1, p01 * h0 + p11 * h1
            var = h0 * ph0 + h1 * ph1 + np.where(seen, theta.rate_noise, 1.0)
            innovation = r.rate_a[t] + lam * r.rate_b[t] - h0 * s0 - h1 * s1
            k0, k1 = np.where(seen, ph0 / var, 0.0), np.where(seen, ph1 / var, 0.0)
            s0, s1 = s0 + k0 * innovation, s1 + k1 * innovation
            if slope:
                # the reading holds −λ(μ^D − μ^S)/(η − ε) = −h0 μ^D − h1 μ^S
                for b, own in ((0, 0.0), (1, 0.0), (2, -h0), (3, -h1)):
                    dv = own - (h0 * d[0][b] + h1 * d[1][b])
                    d[0][b], d[1][b] = d[0][b] + k0 * dv, d[1][b] + k1 * dv
            p00, p01, p11 = p00 - k0 * ph0, p01 - k0 * ph1, p11 - k1 * ph1
            loglik += _loglik(seen, var, innovation)
    state = np.stack([s0, s1], axis=1)
    cov = np.stack([np.stack([p00, p01], axis=1), np.stack([p01, p11], axis=1)], axis=1)
    images = np.moveaxis(np.array([[d[k][2 + j] for j in range(2)] for k in range(2)]), -1, 0)
    gain = _last(series.x)[:, None] - series.x_mean + np.stack([d[0][0], d[1][1]], axis=1)
    return _Filtered(state, cov, images, gain, loglik)


def _forecast(
    out: _Filtered, series: Series, theta: Parameters, ahead: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The levels and their covariances in the as-of week and h = ``ahead`` weeks on:
    ℓ_{T+h} = μ + ρ^h s_T, P_{T+h} = ρ^h P_T ρ^h + diag(q Σ_{j<h} ρ^{2j}); each with the
    intercepts' variance carried by G = I + ρ^h ∂s/∂μ (module docstring)."""
    rho, q = np.array(theta.rho), np.array(theta.q)
    decay = rho**ahead
    cov = out.cov.copy()
    cov_next = decay[None, :, None] * out.cov * decay[None, None, :] + np.diag(
        q * sum(rho ** (2 * j) for j in range(ahead))
    )
    spread = _intercept_variance(series.readings, theta)
    for target, factor in ((cov, np.ones(2)), (cov_next, decay)):
        g = np.eye(2) + factor[None, :, None] * out.intercept_images
        target += np.einsum("sij,sj,skj->sik", g, spread, g)
    return series.mu + out.state, cov, series.mu + decay * out.state, cov_next


def _intercept_variance(readings: _Readings, theta: Parameters) -> FloatArray:
    """Var(μ̂) per segment and side (S, 2): a mean of m weekly readings whose levels are
    AR(1) (stationary variance σ² = q/(1 − ρ²)) read with noise h/n (module docstring)."""
    out = np.empty((readings.y[0].shape[1], 2))
    for side in range(2):
        seen = readings.seen[side]
        m = np.maximum(seen.sum(axis=0), 1)
        noise = theta.h[side] * np.where(seen, readings.inverse[side], 0.0).sum(axis=0) / m
        rho, q = theta.rho[side], theta.q[side]
        out[:, side] = q / (1 - rho**2) * _ar1_mean_factor(rho, m) + noise / m
    return out


def _ar1_mean_factor(rho: float, m: IntArray) -> FloatArray:
    """Var(mean of m consecutive AR(1) values) / σ² = (1 + 2 Σ_{k<m} (1 − k/m) ρ^k) / m,
    exact for every m (the long-run form (1 + ρ)/((1 − ρ) m) is its limit for m ≫ 1/(1 − ρ)
    and is unbounded as ρ → 1, where the exact factor tends to 1)."""
    k = np.arange(1, int(m.max()))
    power = rho**k
    below = np.concatenate([[0.0], np.cumsum(power)])  # Σ_{k<m} ρ^k, indexed by m − 1
    weighted = np.concatenate([[0.0], np.cumsum(k * power)])  # Σ_{k<m} k ρ^k
    out: FloatArray = (1 + 2 * (below[m - 1] - weighted[m - 1] / m)) / m
    return out


def _carry(
    d: list[list[FloatArray]], k0: FloatArray, k1: FloatArray, side: int, slope: FloatArray
) -> list[list[FloatArray]]:
    """The images after side ``side``'s hours reading (design row e_side), whose
    derivative is ``slope`` with respect to that side's elasticity, −1 with respect to its
    intercept and 0 otherwise."""
    out = [list(d[0]), list(d[1])]
    for b in range(4):
        own = slope if b == side else (-1.0 if b == 2 + side else 0.0)
        dv = own - d[side][b]
        out[0][b], out[1][b] = d[0][b] + k0 * dv, d[1][b] + k1 * dv
    return out


def _loglik(seen: npt.NDArray[np.bool_], var: FloatArray, innovation: FloatArray) -> FloatArray:
    """Each segment's Gaussian log likelihood of its seen readings."""
    terms = np.log(2 * np.pi * var) + innovation**2 / var
    out: FloatArray = -0.5 * np.where(seen, terms, 0.0)
    return out


def _last(x: FloatArray) -> FloatArray:
    """Each segment's last observed value of ``x`` (NaN if none)."""
    seen = np.isfinite(x)
    last = np.where(seen.any(axis=0), x.shape[0] - 1 - np.argmax(seen[::-1], axis=0), 0)
    out: FloatArray = np.where(seen.any(axis=0), x[last, np.arange(x.shape[1])], np.nan)
    return out


def arrange(
    panel: pd.DataFrame,
    keys: list[str],
    fits: dict[str, pd.DataFrame],
    controls: dict[str, list[str]],
) -> tuple[pd.DataFrame, Series]:
    """The panel's series arranged (weeks, segments) for :func:`fit_nowcast`, with the
    segments in the order of ``fits`` (per side: the keys, the elasticity used, and a
    ``coef_`` column per intercept and control). Returns the segments and the series."""
    segments = fits["demand"][keys].reset_index(drop=True)
    weeks = np.sort(panel["week"].unique())
    code = segments.assign(_s=np.arange(len(segments)))
    rows = panel.merge(code, on=keys, how="inner")
    t = np.searchsorted(weeks, rows["week"].to_numpy())
    s = rows["_s"].to_numpy()
    shape = (len(weeks), len(segments))

    def grid(values: npt.ArrayLike) -> FloatArray:
        out = np.full(shape, np.nan)
        out[t, s] = np.asarray(values, np.float64)
        return out

    x = np.log(grid(rows["rate"]))
    y = np.empty((*shape, 2))
    mu = np.empty((len(segments), 2))
    x_mean = np.empty((len(segments), 2))
    level_controls = {}
    for i, side in enumerate(_SIDES):
        fit = fits[side]
        eps = fit["elasticity"].to_numpy(np.float64)
        hours = grid(rows["hours_demanded" if side == "demand" else "hours_supplied"])
        fitted = np.zeros(shape)
        for name in controls[side]:
            fitted += fit[f"coef_{name}"].to_numpy(np.float64) * grid(rows[name])
        level_controls[side] = fitted
        with np.errstate(divide="ignore"):
            y[:, :, i] = np.where(hours > 0, np.log(hours), np.nan) - eps * x - fitted
        x_mean[:, i] = _nanmean(np.where(np.isfinite(y[:, :, i]), x, np.nan))
        # the intercept was fitted with the raw slope: through the same point (the mean
        # rate) under the slope used
        raw = fit["elasticity_raw"].to_numpy(np.float64) if "elasticity_raw" in fit else eps
        mu[:, i] = fit["coef_intercept"].to_numpy(np.float64) + (raw - eps) * x_mean[:, i]
    spread = (fits["supply"]["elasticity"] - fits["demand"]["elasticity"]).to_numpy(np.float64)
    count = np.stack([grid(rows["jobs_posted"]), grid(rows["active_freelancers"])], axis=2)
    gap = (level_controls["demand"] - level_controls["supply"]) / spread
    return segments, Series(y, count, x, gap, spread, mu, x_mean)


def _nanmean(values: FloatArray) -> FloatArray:
    """The mean over weeks of each segment's finite values (NaN if none)."""
    seen = np.isfinite(values)
    total = np.where(seen, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = total / seen.sum(axis=0)
    return out
