r"""Rate guidance per segment: what to ask, what to budget, how sure that is, where the
rate goes next week, and how the segment stands today (DESIGN.md §5).

For a segment with equilibrium listed rate p* (the market as nowcast in the as-of week),
fees f_c and f_f, and today's rate o (the segment's rate in its as-of week, its last week
with hires):

    freelancer rate  W* = p* (1 − f_f)      what a freelancer should ask
    client rate      P* = p* (1 + f_c)      what a client should budget
    gap_frac         = p* / o − 1          (a fraction: 0.05 is 5 %)

and, when the next week's market is given, its equilibrium ``forecast_rate`` p*_{+1}: the
levels one week on, their shocks decaying by their persistence, the shifters forecast
(:mod:`pricing.estimation.levels`). Guidance is acted on in the week after the as-of
date; p* says where the market stands, p*_{+1} where it is going.

**Bands** carry the uncertainty of the curves — slopes and levels together — into the
rates. For side k of a segment, with elasticity ε̂ (standard error se, interval degrees of
freedom ν), level L̂ = log hours at the anchor rate a, its standard error given the slope
σ_L and its covariance with the slope c (so that g = c / se² is how the level moves with
the slope), and the correlation ρ_L of the demand and supply levels (the market's
uncertainty columns, :mod:`pricing.market.market`), draw r = 1 … R curve sets:

    ε_r = ε̂ + se t_ν(u_r),   clipped to ≤ −10⁻³ (η_r: ≥ 10⁻³)
    L_r = L̂ + g (ε_r − ε̂) + σ_L z,    (z_D, z_S) standard normal with correlation ρ_L

with t_ν the Student t quantile function (the normal's, Φ⁻¹, where ν is missing or
infinite), so a band's tails match the curve intervals', and z = Φ⁻¹(u) correlated as
(z_D, ρ_L z_D + √(1 − ρ_L²) z₂). Each drawn curve is turned around the anchor to the
drawn slope and moved to the drawn level (:meth:`Market.rotated`, :meth:`Market.scaled`).

**Where the draws sit (randomized quasi-Monte Carlo).** A segment's four uniforms u
(two slopes, two levels) are the first R points of the four-dimensional Sobol' sequence,
randomized per segment by a random digital shift (every point's binary digits XOR the
segment's random digits: each point is uniform, and the set keeps the sequence's strata,
each of R equal slices of every dimension holding one point when R is a power of 2) and
by a random order of the points (so the segments of one copy draw independently of one
another, and a neighbour's draw does not follow from a segment's own). Each common group
(below) draws its two shocks the same way. The band ends are quantiles of a rate driven
mostly by the segment's own four draws, so spread-out points estimate them with less
error than as many independent ones: measured against 2,048-draw bands on the simulated
10,000-segment nightly market, 128 such draws (the default) err less than 200
independent ones, 64 do not (``tests/test_guidance_draws.py``).

Every drawn market is cleared by :func:`pricing.market.equilibrium.solve` (copies of whole
components stacked side by side with :meth:`Market.stack`, one call per chunk of about
:data:`CHUNK_SEGMENTS` segments, without the convex fallback), giving p*_r. Each block
of components draws from its own random stream, so blocks, and the slices of draws of
a block too large for one call, can run anywhere, in any order (:func:`_bands`): on a
Dask cluster, or in worker processes of this machine, since clearing the copies is
mostly the forest's rounds, many numpy calls too small to release the GIL (measured on
the connected 10^4-segment nightly market, 12 slices of 21–22 draws: 17.6 s on one
thread, 10.7 s in 2 processes on 2 cores, where 2 threads took 1.04× one).

**Clearing the copies.** A copy is the point market with other curves, so its
equilibrium is usually the point's with the same edges in use: each copy starts from the
point solution (``solve(copies, baseline=…)``), which the engine first tries as a forest
of the point's used edges — exact, no linear algebra — and hands the rest to the
interior point, warm. Every answer passes the same verification, so the bands are those
of clearing every copy cold, to the solver's tolerance (``tests/test_guidance.py``).

**A drawn curve too far to draw.** A segment whose drawn curves clear alone more than
:data:`FAR_RATIO` (10⁶) away from its point rate (a nearly flat drawn pair, or a level
drawn beyond the floats) is not drawn in that copy: it keeps its fitted curves there, its
own draw is counted failed, and its neighbours keep the copy. A rate a million times
off is no band end (a published rate lies within ``plausible_ratio`` of today's), and
the engine's warm start has no room for it (its slacks, a fraction 10⁻⁵ of the drawn
rate, vanish beside rates 10¹¹ times larger). Before, such a draw failed its whole
component's copy (beyond the floats) or sent it cold: on the connected simulated
10,000-segment market, one component, 145 of 200 copies failed and 69 % of all
segment-draws were lost; now 0.02 %. A copy the engine cannot clear comes back failed
and is counted.

At level L the band is the (1 − L)/2 and (1 + L)/2 quantiles of
p*_r over the draws that solved (``listed_rate_low``, ``listed_rate_high``; times 1 − f_f
and 1 + f_c for the freelancer and client bands), widened where needed to contain the
point estimate. A drawn copy that fails to clear is left out of its segments' quantiles and
counted. In a coupled component every segment with a band is drawn at once, so a band
includes its neighbours' uncertainty; a neighbour without a band keeps its fitted curve.
The forecast's band is drawn the same way from the next week's market, whose level
uncertainty adds a week of shocks and the shifters' forecast errors. The shifters' errors
are common to the segments that share the shifters (``*_common_se``, ``common_corr``,
``common_group``): each copy draws one shock per group and side, with the sides'
correlation, and adds σ_C z_C to every level of the group, so a market-wide surprise moves
a whole coupled component, as it does in the market.

What a band covers: the estimation uncertainty of slopes and levels under the model. It
does not cover a wrong curve form. A segment without a standard error on either side,
without a level uncertainty, without an observed rate, or without a solved equilibrium
has no band (NaN). Bands are around the equilibrium rates, not the capped ones.

**Market state**, in this order:

    thin_data      a curve carries one of ``thin_data_flags``, the equilibrium is not
                   solved, a standard error is missing, or there is no observed rate
    supply_short   100 gap_frac >  balanced_pct   (the market clears above today's rate)
    demand_short   100 gap_frac < −balanced_pct   (it clears below)
    balanced       100 |gap_frac| ≤ balanced_pct

**Plausibility.** A rate is published only if it lies within a factor
K = ``plausible_ratio`` (default 10) of today's observed rate o:

    o / K ≤ p* ≤ K o;   otherwise status ``implausible``, rates and band withheld (NaN).

The curves are constant-elasticity fits around the rates a segment has traded at: in
the sample, weekly rates of a segment span a factor 2.5 over two years (median), and the
clearing rates lie within 0.7–2.6 times today's. A clearing rate ten times today's, or a
tenth of it, comes from nearly flat curves (|η − ε| near 0) extrapolated far beyond any
rate observed — with no instruments the sample once gave $201,140/h and $6·10⁻¹²/h, each
"solved". Such a segment is labelled ``thin_data`` (reason "equilibrium implausible";
``gap_frac`` says how far), and the equilibrium columns keep the number for inspection.

**Stability cap.** With the previous run's published rates W₀, P₀ and c =
``max_change_pct`` / 100, the published rates are

    W = clip(W*, W₀ (1 − c), W₀ (1 + c)),   P = clip(P*, P₀ (1 − c), P₀ (1 + c));

a segment without a previous rate is not capped.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special
from scipy.stats import qmc

from pricing.cluster import LOCAL, Executor, Local, peak_memory_mb, plan_parts
from pricing.config import MIN_ABS_ELASTICITY, GuidanceConfig
from pricing.display import Display, records, signed_share, table
from pricing.errors import DataError
from pricing.estimation.curves import CurveSet
from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import ANCHOR_WEEK, PARAMETERS, SIDES, Market, Side

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Segments per stacked market of drawn copies (memory and batch size of one solve).
CHUNK_SEGMENTS = 250_000

#: A segment's drawn curve that clears alone beyond this factor of its point rate (either
#: way) is not drawn in its copy: it keeps its fitted curve there, and its own draw is
#: counted failed (module docstring).
FAR_RATIO = 1e6
#: binary digits of the Sobol' points (scipy's default)
_SOBOL_BITS = 30

STATES = ("balanced", "supply_short", "demand_short", "thin_data")
RATE_COLUMNS = ("freelancer_rate", "client_rate")
#: The first columns of :meth:`Guidance.to_frame` after the segment keys, in this order
#: (a storage contract).
COLUMNS = (
    "freelancer_rate",
    "freelancer_rate_low",
    "freelancer_rate_high",
    "client_rate",
    "client_rate_low",
    "client_rate_high",
    "observed_rate",
    "gap_frac",
    "market_state",
    "state_reason",
    "capped",
    "equilibrium_freelancer_rate",
    "equilibrium_client_rate",
    "previous_freelancer_rate",
    "previous_client_rate",
    "band_level",
    "status",
    "band_draws",
    "observed_week",
    "listed_rate",
    "listed_rate_low",
    "listed_rate_high",
    "forecast_rate",
    "forecast_rate_low",
    "forecast_rate_high",
    "forecast_band_draws",
)
_SOLVED = ("solved", "solved_fallback")


@dataclass(frozen=True)
class Guidance(Display):
    """Rate guidance for every segment of a market (immutable); see the module docstring.

    ``frame`` has one row per segment with the columns of :data:`COLUMNS` after the
    segment keys; ``failed_draws`` counts the segment-draws left out of the bands because
    their copy did not clear, ``clipped_share`` the share of drawn elasticities clipped
    to keep their sign.
    """

    frame: pd.DataFrame
    segment_keys: tuple[str, ...]
    config: GuidanceConfig
    failed_draws: int
    clipped_share: float
    timings: dict[str, float] = field(default_factory=dict)
    #: the band draws' worker processes, when they ran in other processes: how many
    #: (``band_workers``) and the largest one's peak memory (``band_worker_peak_memory_mb``)
    workers: dict[str, float] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    @property
    def state_counts(self) -> dict[str, int]:
        """Segments per market state, in :data:`STATES` order."""
        counts = self.frame["market_state"].value_counts()
        return {state: int(counts.get(state, 0)) for state in STATES}

    def to_dict(self) -> dict[str, Any]:
        """The settings behind the bands, the counts and every segment's guidance."""
        c = self.config
        return {
            "segments": len(self.frame),
            "market_state": self.state_counts,
            "status": {k: int(v) for k, v in self.frame["status"].value_counts().items()},
            "band_level": c.band_level,
            "draws": c.draws,
            "seed": c.seed,
            "failed_draws": self.failed_draws,
            "clipped_share": self.clipped_share,
            "balanced_pct": c.balanced_pct,
            "max_change_pct": c.max_change_pct,
            "capped": int(self.frame["capped"].sum()),
            "segment_guidance": records(self.frame),
        }

    def summary(self, max_rows: int = 20) -> str:
        f, c = self.frame, self.config
        banded = int(f["freelancer_rate_low"].notna().sum())
        previous = [f"previous_{name}" for name in RATE_COLUMNS]
        with_previous = int(f[previous].notna().any(axis=1).sum())
        lines = [
            f"Rate guidance for {len(f):,} segments: "
            + ", ".join(f"{n:,} {state}" for state, n in self.state_counts.items() if n),
            f"  {c.band_level:.0%} bands from {c.draws} curve draws (seed {c.seed}) on "
            f"{banded:,} segments; {self.failed_draws:,} segment-draws failed to clear, "
            f"{self.clipped_share:.2%} of drawn elasticities clipped",
            f"  balanced within ±{c.balanced_pct:g} % of the observed rate; "
            f"{with_previous:,} segments with a previous rate, "
            f"{int(f['capped'].sum()):,} capped at ±{c.max_change_pct:g} %",
        ]
        if self.timings:
            lines.append(
                "  time: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.timings.items())
            )
        if max_rows:
            cols = [*self.segment_keys, *COLUMNS[:9]]
            lines.append(table(f[cols].head(max_rows), "{:.2f}", {"gap_frac": signed_share}))
        return "\n".join(lines)


