r"""Constant-elasticity curves by OLS or 2SLS, fitted for many groups at once.

For each group g (the rows sharing the values of ``by``) with n_g rows:

    log q_t = w_t'γ + ε log p_t + u_t              (t = 1..n_g)

where w_t holds an intercept and the ``controls`` (or, with ``fixed_effects``, the
controls after removing group×level means, which absorbs the intercept and one dummy per
level), and ε is the elasticity. With X = [W, log p] (k columns) and, when instruments are
given, Z = [W, instruments] (k_z ≥ k columns):

    OLS:   β̂ = (X'X)⁻¹ X'y                         X̂ = X
    2SLS:  X̂ = P_Z X,  P_Z = Z(Z'Z)⁻¹Z',  β̂ = (X̂'X̂)⁻¹ X̂'y
    residuals û = y − Xβ̂ (with the observed X, not X̂)

Covariance of β̂ (A = X̂'X̂; k counts absorbed fixed-effect levels too):

    "unadjusted":  σ̂² A⁻¹,  σ̂² = û'û / n                       (Stata/linearmodels default)
    "HC1":         n/(n−k) · A⁻¹ (Σ_t û_t² x̂_t x̂_t') A⁻¹        ("robust" with df correction)
    "cluster":     G_c/(G_c−1)·(n−1)/(n−k) · A⁻¹ (Σ_c s_c s_c') A⁻¹,  s_c = Σ_{t∈c} x̂_t û_t
    "HAC":         n/(n−k) · A⁻¹ (Γ_0 + Σ_{j=1..L} (1 − j/(L+1)) (Γ_j + Γ_j')) A⁻¹,
                   Γ_j = Σ_t s_t s_{t−j}',  s_t = x̂_t û_t            (Newey–West, Bartlett)

    "EWC":         A⁻¹ ((2/B) Σ_{j=1..B} c_j c_j') A⁻¹,  c_j = Σ_t cos(π j (t − ½)/n) s_t
                   (equal-weighted cosine; intervals and tests use Student t with B d.f.)

HAC and EWC take each group's rows, in the frame's order, as consecutive periods. The
HAC bandwidth L is ``bandwidth`` or ⌈4 (n/100)^(2/9)⌉ per group (the usual plug-in rule).
EWC's B is ``bandwidth`` or round(0.4 n^(2/3)) (Lazarus, Lewis, Stock and Watson 2018):
with persistent weekly shocks and shifters, Newey–West intervals with the plug-in
bandwidth under-cover badly at n ≈ 100, and EWC with t critical values is their
recommended remedy.

Intervals are β̂ ± c se (column ``dof`` says which c, as linearmodels does with
``debiased`` for the covariances corrected by n/(n−k)):

    "unadjusted"              c = z_{1−α/2}, the normal quantile (dof NaN)
    "HC1", "cluster", "HAC"   c = t_{1−α/2}(n − k), Student t on the residual d.f.
    "EWC"                     c = t_{1−α/2}(B)

The first-stage F tests the excluded instruments in the regression of log p on Z, with the
same kind of covariance: F = π̂_I' V̂_I⁻¹ π̂_I / q, V̂ the df-corrected estimate (for
"unadjusted" this is the classic (RSS_r − RSS_u)/q ÷ RSS_u/(n − k_z)). F < 10 flags a weak
instrument (Staiger and Stock's rule of thumb). F is NaN, and the group flagged
``weak_instrument``, when V̂_I is not positive definite (its smallest eigenvalue at most
10⁻¹² of its largest, e.g. fewer clusters than instruments): the instruments' strength
cannot be measured then, and a Wald statistic on a singular covariance is noise (it came
out as 8·10²⁷, or negative).

A group cannot be estimated (and fails with its reason) when it has no more rows than
parameters (n ≤ max(k, k_z): no residual degree of freedom, so no variance — a perfect
fit reported a standard error of 10⁻¹⁶), fewer than two clusters (a single cluster's
score sums to zero), or a row with a quantity or price that is missing, infinite or not
positive, or a missing instrument, control, fixed-effect level or cluster id (a missing
level is not a level of its own).

All groups are solved together: rows are laid out in a padded (G, T, ·) array whose
padding rows are zero (they add nothing to any cross-product), and every step is a
batched QR, solve or einsum. No regression library runs per group; linearmodels is the
test oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.display import Display, table
from pricing.errors import EstimationError

Cov = Literal["HC1", "unadjusted", "cluster", "HAC", "EWC"]
Array = npt.NDArray[np.float64]

WEAK_INSTRUMENT_F = 10.0
#: prefix of the columns holding the coefficients of the included exogenous regressors
#: (``coef_intercept`` unless fixed effects absorb it, then one per control)
COEF = "coef_"
# |r_ii| below this fraction of the largest |r_jj| of a QR factor counts as rank deficient
_RANK_TOL = 1e-10
# a covariance whose smallest eigenvalue is at most this fraction of its largest is not
# positive definite (rounding of a singular one lands on either side of zero)
_DEFINITE_TOL = 1e-12


@dataclass(frozen=True)
class CurveFit(Display):
    """Fitted elasticities, one row per group; see :func:`estimate_curve`."""

    frame: pd.DataFrame
    by: tuple[str, ...]
    method: str
    cov: str
    level: float

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    @property
    def params(self) -> pd.Series:
        """Elasticity per group (indexed by ``by``)."""
        return self._indexed("elasticity")

    @property
    def std_errors(self) -> pd.Series:
        return self._indexed("std_error")

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Intervals at ``level`` (default: the fit's level)."""
        est, se = self._indexed("elasticity"), self._indexed("std_error")
        c = critical_value(level or self.level, self._indexed("dof").to_numpy())
        return pd.DataFrame({"lower": est - c * se, "upper": est + c * se})

    def _indexed(self, column: str) -> pd.Series:
        frame = self.frame.set_index(list(self.by)) if self.by else self.frame
        return frame[column]

    def summary(self, max_rows: int = 20) -> str:
        f = self.frame
        ok = f["elasticity"].notna()
        head = (
            f"{self.method} elasticities for {len(f):,} group(s), {self.cov} covariance, "
            f"{self.level:.0%} intervals; {int((~ok).sum())} failed, "
            f"{int((f['flags'] != '').sum())} flagged"
        )
        if ok.any():
            e = f.loc[ok, "elasticity"]
            head += (
                f"\n  elasticity median {e.median():.3f}, "
                f"IQR {e.quantile(0.25):.3f} .. {e.quantile(0.75):.3f}"
            )
        if not max_rows:
            return head
        return head + "\n" + table(f.head(max_rows), "{:.4g}")


