r"""Benchmark: connected markets (issue 18), whose one component of 10^4–10^5 segments
the forest solves from the uncoupled rows (the interior point, on sparse linear algebra,
takes what it leaves), and small components, which take the same path.

Markets come from :func:`pricing.market.synthetic.connected_market` (seeded setup, not
timed): one component, a random spanning tree plus about one extra edge per segment,
fees, frictions up to 15 % of the rate. Each case runs through the suite's harness
(:func:`pricing.bench.harness.measure`): a warm-up, then the case and its baseline timed
interleaved, medians and min–max, ``ratio = median / baseline median``. The solve's
own timings (closed form; ``interior``: the coupled components, forest and interior
point) are reported per case, with the largest verification residual and the interior
point's iterations (0 where the forest settled everything). The problem's structure (the
forest's network, the interior point's pairs, classes and sparse pattern) is built
inside that time; the one compile, numba's of the compiled rounds at a process's first
solve, happens in the warm-up and is timed by ``connected.compile``.

- ``connected.cut``: ``solve`` of 10^4 connected segments; baseline: the same segments
  cut into components of 10 (``component_size=10``), what the engine already did well;
  target ≤ 5×.
- ``connected.large``: ``solve`` of 10^5 connected segments; baseline: the closed-form
  kernel on the same segments (the floor of any clearing method); target under 3 s.
- ``connected.small``: ``solve`` of 10^5 segments in components of 2–50
  (bench_equilibrium's coupled market), every component settled by the cold forest's
  rounds, compiled (:mod:`pricing.market.pivots`); baseline: the closed-form kernel;
  target ≤ 150× (measured 790× at load ~2.7 with the vectorized rounds, 0.55 s against
  0.69 ms; the interior point alone took 1.78 s, 2,470×).
- ``connected.compile``: the compile of those compiled rounds, apart from any solve: a
  fresh process solves 2,000 segments in components of 2–50 twice with an empty numba
  cache (its first solve compiles; ``first_solve − second_solve`` is the compile);
  baseline: the same with the cache beside the module (the first solve loads it).
- ``connected.whatif``: ``solve(shifted, baseline=base)`` after demand +10 % in one
  category of the connected 10^5 market, warm-started; baseline: a cold solve of the
  same shifted market; target under 0.5 s.

- ``connected.nightly``: ``pricing run`` (a fresh process, no plan: budget 0) on a
  connected simulated market of 10^4 segments (``pricing simulate --segments 10000
  --cross-family-edges 1 --tier-moves 0.5 --jobs-per-week 5``, 104 weeks);
  baseline: the same run on the same spec without the connections (skill families of
  12 categories, the market the simulator made before). It raises if the run reports a
  degraded segment.

Every solve is checked (``ok`` and max residual ≤ 1e-6) before it is timed.
``pricing bench --only connected`` runs it; ``--quick`` the cut case at 10^3 only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pricing.bench.equilibrium import closed_form_kernel, kernel_inputs
from pricing.bench.harness import Case
from pricing.bench.paths import cache_dir
from pricing.bench.run import no_plan_config, one_run
from pricing.market.equilibrium import VERIFY_TOL, EquilibriumResult, solve
from pricing.market.market import Market
from pricing.market.simulate import SimulationSpec, simulate_market
from pricing.market.synthetic import connected_market, random_market

SEED = 11
CUT = 10  # segments per component of the cut baseline


@cache
def market(n: int, component_size: int | None = None) -> Market:
    return connected_market(n, seed=SEED, component_size=component_size)


#: the nightly case's simulated market: 10^4 segments, one component when connected
NIGHTLY = SimulationSpec(segments=10_000, weeks=104, seed=1, jobs_per_week=5.0)
NIGHTLY_CONNECTIONS: dict[str, Any] = {"cross_family_edges": 1.0, "tier_moves": 0.5}


def nightly_dir(connected: bool) -> Path:
    """The nightly case's data directory (with a no-plan pricing.toml), written once."""
    target = cache_dir() / f"nightly_{NIGHTLY.segments}_{'connected' if connected else 'families'}"
    if not target.exists():
        spec = replace(NIGHTLY, **(NIGHTLY_CONNECTIONS if connected else {}))
        start = time.perf_counter()
        market = simulate_market(spec)
        market.write(target)
        print(f"simulated {target.name} in {time.perf_counter() - start:.0f} s -> {target}")
    no_plan_config(target)
    return target


def clean_run(data: Path) -> dict[str, Any]:
    """The nightly run on ``data`` without its plan; one that reports a degraded segment
    is no benchmark of a run that completes."""
    result = one_run(data, data / "pricing.no-plan.toml")
    if result["degraded"]:
        raise RuntimeError(f"the nightly run on {data} is degraded: {result['degraded']}")
    return result


#: a fresh process: 2,000 segments in components of 2–50 solved twice, each solve timed
_TWICE = """
import json, time
from pricing.market.equilibrium import solve
from pricing.market.synthetic import random_market
market = random_market(2000, (2, 50), seed=5)
times = []
for _ in range(2):
    start = time.perf_counter()
    solve(market)
    times.append(time.perf_counter() - start)
print(json.dumps({"first_solve": times[0], "second_solve": times[1]}))
"""


def solved_twice(empty_cache: bool) -> dict[str, float]:
    """:data:`_TWICE` in a fresh process, with an empty numba cache (the first solve
    compiles) or the one beside the module (the first solve loads it)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache} if empty_cache else None
        out = subprocess.run(
            [sys.executable, "-c", _TWICE], env=env, capture_output=True, text=True, check=True
        )
    times: dict[str, float] = json.loads(out.stdout)
    times["compile"] = times["first_solve"] - times["second_solve"]
    return times


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
    yield Case(
        "connected.compile",
        {"segments": 2_000, "components": "2-50"},
        lambda: solved_twice(empty_cache=True),
        "the same process loading the cache",
        lambda: solved_twice(empty_cache=False),
        repeat=1,
        warmup=False,
        details=lambda times: times,
        baseline_details=lambda times: times,
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
    connected, families = nightly_dir(True), nightly_dir(False)
    yield Case(
        "connected.nightly",
        {"segments": NIGHTLY.segments, "plan": False},
        lambda: clean_run(connected),
        "the same run without the connections (skill families)",
        lambda: clean_run(families),
        repeat=1,
        warmup=False,
        details=lambda result: dict(result["steps"]),
        baseline_details=lambda result: dict(result["steps"]),
        peak_mb=lambda result: float(result["peak_mb"]),
    )