@overload
def rate_guidance(
    equilibrium: EquilibriumResult,
    config: GuidanceConfig | None = None,
    previous: Guidance | pd.DataFrame | None = None,
    executor: Executor = LOCAL,
    forecast: EquilibriumResult | None = None,
) -> Guidance: ...


@overload
def rate_guidance(
    equilibrium: EquilibriumResult,
    curves: CurveSet,
    config: GuidanceConfig | None = None,
    previous: Guidance | pd.DataFrame | None = None,
    executor: Executor = LOCAL,
) -> Guidance: ...


def rate_guidance(equilibrium: EquilibriumResult, *args: Any, **kwargs: Any) -> Guidance:
    """Guidance for every segment of ``equilibrium.market`` (module docstring): rates,
    bands from the uncertainty the market carries, market state, and the stability cap
    against ``previous`` (a :class:`Guidance` or a frame with the segment keys,
    ``freelancer_rate`` and ``client_rate``); with ``forecast`` (the equilibrium of the
    next week's market, the same segments) the forecast rate and its band. The blocks of
    band draws run through ``executor`` (:mod:`pricing.cluster`).

    Call it as ``rate_guidance(equilibrium, config, previous, executor, forecast)``. The form of
    earlier releases, ``rate_guidance(equilibrium, curves, config, previous, executor)``,
    still works for one release with a :class:`DeprecationWarning`: the curves'
    uncertainty is attached to the market first (:meth:`Market.with_uncertainty`)."""
    curves = kwargs.pop("curves", None)
    if curves is None and args and isinstance(args[0], CurveSet):
        curves, args = args[0], args[1:]
    if curves is not None:
        warnings.warn(
            "rate_guidance(equilibrium, curves, ...) is deprecated: the market carries its "
            "curves' uncertainty; call rate_guidance(equilibrium, config, previous, executor)",
            DeprecationWarning,
            stacklevel=2,
        )
        equilibrium = replace(equilibrium, market=equilibrium.market.with_uncertainty(curves))
    return _guidance(equilibrium, *args, **kwargs)