def estimate_curve(
    frame: pd.DataFrame,
    quantity: str,
    price: str,
    instruments: Sequence[str] = (),
    controls: Sequence[str] = (),
    by: Sequence[str] | None = None,
    fixed_effects: str | None = None,
    cov: Cov = "HC1",
    clusters: str | None = None,
    bandwidth: int | None = None,
    level: float = 0.95,
    on_error: Literal["raise", "flag"] = "raise",
) -> CurveFit:
    """Elasticity of ``quantity`` with respect to ``price`` in every group of ``by``.

    Quantity and price are levels (logs are taken here); instruments and controls enter as
    given; an intercept is always included (absorbed by ``fixed_effects``: a column whose
    levels get their own intercept within each group). ``cov="cluster"`` needs
    ``clusters``, a column of cluster ids (clusters nest in groups); ``cov="HAC"`` and
    ``cov="EWC"`` read each group's rows in frame order as consecutive periods (sort by
    time first), with ``bandwidth`` their lag truncation or number of cosine terms.

    A group that cannot be estimated (too few rows, collinear regressors or instruments, a
    non-positive quantity or price, a missing value) raises :class:`EstimationError`
    naming the group and the reason; with ``on_error="flag"`` it gets NaN estimates and the
    reason in ``flags`` instead, and the other groups are estimated as usual.
    """
    spec = _Spec(
        quantity, price, tuple(instruments), tuple(controls), tuple(by or ()),
        fixed_effects, cov, clusters, bandwidth, level, on_error,
    )  # fmt: skip
    spec.check(frame)
    layout = _Layout.build(frame, spec.by)
    reasons = layout.row_problems(frame, spec)
    d = _design(frame, spec, layout, reasons)
    Qz, Rz = np.linalg.qr(d.Z)
    Xhat = Qz @ np.einsum("gtk,gtl->gkl", Qz, d.X) if spec.instruments else d.X
    Qx, Rx = np.linalg.qr(Xhat)
    _fail(
        reasons,
        ~(_full_rank(Rx) & _full_rank(Rz)),
        lambda g: "rank_deficient: regressors or instruments are collinear",
    )
    ok = reasons == ""
    if on_error == "raise" and not ok.all():
        g = int(np.flatnonzero(~ok)[0])
        raise EstimationError(
            f"group {layout.label(g)}: {reasons[g]} ({int((~ok).sum())} of {layout.groups} "
            "group(s) fail; on_error='flag' estimates the others and flags these)"
        )
    Rx = np.where(ok[:, None, None], Rx, np.eye(d.X.shape[2]))
    Rz = np.where(ok[:, None, None], Rz, np.eye(d.Z.shape[2]))

    beta = np.linalg.solve(Rx, np.einsum("gtk,gt->gk", Qx, d.Y)[..., None])[..., 0]
    resid = (d.Y - np.einsum("gtk,gk->gt", d.X, beta)) * layout.mask
    dependence = _dependence(frame, spec, layout, d.n)
    V = _covariance(cov, _inverse_gram(Rx), Xhat, resid, d.n, d.k, dependence, False)
    first_stage_f = np.full(layout.groups, np.nan)
    if spec.instruments:
        first_stage_f = _first_stage_f(spec, d, Qz, Rz, ok, dependence, layout.mask)
    dof = _interval_dof(cov, d, dependence)
    std_error = np.sqrt(np.maximum(V[:, -1, -1], 0.0))
    fit = _fit(spec, layout, beta[:, -1], std_error, first_stage_f, dof, ok, reasons)
    included = ([] if fixed_effects is not None else ["intercept"]) + list(spec.controls)
    for j, name in enumerate(included):
        fit.frame[f"{COEF}{name}"] = np.where(ok, beta[:, j], np.nan)
    return fit


