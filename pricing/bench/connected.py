r"""Benchmark: connected markets (issue 18), whose one component of 10^4–10^5 segments
the interior point solves on sparse linear algebra.

Markets come from :func:`pricing.market.synthetic.connected_market` (seeded setup, not
timed): one component, a random spanning tree plus about one extra edge per segment,
fees, frictions up to 15 % of the rate. Each case runs through the suite's harness
(:func:`pricing.bench.harness.measure`): a warm-up, then the case and its baseline timed
interleaved, medians and min–max, ``ratio = median / baseline median``. The solve's
own timings (closed form, interior point) are reported per case, with the largest
verification residual and the interior point's iterations; there is no compile phase
(the problem's structure — pairs, classes, the sparse pattern — is built inside the
interior point's time).

- ``connected.cut``: ``solve`` of 10^4 connected segments; baseline: the same segments
  cut into components of 10 (``component_size=10``), what the engine already did well;
  target ≤ 5×.
- ``connected.large``: ``solve`` of 10^5 connected segments; baseline: the closed-form
  kernel on the same segments (the floor of any clearing method); target under 3 s.
- ``connected.small``: ``solve`` of 10^5 segments in components of 2–50
  (bench_equilibrium's coupled market); baseline: the closed-form kernel; target ≤ 150×.
- ``connected.whatif``: ``solve(shifted, baseline=base)`` after demand +10 % in one
  category of the connected 10^5 market, warm-started; baseline: a cold solve of the
  same shifted market; target under 0.5 s.

Every solve is checked (``ok`` and max residual ≤ 1e-6) before it is timed.
``pricing bench --only connected`` runs it; ``--quick`` the cut case at 10^3 only.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import numpy as np

from pricing.bench.equilibrium import closed_form_kernel, kernel_inputs
from pricing.bench.harness import Case
from pricing.market.equilibrium import VERIFY_TOL, EquilibriumResult, solve
from pricing.market.market import Market
from pricing.market.synthetic import connected_market, random_market

SEED = 11
CUT = 10  # segments per component of the cut baseline


@cache
def market(n: int, component_size: int | None = None) -> Market:
    return connected_market(n, seed=SEED, component_size=component_size)


def checked(result: EquilibriumResult) -> EquilibriumResult:
    """A solve that is not verified to 1e-6 is no benchmark of a solver."""
    worst = float(result.residual.max())
    if not result.ok or worst > VERIFY_TOL:
        raise RuntimeError(f"unverified solve (max residual {worst:.1e}): {result.summary(0)}")
    return result


def details(result: EquilibriumResult) -> dict[str, float]:
    out = {k: v for k, v in result.timings.items() if not k.endswith("segments")}
    out["max_residual"] = float(result.residual.max())
    out["iterations"] = float(result.iterations.max())
    return out


def shifted(base: Market) -> Market:
    """Demand +10 % in one category (the first)."""
    segments = base.segments.copy()
    segments.loc[segments["category"] == segments["category"].iloc[0], "log_demand_level"] += (
        np.log(1.1)
    )
    return Market(segments, base.edges, base.segment_keys)


def cases(quick: bool) -> Iterator[Case]:
    """The stage's cases (``quick``: the cut case at 10^3 only, for CI's smoke test)."""
    n_cut = 1_000 if quick else 10_000
    whole, cut = market(n_cut), market(n_cut, CUT)
    checked(solve(whole))
    checked(solve(cut))
    yield Case(
        "connected.cut",
        {"segments": n_cut, "cut_into": CUT},
        lambda: solve(whole),
        f"the same segments in components of {CUT}",
        lambda: solve(cut),
        details=details,
        baseline_details=details,
    )
    if quick:
        return
    large = market(100_000)
    base = checked(solve(large))
    inputs = kernel_inputs(large)
    yield Case(
        "connected.large",
        {"segments": 100_000},
        lambda: solve(large),
        "closed form",
        lambda: closed_form_kernel(inputs),
        repeat=1,
        details=details,
    )
    small = random_market(100_000, (2, 50), seed=5)
    small_inputs = kernel_inputs(small)
    checked(solve(small))
    yield Case(
        "connected.small",
        {"segments": 100_000, "components": "2-50"},
        lambda: solve(small),
        "closed form",
        lambda: closed_form_kernel(small_inputs),
        details=details,
    )
    what_if = shifted(large)
    checked(solve(what_if, baseline=base))
    yield Case(
        "connected.whatif",
        {"segments": 100_000, "categories_changed": 1},
        lambda: solve(what_if, baseline=base),
        "cold solve",
        lambda: solve(what_if),
        repeat=1,
        warmup=False,
        details=details,
        baseline_details=details,
    )