def _guidance(
    equilibrium: EquilibriumResult,
    config: GuidanceConfig | None = None,
    previous: Guidance | pd.DataFrame | None = None,
    executor: Executor = LOCAL,
    forecast: EquilibriumResult | None = None,
) -> Guidance:
    """:func:`rate_guidance` in its current form."""
    t0 = time.perf_counter()
    config = config or GuidanceConfig()
    market = equilibrium.market
    keys = list(market.segment_keys)
    prev = None
    if previous is not None:
        prev_frame = previous.to_frame() if isinstance(previous, Guidance) else previous
        prev = _aligned_previous(check_previous(prev_frame, keys), market)
    (now, *rest), workers = _bands(
        [equilibrium, *([forecast] if forecast is not None else [])], config, executor
    )
    later = rest[0] if rest else None
    timings = {"bands": time.perf_counter() - t0}
    p = equilibrium.rate
    observed = market.array("observed_rate")
    status = _plausible(equilibrium.status, p, observed, config.plausible_ratio)
    solved = np.isin(status, _SOLVED)
    withheld = ~solved & np.isin(equilibrium.status, _SOLVED)  # implausible: no band either
    for band in (now, later):
        if band is not None:
            band.low[withheld] = band.high[withheld] = np.nan
    fc, ff = market.array("client_fee"), market.array("freelancer_fee")
    with np.errstate(invalid="ignore"):
        gap = p / observed - 1.0
    se = np.stack([market.array(f"{side}_elasticity_se") for side in SIDES])
    flagged = _flagged(market, config.thin_data_flags)
    state, reason = _market_state(100.0 * gap, status, se, flagged, observed, config)
    columns: dict[str, npt.NDArray[Any] | float] = {}
    capped = np.zeros(len(market), dtype=bool)
    for name, factor in {"freelancer_rate": 1 - ff, "client_rate": 1 + fc}.items():
        before = prev[name] if prev is not None else np.full(len(market), np.nan)
        published, clipped = _cap(
            np.where(solved, p, np.nan) * factor, before, config.max_change_pct
        )
        capped |= clipped
        columns[name] = published
        columns[f"{name}_low"] = now.low * factor
        columns[f"{name}_high"] = now.high * factor
        columns[f"equilibrium_{name}"] = p * factor
        columns[f"previous_{name}"] = before
    nan = np.full(len(market), np.nan)
    columns |= {
        "observed_rate": observed,
        "gap_frac": gap,
        "market_state": state,
        "state_reason": reason,
        "capped": capped,
        "band_level": config.band_level,
        "status": status,
        "band_draws": np.where(withheld, 0, now.used),
        "observed_week": market.segments[ANCHOR_WEEK].to_numpy(),
        "listed_rate": np.where(solved, p, np.nan),
        "listed_rate_low": now.low,
        "listed_rate_high": now.high,
        "forecast_rate": nan if forecast is None else np.where(solved, forecast.rate, np.nan),
        "forecast_rate_low": nan if later is None else later.low,
        "forecast_rate_high": nan if later is None else later.high,
        "forecast_band_draws": 0 if later is None else np.where(withheld, 0, later.used),
    }
    out = market.segments[keys].assign(**{name: columns[name] for name in COLUMNS})
    failed = now.failed + (later.failed if later is not None else 0)
    timings["total"] = time.perf_counter() - t0
    return Guidance(out, market.segment_keys, config, failed, now.clipped_share, timings, workers)