@dataclass(frozen=True)
class _Spec:
    """What :func:`estimate_curve` was asked for."""

    quantity: str
    price: str
    instruments: tuple[str, ...]
    controls: tuple[str, ...]
    by: tuple[str, ...]
    fixed_effects: str | None
    cov: str
    clusters: str | None
    bandwidth: int | None
    level: float
    on_error: str

    def check(self, frame: pd.DataFrame) -> None:
        """A :class:`ValueError` naming a bad setting or a column ``frame`` lacks."""
        cov = self.cov
        if cov not in ("HC1", "unadjusted", "cluster", "HAC", "EWC"):
            raise ValueError(
                f"cov must be 'HC1', 'unadjusted', 'cluster', 'HAC' or 'EWC', got {cov!r}"
            )
        if (cov == "cluster") != (self.clusters is not None):
            raise ValueError(
                "cov='cluster' needs clusters=<column>, and clusters needs cov='cluster'"
            )
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")
        if self.on_error not in ("raise", "flag"):
            raise ValueError(f"on_error must be 'raise' or 'flag', got {self.on_error!r}")
        needed = [
            *self.by, self.quantity, self.price, *self.instruments, *self.controls,
            self.fixed_effects, self.clusters,
        ]  # fmt: skip
        missing = [c for c in dict.fromkeys(needed) if c is not None and c not in frame.columns]
        if missing:
            raise ValueError(f"columns not in the frame: {missing} (it has {list(frame.columns)})")
        overlap = set(self.instruments) & set(self.controls)
        if overlap:
            raise ValueError(f"a column cannot be both instrument and control: {sorted(overlap)}")


