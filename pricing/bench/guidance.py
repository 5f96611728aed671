"""Stage ``guidance``: rate guidance (bands from curve draws) on uncoupled and coupled
markets.

Markets come from :func:`pricing.market.synthetic.random_market` (seeded, no fees; setup,
not timed): 10,000 uncoupled segments, and 1,000 segments in coupled components of 2–20.
Every elasticity carries a standard error of :data:`STD_ERROR` on both sides (attached
to the market in setup, :meth:`Market.with_uncertainty`), and the market is solved once
in setup: that equilibrium is where guidance starts. The benchmark times
:func:`pricing.decisions.guidance.rate_guidance` with :data:`DRAWS` draws: every drawn
market cleared (copies stacked, one ``solve`` per chunk of about 250,000 segments),
quantiles, labels and the result table.

The baseline, measured in the same run, is the naive approach: per draw, the drawn curves
(ε, η ~ N(fitted, 0.1²)) rotated around the observed rate, a new :class:`Market` and one
``solve`` call. It is timed on :data:`LOOP_DRAWS` draws and scaled to :data:`DRAWS`: its
cost per draw does not depend on the number of draws. The loop only clears the markets
(it computes no bands), so a ratio below 1 is what stacking the draws saves at the
least.

``guidance.nightly`` times the nightly run's step instead: a simulated market of
:data:`NIGHTLY_SEGMENTS` thin segments (``simulate_market``, :data:`NIGHTLY_JOBS` jobs per
segment-week, skill families coupled), fitted and solved in setup as a run does, and
guidance with both band sets (the as-of week's and next week's forecast), the run's
configuration. Its baseline, in the same run, is the same draws with every copy cleared
from a cold start, as bands were drawn before copies started from the point solution
(guidance's ``solve`` called without the point as its baseline).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

import pricing.decisions.guidance as guidance
from pricing.bench.harness import Case
from pricing.cluster import LOCAL, Executor
from pricing.config import GuidanceConfig
from pricing.decisions.guidance import rate_guidance
from pricing.estimation.curves import CurveSet
from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import Market
from pricing.market.synthetic import random_market

SEED = 5
STD_ERROR = 0.1
DRAWS = 200
#: draws the naive loop is timed on (then scaled to DRAWS)
LOOP_DRAWS = 20
#: segments and segments per component of each market
MARKETS = {"uncoupled": (10_000, (1, 1)), "coupled": (1_000, (2, 20))}
#: the simulated nightly market: segments and mean jobs per segment-week (thin)
NIGHTLY_SEGMENTS, NIGHTLY_JOBS = 1_500, 2.0


def curves_of(market: Market, std_error: float) -> CurveSet:
    """Curves with the same standard error on every side of every segment."""
    keys = list(market.segment_keys)
    sides = [
        market.segments[keys].assign(side=side, std_error=std_error, flags="")
        for side in ("demand", "supply")
    ]
    return CurveSet(pd.concat(sides, ignore_index=True), tuple(keys), 0.9)


def draw_loop(market: Market, draws: int) -> None:
    """One drawn market built and cleared per draw (ε, η ~ N(fitted, 0.1²), rotated
    around the observed rate)."""
    rng = np.random.default_rng(SEED)
    seg = market.segments
    log_o = np.log(seg["observed_rate"])
    for _ in range(draws):
        eps = np.minimum(
            seg["demand_elasticity"] + STD_ERROR * rng.standard_normal(len(seg)), -1e-3
        )
        eta = np.maximum(seg["supply_elasticity"] + STD_ERROR * rng.standard_normal(len(seg)), 1e-3)
        drawn = seg.assign(
            demand_elasticity=eps,
            log_demand_level=seg["log_demand_level"] + (seg["demand_elasticity"] - eps) * log_o,
            supply_elasticity=eta,
            log_supply_level=seg["log_supply_level"] + (seg["supply_elasticity"] - eta) * log_o,
        )
        solve(Market(drawn, market.edges, market.segment_keys))


def case(kind: str) -> Case:
    """Guidance with DRAWS draws on the ``kind`` market, against the loop of solves."""
    segments, components = MARKETS[kind]
    market = random_market(segments, components, seed=SEED)  # no fees: rotations about log o
    start = solve(market.with_uncertainty(curves_of(market, STD_ERROR)))
    config = GuidanceConfig(draws=DRAWS)
    return Case(
        f"guidance.{kind}",
        {"segments": segments, "draws": DRAWS},
        lambda: rate_guidance(start, config),
        "one solve per draw",
        lambda: draw_loop(market, LOOP_DRAWS),
        baseline_scale=DRAWS / LOOP_DRAWS,
    )


@contextmanager
def cold_draws() -> Iterator[None]:
    """Band draws with every copy cleared from a cold start (the baseline): guidance's
    ``solve`` without the point solution as its start."""

    def cold(
        market: Market,
        baseline: EquilibriumResult | None = None,
        fallback: bool = True,
        executor: Executor = LOCAL,
    ) -> EquilibriumResult:
        return solve(market, fallback=fallback, executor=executor)

    with mock.patch.object(guidance, "solve", cold):
        yield


def nightly_case() -> Case:
    """The nightly run's guidance step on a simulated thin market, against cold draws."""
    from pricing.market.simulate import SimulationSpec, simulate_market
    from pricing.runs.pipeline import fitted_market

    spec = SimulationSpec(segments=NIGHTLY_SEGMENTS, seed=1, jobs_per_week=NIGHTLY_JOBS)
    with tempfile.TemporaryDirectory() as folder:
        data = simulate_market(spec).write(Path(folder) / "data")
        fitted = fitted_market(data)
    now = solve(fitted.market)
    later = solve(fitted.next_market, baseline=now)
    config = fitted.config.guidance

    def cold() -> guidance.Guidance:
        with cold_draws():
            return rate_guidance(now, config, forecast=later)

    return Case(
        "guidance.nightly",
        {"segments": NIGHTLY_SEGMENTS, "draws": config.draws, "band_sets": 2},
        lambda: rate_guidance(now, config, forecast=later),
        "the same draws, every copy cleared cold",
        cold,
        repeat=3,
    )