# --------------------------------------------------------------------------- bands
@dataclass(frozen=True)
class _Bands:
    """Listed-rate band ends (widened to contain the point), draws used per segment, the
    segment-draws that failed to clear and the share of drawn elasticities clipped."""

    low: FloatArray
    high: FloatArray
    used: IntArray
    failed: int
    clipped_share: float


#: the uncertainty a band is drawn from, per side (rows: demand, supply)
_DRAWN = ("elasticity_se", "dof", "level_se", "slope_level_cov", "common_se")


def _bands(
    equilibria: list[EquilibriumResult], config: GuidanceConfig, executor: Executor
) -> tuple[list[_Bands], dict[str, float]]:
    """The bands of each equilibrium's market (module docstring), the i-th from random
    stream i of the seed (0: the as-of week, 1: the forecast), and the processes other
    than this one that drew them (:attr:`Guidance.workers`).

    Whole components with a bandable segment are solved in blocks of about
    CHUNK_SEGMENTS / draws segments with all their draws at once, so a block's draws fit
    one stacked market; a component larger than that (a connected market) is one block
    whose draws are cut into equal slices, each fitting one. A block's slice of draws is
    a task for ``executor``, the tasks of every market together: each block draws from
    its own random stream (block b of the stream's :class:`numpy.random.SeedSequence`
    spawn), so the bands do not depend on where or in which order the tasks run."""
    plans = [_plan(eq, config, stream) for stream, eq in enumerate(equilibria)]
    tasks_per_market = [sum(len(bounds) - 1 for bounds in plan.slices) for plan in plans]
    # a market of two or more tasks sends every task to a cluster, or here to worker
    # processes when coupled components are drawn (the forest's rounds hold the GIL;
    # the closed form of uncoupled segments is large numpy operations, which threads
    # share); else each task is solved here, on every core of this process (starting
    # processes would cost more than it saves)
    if max(tasks_per_market, default=0) > 1:
        runner, inner = plan_parts(executor, sum(tasks_per_market), 1)[0], Local(1)
    else:
        runner, inner = Local(1), LOCAL
    tasks = [
        _Draws(block, int(lo), int(hi), inner)
        for plan in plans
        for block, bounds in zip(plan.blocks, plan.slices, strict=True)
        for lo, hi in itertools.pairwise(bounds)
    ]
    coupled = any(plan.coupled for plan in plans)
    answers = runner.map(_draw_rates, tasks, holds_gil=coupled)
    peaks = {a.process: a.peak_mb for a in answers if a.process != os.getpid()}
    workers = (
        {"band_workers": len(peaks), "band_worker_peak_memory_mb": max(peaks.values())}
        if peaks
        else {}
    )
    in_order = iter(answers)  # each plan takes its own tasks' answers, in task order
    return [plan.combine(in_order, config) for plan in plans], workers