@dataclass(frozen=True)
class _Design:
    """The padded (groups, T, ·) arrays of the regression: X = [W, log p], Z = [W, excluded
    instruments], Y = log q, P = log p, with n rows and k (kz) parameters per group."""

    X: Array
    Z: Array
    Y: Array
    P: Array
    n: Array
    k: npt.NDArray[np.int64]
    kz: npt.NDArray[np.int64]


def _design(
    frame: pd.DataFrame, spec: _Spec, layout: _Layout, reasons: npt.NDArray[np.object_]
) -> _Design:
    """The logs, the intercept (or the fixed effects demeaned out) and the padding; a group
    with no more rows than parameters is failed in ``reasons`` and zeroed, so that the
    batched algebra stays finite (its results are NaN)."""
    y = np.log(frame[spec.quantity].where(frame[spec.quantity] > 0).to_numpy(np.float64))
    logp = np.log(frame[spec.price].where(frame[spec.price] > 0).to_numpy(np.float64))
    exog = [frame[c].to_numpy(np.float64) for c in spec.controls]
    excluded = [frame[c].to_numpy(np.float64) for c in spec.instruments]
    if spec.fixed_effects is None:
        exog.insert(0, np.ones(len(frame)))
        absorbed = np.zeros(layout.groups, dtype=np.int64)
    else:
        codes = layout.cell_codes(frame[spec.fixed_effects])
        y, logp = _demean(y, codes), _demean(logp, codes)
        exog = [_demean(c, codes) for c in exog]
        excluded = [_demean(c, codes) for c in excluded]
        absorbed = layout.cells_per_group(codes)
    W = layout.pad(exog)
    X = np.concatenate([W, layout.pad([logp])], axis=2)
    Z = np.concatenate([W, layout.pad(excluded)], axis=2)
    Y = layout.pad([y])[:, :, 0]
    P = X[:, :, -1]
    n = layout.counts.astype(np.float64)
    k = X.shape[2] + absorbed
    kz = Z.shape[2] + absorbed
    most = np.maximum(k, kz)
    _fail(
        reasons,
        n <= most,
        lambda g: (
            f"too_few_observations: {n[g]:.0f} rows, {most[g]} parameters (a residual "
            "variance needs more rows than parameters)"
        ),
    )
    if spec.clusters is not None:
        clusters = layout.cells_per_group(layout.cell_codes(frame[spec.clusters]))
        _fail(
            reasons,
            clusters < 2,
            lambda g: f"too_few_clusters: {clusters[g]} (a clustered variance needs two or more)",
        )
    for arr in (X, Z, Y, P):
        arr[reasons != ""] = 0.0
    return _Design(X, Z, Y, P, n, k, kz)


def _dependence(frame: pd.DataFrame, spec: _Spec, layout: _Layout, n: Array) -> _Dependence:
    """Clusters, HAC lags and EWC terms per group (``bandwidth`` or the rules of thumb
    ⌈4(n/100)^(2/9)⌉ and round(0.4 n^(2/3))), at most n − 1: a group has no longer lag
    and no more cosine terms than that."""
    cluster_ids = layout.cluster_ids(frame[spec.clusters]) if spec.clusters is not None else None
    if spec.bandwidth is not None:
        lags = terms = np.full(layout.groups, spec.bandwidth, dtype=np.int64)
    else:
        lags = np.ceil(4 * (n / 100) ** (2 / 9)).astype(np.int64)
        terms = np.maximum(np.round(0.4 * n ** (2 / 3)), 1).astype(np.int64)
    most = np.maximum(n.astype(np.int64) - 1, 1)
    return _Dependence(cluster_ids, np.minimum(lags, most), np.minimum(terms, most), layout.mask)