def band_tasks(segments: int, config: GuidanceConfig) -> int:
    """How many tasks the band draws of a market of ``segments`` segments take at least
    (:func:`_bands`): one per CHUNK_SEGMENTS segment-draws."""
    return -(-segments * config.draws // CHUNK_SEGMENTS)


@dataclass(frozen=True)
class _Plan:
    """One market's band draws: the segments that get a band, whether a coupled
    component is drawn, its blocks, each block's segments (rows of the market) and the
    bounds of its slices of draws."""

    equilibrium: EquilibriumResult
    bandable: BoolArray
    coupled: bool
    rows: list[IntArray]
    blocks: list[_Block]
    slices: list[IntArray]  # per block: 0 = b_0 < b_1 < … < b_s = draws

    def combine(self, answers: Iterator[_Rates], config: GuidanceConfig) -> _Bands:
        """The bands from the tasks' answers, in task order."""
        n = len(self.equilibrium.market)
        low, high = np.full(n, np.nan), np.full(n, np.nan)
        used = np.zeros(n, np.int64)
        clipped = total = 0
        q = ((1 - config.band_level) / 2, (1 + config.band_level) / 2)
        for rows, bounds in zip(self.rows, self.slices, strict=True):
            parts = [next(answers) for _ in bounds[1:]]
            rate = np.concatenate([part.rate for part in parts])
            used[rows] = np.isfinite(rate).sum(axis=0)
            low[rows], high[rows] = _quantiles(rate, used[rows], q)
            clipped += sum(part.clipped for part in parts)
            total += sum(part.drawn for part in parts)
        p = self.equilibrium.rate
        return _Bands(
            np.minimum(low, p),
            np.maximum(high, p),
            used,
            int((config.draws - used[self.bandable]).sum()),
            clipped / total if total else 0.0,
        )


def _bandable(equilibrium: EquilibriumResult) -> BoolArray:
    """Segments that get a band: solved, with standard errors of both sides' slopes and
    levels, an observed rate and an anchor."""
    market = equilibrium.market
    return (
        np.isin(equilibrium.status, _SOLVED)
        & np.isfinite(np.stack([market.array(f"{s}_elasticity_se") for s in SIDES])).all(axis=0)
        & np.isfinite(np.stack([market.array(f"{s}_level_se") for s in SIDES])).all(axis=0)
        & np.isfinite(market.array("observed_rate"))
        & np.isfinite(market.array("anchor_rate"))
    )


def _plan(equilibrium: EquilibriumResult, config: GuidanceConfig, stream: int) -> _Plan:
    """The blocks and slices of draws of ``equilibrium``'s market (:func:`_bands`)."""
    market = equilibrium.market
    n = len(market)
    drawn = {name: np.stack([market.array(f"{s}_{name}") for s in SIDES]) for name in _DRAWN}
    bandable = _bandable(equilibrium)
    # the drawn copies need only the curves, fees, bounds, anchors and edges: a
    # placeholder key spares every stacked market the cost of carrying and labelling the
    # segment names
    columns = [*PARAMETERS, "anchor_rate"]
    bare = Market.unchecked(market.segments[columns].assign(copy_of=0), market.edges, ("copy_of",))
    comp = market.component
    wanted = np.zeros(int(comp.max()) + 1 if n else 0, dtype=bool)
    wanted[comp[bandable]] = True
    # a segment without a band keeps its curve: nothing of it is drawn
    spread = {k: np.where(bandable, np.nan_to_num(v), 0.0) for k, v in drawn.items()}
    spread["dof"] = drawn["dof"]
    corr = np.where(bandable, market.array("level_corr"), 0.0)
    common_corr = np.where(bandable, market.array("common_corr"), 0.0)
    group = market.array("common_group")
    rows = _blocks(comp, np.flatnonzero(wanted[comp]), max(1, CHUNK_SEGMENTS // config.draws))
    seed = np.random.SeedSequence(config.seed, spawn_key=(stream,) if stream else ())
    blocks, slices = [], []
    for block, block_stream in zip(rows, seed.spawn(len(rows)), strict=True):
        block_market, edge_ids = bare.stack(block, np.zeros(block.size, np.int64))  # noqa: PD013
        blocks.append(
            _Block(
                block_market,
                _laid_out(equilibrium, block_market, block, edge_ids),
                {k: v[:, block] for k, v in spread.items()},
                corr[block],
                common_corr[block],
                np.unique(group[block], return_inverse=True)[1].ravel(),
                block_stream,
                config.draws,
            )
        )
        # as many equal slices as it takes to keep each within CHUNK_SEGMENTS
        parts = band_tasks(block.size, config)
        slices.append(np.linspace(0, config.draws, parts + 1).round().astype(np.int64))
    drawn_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    coupled = bool((np.bincount(comp)[comp[drawn_rows]] > 1).any())
    return _Plan(equilibrium, bandable, coupled, rows, blocks, slices)


@dataclass(frozen=True)
class _Block:
    """The whole components of one block of band draws: the block's own market (rows
    in block order, with the anchors the drawn curves turn around) and its point
    solution (where every copy starts), what is drawn per side (:data:`_DRAWN`, each
    (2, rows)), the levels' correlation, the common shocks' correlation and groups
    (codes 0 … G − 1 within the block), its random stream and its number of draws."""

    market: Market
    point: EquilibriumResult
    spread: dict[str, FloatArray]
    corr: FloatArray
    common_corr: FloatArray
    group: IntArray
    stream: np.random.SeedSequence
    draws: int


@dataclass(frozen=True)
class _Draws:
    """A task: the draws ``start`` … ``stop`` − 1 of a block, cleared in one solve whose
    parts run through ``executor``."""

    block: _Block
    start: int
    stop: int
    executor: Executor


@dataclass(frozen=True)
class _Rates:
    """A task's answer: the listed rates (draws, block rows; NaN where a draw failed),
    the elasticities clipped and the elasticities drawn, and the process that ran it
    with its peak memory so far (MiB)."""

    rate: FloatArray
    clipped: int
    drawn: int
    process: int
    peak_mb: float


def _draw_rates(task: _Draws) -> _Rates:
    """Draw and clear the task's copies of its block. Every task of a block draws the
    block's uniforms for all its draws (module docstring: per segment its slopes' and
    levels' uniforms, per common group its shocks') and keeps its own, so a block's
    draws are the same however they are cut into tasks."""
    block = task.block
    rng = np.random.default_rng(block.stream)
    own = _sobol(rng, block.draws, len(block.market), 4)
    common = _sobol(rng, block.draws, int(block.group.max()) + 1, 2)
    chosen = slice(task.start, task.stop)
    rate, clipped = _solve_draws(block, own[:, chosen], common[:, chosen], task.executor)
    drawn = (task.stop - task.start) * int((block.spread["elasticity_se"] > 0).sum())
    return _Rates(rate, clipped, drawn, os.getpid(), peak_memory_mb())


def _sobol(rng: np.random.Generator, draws: int, units: int, dims: int) -> FloatArray:
    """Uniforms (dims, draws, units) in (0, 1): the first ``draws`` points of the
    ``dims``-dimensional Sobol' sequence, for every unit (a segment, a common group) with
    its own random digital shift (each point's binary digits XOR the unit's random
    digits: every point stays uniform, the set keeps its spread) and its own random order
    of the points (so units of one copy draw independently of one another)."""
    m = max(1, int(np.ceil(np.log2(draws))))
    points = qmc.Sobol(dims, scramble=False, bits=_SOBOL_BITS).random_base2(m)[:draws]
    digits = (points.T * 2.0**_SOBOL_BITS).astype(np.uint64)  # exact: points are k / 2^bits
    order = np.argsort(rng.random((draws, units)), axis=0)
    shift = rng.integers(0, 2**_SOBOL_BITS, size=(dims, 1, units), dtype=np.uint64)
    out: FloatArray = ((digits[:, order] ^ shift) + 0.5) / 2.0**_SOBOL_BITS
    return out


def _solve_draws(
    task: _Block, own: FloatArray, common: FloatArray, executor: Executor
) -> tuple[FloatArray, int]:
    """Clear the k drawn copies of the block whose uniforms are ``own`` (4, k, block) and
    ``common`` (2, k, groups) in one call: the (k, block) listed rates (NaN where a copy
    failed or a segment's drawn curve was too far to draw) and the number of
    elasticities clipped."""
    size = len(task.market)
    k = own.shape[1]
    rows = np.tile(np.arange(size), k)
    copy = np.repeat(np.arange(k), size)
    stacked, edge_ids = task.market.stack(rows, copy)  # noqa: PD013 (Market.stack, not pandas)
    s = {name: v[:, rows] for name, v in task.spread.items()}
    u = own.reshape(4, k * size)
    nu = s["dof"]
    student = np.isfinite(nu) & (nu > 0)
    t = special.ndtri(u[:2])
    t[student] = special.stdtrit(nu[student], u[:2][student])
    z = special.ndtri(u[2:])
    corr = task.corr[rows]
    level_z = np.stack([z[0], corr * z[0] + np.sqrt(1 - corr**2) * z[1]])
    level = [s["level_se"][i] * level_z[i] for i in range(2)]
    if (s["common_se"] > 0).any():  # one shock per copy and group, shared by its segments
        shared = special.ndtri(common[:, copy, task.group[rows]])
        c = task.common_corr[rows]
        both = (shared[0], c * shared[0] + np.sqrt(1 - c**2) * shared[1])
        level = [level[i] + s["common_se"][i] * both[i] for i in range(2)]
    fitted = {side: stacked.array(f"{side}_elasticity") for side in SIDES}
    slopes: dict[Side, FloatArray] = {}
    shifts: dict[Side, FloatArray] = {}
    clipped = 0
    for i, side in enumerate(SIDES):
        sd = s["elasticity_se"][i]
        raw = fitted[side] + sd * t[i]
        # only drawn values are clipped (to keep their sign): a fitted value stays as fitted
        bound = -MIN_ABS_ELASTICITY if side == "demand" else MIN_ABS_ELASTICITY
        drawn = np.where(
            sd > 0,
            np.minimum(raw, bound) if side == "demand" else np.maximum(raw, bound),
            fitted[side],
        )
        clipped += int(((drawn != raw) & (sd > 0)).sum())
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            gain = np.where(sd > 0, s["slope_level_cov"][i] / sd**2, 0.0)
            shifts[side] = np.exp(gain * (drawn - fitted[side]) + level[i])
        slopes[side] = drawn
    start = _laid_out(task.point, stacked, rows, edge_ids)
    copies = _drawn(stacked, slopes, shifts)
    with np.errstate(all="ignore"):
        far = copies.usable & ~(
            np.abs(np.log(copies.uncoupled_rate() / start.rate)) <= np.log(FAR_RATIO)
        )
    if far.any():  # those segments keep their fitted curves in their copies
        for side in SIDES:
            slopes[side] = np.where(far, fitted[side], slopes[side])
            shifts[side] = np.where(far, 1.0, shifts[side])
        copies = _drawn(stacked, slopes, shifts)
    # A copy the interior point cannot clear is left out of the band rather than handed
    # to the convex program: on the simulated 10,000-segment market that program cost
    # 5/6 of the step and cleared 84 of 2,000,000 segment-draws (RESULTS.md).
    rate = _rates(solve(copies, baseline=start, fallback=False, executor=executor))
    rate[far] = np.nan
    return rate.reshape(k, size), clipped


def _drawn(
    stacked: Market, slopes: dict[Side, FloatArray], shifts: dict[Side, FloatArray]
) -> Market:
    """The stacked copies with the drawn slopes (turned around the anchors) and levels
    (moved by the factors ``shifts``); drawn signs are clipped valid, so every rule
    holds."""
    copies = stacked.rotated(slopes, check=False)
    with np.errstate(divide="ignore"):  # log 0: a level drawn below the floats
        for side in SIDES:
            copies = copies.scaled(side, shifts[side], check=False)
    return copies


def _rates(result: EquilibriumResult) -> FloatArray:
    """The listed rates of a solve, NaN where it failed."""
    rate: FloatArray = np.where(np.isin(result.status, _SOLVED), result.rate, np.nan)
    return rate


def _laid_out(
    result: EquilibriumResult, market: Market, rows: IntArray, edge_ids: IntArray
) -> EquilibriumResult:
    """``result`` laid out on ``market``, whose segment i is ``result``'s segment
    ``rows[i]`` and whose edge e its edge ``edge_ids[e]`` (as :meth:`Market.stack` makes
    them): the start of a solve of ``market``'s variants."""
    return EquilibriumResult(
        market=market,
        method=result.method,
        rate=result.rate[rows],
        wage=result.wage[rows],
        flow=result.flow[edge_ids],
        home_flow=result.home_flow[rows],
        shortage=result.shortage[rows],
        surplus=result.surplus[rows],
        status_code=result.status_code[rows],
        path_code=result.path_code[rows],
        residual=result.residual[rows],
        iterations=result.iterations[rows],
    )


def _blocks(comp: IntArray, rows: IntArray, size: int) -> list[IntArray]:
    """``rows`` grouped by component and cut into blocks of about ``size`` segments,
    never inside a component."""
    if not rows.size:
        return []
    ordered = rows[np.argsort(comp[rows], kind="stable")]
    c = comp[ordered]
    starts = np.concatenate([[True], c[1:] != c[:-1]])
    # every segment is labelled by where its component starts
    first = np.maximum.accumulate(np.where(starts, np.arange(c.size), 0))
    label = first // size
    return np.split(ordered, np.flatnonzero(np.diff(label)) + 1)


def _quantiles(
    values: FloatArray, count: IntArray, q: tuple[float, float]
) -> tuple[FloatArray, FloatArray]:
    """Quantiles of each column over its finite values (numpy's default linear
    interpolation; NaN where a column has none), vectorized over columns."""
    ordered = np.sort(values, axis=0)  # NaN sorts last
    out = []
    for level in q:
        h = (np.maximum(count, 1) - 1) * level
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        a = np.take_along_axis(ordered, lo[None, :], axis=0)[0]
        b = np.take_along_axis(ordered, hi[None, :], axis=0)[0]
        out.append(np.where(count > 0, a + (h - lo) * (b - a), np.nan))
    return out[0], out[1]


# --------------------------------------------------------------------------- inputs
def _flagged(market: Market, thin_flags: tuple[str, ...]) -> list[tuple[str, str, BoolArray]]:
    """For every side and thin-data flag, the segments whose curve carries it."""
    flagged: list[tuple[str, str, BoolArray]] = []
    for side in SIDES:
        # flags are comma-separated names: match whole names only
        padded = "," + market.segments[f"{side}_flags"] + ","
        for flag in thin_flags:
            flagged.append((side, flag, padded.str.contains(f",{flag},", regex=False).to_numpy()))
    return flagged


def check_previous(previous: pd.DataFrame, segment_keys: list[str]) -> pd.DataFrame:
    """The previous run's guidance, checked: the segment keys, ``freelancer_rate`` and
    ``client_rate`` present, numeric, positive or missing, one row per segment.

    Raises :class:`DataError` naming what is wrong."""
    needed = [*segment_keys, *RATE_COLUMNS]
    missing = [c for c in needed if c not in previous.columns]
    if missing:
        raise DataError(
            f"the previous guidance lacks the column(s) {missing}; it needs {needed} "
            "(pass the table a previous guidance run wrote)"
        )
    frame = previous[needed].copy()
    for name in RATE_COLUMNS:
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = (values.isna() & frame[name].notna()) | (values <= 0) | np.isinf(values)
        if bad.any():
            rows = ", ".join(str(i) for i in np.flatnonzero(bad.to_numpy())[:5])
            raise DataError(
                f"the previous guidance's {name} must be a positive number or empty; "
                f"{int(bad.sum())} row(s) are not (rows {rows})"
            )
        frame[name] = values.astype(np.float64)
    key = _key_index(frame, segment_keys)
    duplicated = key.duplicated()
    if duplicated.any():
        shown = ", ".join("/".join(k) for k in key[duplicated].unique()[:5])
        raise DataError(
            f"the previous guidance has {int(duplicated.sum())} duplicated segment(s): "
            f"{shown}; keep one row per segment"
        )
    return frame


def load_previous(path: Path, segment_keys: list[str]) -> pd.DataFrame:
    """Read and check a previous guidance table (.parquet or .csv, as ``pricing
    guidance --out`` writes it); raises :class:`DataError` when it cannot be used."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise DataError(f"previous guidance {path} must be a .parquet or .csv file")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={k: str for k in segment_keys})
    except FileNotFoundError:
        raise DataError(f"previous guidance file {path} does not exist") from None
    except (OSError, ValueError) as exc:  # pyarrow's and pandas' parse errors are ValueErrors
        raise DataError(f"previous guidance {path} cannot be read: {exc}") from None
    return check_previous(frame, segment_keys)


def _key_index(frame: pd.DataFrame, keys: list[str]) -> pd.MultiIndex:
    # keys compared as text: a CSV and a Parquet file of the same guidance must match
    return pd.MultiIndex.from_arrays([frame[k].astype(str) for k in keys])


def _aligned_previous(previous: pd.DataFrame, market: Market) -> dict[str, FloatArray]:
    keys = list(market.segment_keys)
    table = previous[list(RATE_COLUMNS)].set_axis(_key_index(previous, keys))
    aligned = table.reindex(_key_index(market.segments, keys))
    return {name: aligned[name].to_numpy(np.float64) for name in RATE_COLUMNS}


# --------------------------------------------------------------------------- labels
def _market_state(
    gap: FloatArray,
    status: npt.NDArray[np.object_],
    se: FloatArray,
    flagged: list[tuple[str, str, BoolArray]],
    observed: FloatArray,
    config: GuidanceConfig,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """The market state of every segment and the reason for it (module docstring); ``gap``
    in percent, as ``balanced_pct`` is."""
    n = gap.size
    reason = np.full(n, "", dtype=object)
    thin = np.zeros(n, dtype=bool)
    causes = [(has, f"{side} curve flagged {flag}") for side, flag, has in flagged]
    causes += [(~np.isin(status, _SOLVED), "equilibrium " + status)]
    causes += [
        (np.isnan(se[i]), f"no {side} standard error")
        for i, side in enumerate(("demand", "supply"))
    ]
    causes += [(np.isnan(observed), "no observed rate")]
    for mask, text in causes:
        thin |= mask
        joined = np.where(reason == "", text, reason + "; " + text)
        reason = np.where(mask, joined, reason)
    b = config.balanced_pct
    state = np.select(
        [thin, gap > b, gap < -b], ["thin_data", "supply_short", "demand_short"], "balanced"
    ).astype(object)
    reason = np.select(
        [thin, gap > b, gap < -b],
        [
            reason,
            np.full(n, f"equilibrium more than {b:g} % above the observed rate", dtype=object),
            np.full(n, f"equilibrium more than {b:g} % below the observed rate", dtype=object),
        ],
        f"equilibrium within ±{b:g} % of the observed rate",
    ).astype(object)
    return state, reason


def _plausible(
    status: npt.NDArray[np.object_], p: FloatArray, observed: FloatArray, ratio: float
) -> npt.NDArray[np.object_]:
    """``status`` with ``implausible`` where a cleared rate lies beyond ``ratio`` times
    today's observed rate either way (module docstring, "Plausibility")."""
    with np.errstate(divide="ignore", invalid="ignore"):
        far = np.abs(np.log(p / observed)) > np.log(ratio)
    out: npt.NDArray[np.object_] = np.where(np.isin(status, _SOLVED) & far, "implausible", status)
    return out


def _cap(
    rate: FloatArray, previous: FloatArray, max_change_pct: float
) -> tuple[FloatArray, BoolArray]:
    """``rate`` clipped to within ``max_change_pct`` % of ``previous`` where there is one,
    and where that clipped it."""
    c = max_change_pct / 100.0
    has = np.isfinite(previous)
    bounded = np.clip(rate, previous * (1 - c), previous * (1 + c))
    published = np.where(has, bounded, rate)
    capped: BoolArray = has & np.isfinite(rate) & (published != rate)
    return published, capped