def _interval_dof(cov: str, d: _Design, dependence: _Dependence) -> Array:
    """Degrees of freedom of each group's interval (module docstring): NaN (normal) for
    "unadjusted", B for EWC, n − k for the covariances corrected by n/(n − k)."""
    if cov == "unadjusted":
        return np.full(len(d.n), np.nan)
    if cov == "EWC":
        return dependence.ewc_terms.astype(np.float64)
    return np.maximum(d.n - d.k, 1.0)


def _first_stage_f(
    spec: _Spec,
    d: _Design,
    Qz: Array,
    Rz: Array,
    ok: npt.NDArray[np.bool_],
    dependence: _Dependence,
    mask: Array,
) -> Array:
    """The Wald statistic of the excluded instruments in the first stage, divided by their
    number, with the same kind of covariance."""
    pi = np.linalg.solve(Rz, np.einsum("gtk,gt->gk", Qz, d.P)[..., None])[..., 0]
    e = (d.P - np.einsum("gtk,gk->gt", d.Z, pi)) * mask
    Vz = _covariance(spec.cov, _inverse_gram(Rz), d.Z, e, d.n, d.kz, dependence, True)
    q = len(spec.instruments)
    pi_i, V_i = pi[:, -q:], Vz[:, -q:, -q:]
    eigen = np.linalg.eigvalsh(np.where(ok[:, None, None], V_i, np.eye(q)))
    definite = eigen[:, 0] > _DEFINITE_TOL * np.abs(eigen[:, -1])
    V_i = np.where((ok & definite)[:, None, None], V_i, np.eye(q))
    f = np.einsum("gk,gk->g", pi_i, np.linalg.solve(V_i, pi_i[..., None])[..., 0]) / q
    return np.where(definite, f, np.nan)


def _fit(
    spec: _Spec,
    layout: _Layout,
    elasticity: Array,
    std_error: Array,
    first_stage_f: Array,
    dof: Array,
    ok: npt.NDArray[np.bool_],
    reasons: npt.NDArray[np.object_],
) -> CurveFit:
    """The results table: NaN for failed groups, intervals, flags."""
    c = critical_value(spec.level, dof)
    elasticity, std_error, first_stage_f = (
        np.where(ok, a, np.nan) for a in (elasticity, std_error, first_stage_f)
    )
    # an F that cannot be measured (NaN) does not show a strong instrument either
    weak = ok & bool(spec.instruments) & ~(first_stage_f >= WEAK_INSTRUMENT_F)
    method = "2SLS" if spec.instruments else "OLS"
    out = layout.keys.copy()
    out["elasticity"] = elasticity
    out["std_error"] = std_error
    out["ci_low"] = elasticity - c * std_error
    out["ci_high"] = elasticity + c * std_error
    out["dof"] = np.where(ok, dof, np.nan)
    out["first_stage_f"] = first_stage_f
    out["n"] = layout.counts
    out["method"] = method
    out["flags"] = np.where(weak, "weak_instrument", reasons).astype(str)
    return CurveFit(out, spec.by, method, spec.cov, spec.level)


@dataclass(frozen=True)
class _Layout:
    """Where each row goes in the padded (groups, T, ·) arrays."""

    keys: pd.DataFrame  # one row per group, in group order
    group: npt.NDArray[np.int64]  # group of each row
    position: npt.NDArray[np.int64]  # position of each row within its group
    counts: npt.NDArray[np.int64]  # rows per group
    by: tuple[str, ...]

    @classmethod
    def build(cls, frame: pd.DataFrame, by: tuple[str, ...]) -> _Layout:
        if not by:
            group = np.zeros(len(frame), dtype=np.int64)
            keys = pd.DataFrame(index=[0])
        else:
            grouped = frame.groupby(list(by), sort=True, dropna=False, observed=True)
            group = np.asarray(grouped.ngroup(), dtype=np.int64)
            keys = grouped.size().reset_index()[list(by)]
        counts = np.bincount(group, minlength=len(keys)).astype(np.int64)
        order = np.argsort(group, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.empty(len(frame), dtype=np.int64)
        position[order] = np.arange(len(frame)) - starts[group[order]]
        return cls(keys.reset_index(drop=True), group, position, counts, by)

    @property
    def groups(self) -> int:
        return len(self.counts)

    @property
    def mask(self) -> Array:
        return (np.arange(int(self.counts.max(initial=0)))[None, :] < self.counts[:, None]).astype(
            np.float64
        )

    def pad(self, columns: Sequence[Array]) -> Array:
        out = np.zeros((self.groups, int(self.counts.max(initial=0)), len(columns)))
        for j, values in enumerate(columns):
            out[self.group, self.position, j] = values
        return out

    def label(self, g: int) -> str:
        if not self.by:
            return "(all rows)"
        return ", ".join(f"{c}={self.keys.iloc[g][c]}" for c in self.by)

    def row_problems(self, frame: pd.DataFrame, spec: _Spec) -> npt.NDArray[np.object_]:
        """Per group, the first reason found in its rows ('' when none): a missing,
        infinite or non-positive quantity or price, a missing or infinite regressor, a
        missing fixed-effect level or cluster id."""
        checks: list[tuple[str, Any]] = []
        for side, column in (("quantity", spec.quantity), ("price", spec.price)):
            values = frame[column].to_numpy(np.float64)
            checks += [
                (f"missing_value in {column}", np.isnan(values)),
                (f"not_finite in {column}", np.isinf(values)),
                (f"non_positive_{side}", values <= 0),
            ]
        for column in spec.instruments + spec.controls:
            values = frame[column].to_numpy(np.float64)
            checks += [
                (f"missing_value in {column}", np.isnan(values)),
                (f"not_finite in {column}", np.isinf(values)),
            ]
        for levels in (spec.fixed_effects, spec.clusters):
            if levels is not None:
                checks.append((f"missing_value in {levels}", frame[levels].isna().to_numpy()))
        reasons = np.full(self.groups, "", dtype=object)
        for name, bad_rows in checks:
            bad = np.bincount(
                self.group, weights=np.asarray(bad_rows, dtype=np.float64), minlength=self.groups
            )
            _fail(reasons, bad > 0, partial(_count_reason, name, bad))
        return reasons

    def cell_codes(self, levels: pd.Series) -> npt.NDArray[np.int64]:
        """One code per (group, level) cell."""
        level_codes = pd.factorize(levels, use_na_sentinel=False)[0]
        return pd.factorize(self.group * (int(level_codes.max(initial=0)) + 1) + level_codes)[0]

    def cells_per_group(self, codes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        first = pd.Series(self.group).groupby(codes).first()
        return np.bincount(first.to_numpy(), minlength=self.groups).astype(np.int64)

    def cluster_ids(self, clusters: pd.Series) -> npt.NDArray[np.int64]:
        """(groups, T) cluster index within each group, −1 on padding."""
        codes = self.cell_codes(clusters)
        within = pd.Series(codes).groupby(self.group).rank(method="dense").to_numpy(np.int64) - 1
        out = np.full((self.groups, int(self.counts.max(initial=0))), -1, dtype=np.int64)
        out[self.group, self.position] = within
        return out


def _count_reason(name: str, counts: npt.NDArray[np.generic], g: int) -> str:
    return f"{name} ({int(counts[g])} rows)"


def critical_value(level: float, dof: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Two-sided critical values: Student t where ``dof`` is set, normal where it is NaN."""
    from scipy import stats

    normal = NormalDist().inv_cdf(0.5 + level / 2)
    t = stats.t.ppf(0.5 + level / 2, np.where(np.isnan(dof), 1.0, dof))
    return np.asarray(np.where(np.isnan(dof), normal, t), dtype=np.float64)


def _fail(
    reasons: npt.NDArray[np.object_], failing: npt.NDArray[np.bool_], reason: Callable[[int], str]
) -> None:
    """Give each failing group that has no reason yet its reason (the first one found
    stands); the text is built for failing groups only, never looped over all groups."""
    for g in np.flatnonzero(failing & (reasons == "")):
        reasons[g] = reason(int(g))


def _demean(values: Array, codes: npt.NDArray[np.int64]) -> Array:
    """Values minus their mean within each cell (absorbs one intercept per cell)."""
    means = np.bincount(codes, weights=values) / np.bincount(codes)
    return values - means[codes]


def _full_rank(R: Array) -> npt.NDArray[np.bool_]:
    diag = np.abs(np.diagonal(R, axis1=1, axis2=2))
    return np.asarray(np.all(diag > _RANK_TOL * diag.max(axis=1, keepdims=True), axis=1))


def _inverse_gram(R: Array) -> Array:
    """(A'A)⁻¹ = R⁻¹R⁻ᵀ from the QR factor R of A."""
    Rinv = np.linalg.inv(R)
    return np.asarray(Rinv @ np.swapaxes(Rinv, 1, 2), dtype=np.float64)


@dataclass(frozen=True)
class _Dependence:
    """What the clustered and HAC covariances need besides the scores."""

    cluster_ids: npt.NDArray[np.int64] | None  # (groups, T), −1 on padding
    lags: npt.NDArray[np.int64]  # HAC bandwidth per group
    ewc_terms: npt.NDArray[np.int64]  # EWC cosine terms B per group
    mask: Array  # (groups, T): 1 on rows, 0 on padding


def _covariance(
    cov: str,
    bread: Array,
    regressors: Array,
    resid: Array,
    n: Array,
    k: npt.NDArray[np.int64],
    dependence: _Dependence,
    df_corrected_unadjusted: bool,
) -> Array:
    """Covariance of the coefficients, by the formulas of the module docstring."""
    if cov == "unadjusted":
        dof = n - k if df_corrected_unadjusted else n
        sigma2 = np.einsum("gt,gt->g", resid, resid) / np.maximum(dof, 1)
        return np.asarray(sigma2[:, None, None] * bread, dtype=np.float64)
    scores = regressors * resid[..., None]
    if cov in ("HC1", "HAC"):
        meat = np.einsum("gtk,gtl->gkl", scores, scores)
        if cov == "HAC":  # padding rows are zero, so lagged products never mix groups
            for j in range(1, int(dependence.lags.max(initial=0)) + 1):
                weight = np.clip(1.0 - j / (dependence.lags + 1.0), 0.0, None)
                gamma = np.einsum("gtk,gtl->gkl", scores[:, j:], scores[:, :-j])
                meat += weight[:, None, None] * (gamma + np.swapaxes(gamma, 1, 2))
        scale = n / np.maximum(n - k, 1)
    elif cov == "EWC":
        t = np.arange(scores.shape[1]) + 0.5
        meat = np.zeros((len(n), scores.shape[2], scores.shape[2]))
        terms = dependence.ewc_terms
        for j in range(1, int(terms.max(initial=0)) + 1):
            basis = np.cos(np.pi * j * t[None, :] / np.maximum(n[:, None], 1)) * dependence.mask
            cj = np.einsum("gt,gtk->gk", basis, scores)
            meat += (j <= terms)[:, None, None] * np.einsum("gk,gl->gkl", cj, cj)
        meat *= (2.0 / np.maximum(terms, 1))[:, None, None]
        scale = np.ones(len(n))
    else:
        ids = dependence.cluster_ids
        assert ids is not None
        n_clusters = ids.max(axis=1) + 1
        sums = np.zeros((len(n), int(n_clusters.max(initial=1)), regressors.shape[2]))
        g_idx, t_idx = np.nonzero(ids >= 0)
        np.add.at(sums, (g_idx, ids[g_idx, t_idx]), scores[g_idx, t_idx])
        meat = np.einsum("gck,gcl->gkl", sums, sums)
        c = n_clusters.astype(np.float64)
        scale = c / np.maximum(c - 1, 1) * (n - 1) / np.maximum(n - k, 1)
    return np.asarray(scale[:, None, None] * (bread @ meat @ bread), dtype=np.float64)
