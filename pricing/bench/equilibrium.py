r"""Stage ``equilibrium``: clearing uncoupled and coupled markets.

Markets come from :func:`pricing.market.synthetic.random_market` (seeded; setup, not
timed): elasticities uniform over ε ∈ [−3, −0.2] and η ∈ [0.1, 3], rates and volumes
spread over orders of magnitude; uncoupled, or coupled in components of 2–50 segments
joined by a random spanning tree plus about one extra edge per segment (frictions up to
20 % of the rate). Each market is cleared by

- ``auto``: :func:`pricing.market.equilibrium.solve`, the engine's default (closed form
  or the batched interior point, then verification and the result object: what a user
  gets); the solve's own timings are kept as the record's details;
- ``cvxpy``: ``solve(method="cvxpy")``, the convex program (Clarabel at 1e-11), with
  cvxpy's compile time and the solver's time reported apart;
- ``loop``: the naive way, one cvxpy problem per segment (uncoupled) or per component
  (coupled), timed on the first :data:`LOOP_SEGMENTS` segments and scaled to all.

The baseline of all three, measured in the same run, is the **floor**: the closed-form
numpy kernel on the same segments, log p* and the cleared hours and nothing else. No
method clears a segment with less arithmetic (an uncoupled market cannot be cleared with
less work, a coupled one needs at least this per segment), so ``auto / floor`` is the
price of generality (coupling, bounds, verification, the result), and should stay a
small constant on uncoupled markets. That ``auto`` and ``cvxpy`` agree is checked by
``tests/reference/test_equilibrium_reference.py``, not here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import numpy as np

from pricing.bench.harness import Case
from pricing.market.equilibrium import EquilibriumResult, _coupled_problem, solve
from pricing.market.market import Market
from pricing.market.synthetic import random_market
from pricing.market.welfare import solve_welfare

SEED = 5
#: segments per component: uncoupled, and coupled
COMPONENTS = {"uncoupled": (1, 1), "coupled": (2, 50)}
#: segments the per-component loop is timed on (then scaled to all)
LOOP_SEGMENTS = 100


def closed_form_kernel(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """log p* = (l_D − l_S + ε log(1+f_c) − η log(1−f_f)) / (η − ε), q* = D(p*)."""
    eps, eta = arrays["eps"], arrays["eta"]
    log_p = (arrays["ld"] - arrays["ls"] + eps * arrays["lfc"] - eta * arrays["lff"]) / (eta - eps)
    return np.exp(log_p), np.exp(arrays["ld"] + eps * (log_p + arrays["lfc"]))


def kernel_inputs(market: Market) -> dict[str, np.ndarray]:
    return {
        "eps": market.array("demand_elasticity").copy(),
        "eta": market.array("supply_elasticity").copy(),
        "ld": market.array("log_demand_level").copy(),
        "ls": market.array("log_supply_level").copy(),
        "lfc": np.log1p(market.array("client_fee")),
        "lff": np.log1p(-market.array("freelancer_fee")),
    }


def component_loop(market: Market, max_segments: int) -> int:
    """One cvxpy problem per component (a segment when uncoupled), over the first
    components up to ``max_segments`` segments; returns the segments done."""
    comp = market.component
    p_star = market.uncoupled_rate()
    h_star = market.demand_hours(p_star)
    done = 0
    for c in range(int(comp.max()) + 1):
        chosen = comp == c
        problem, _, _ = _coupled_problem(market, chosen, p_star, h_star)
        solve_welfare(problem)
        done += int(chosen.sum())
        if done >= max_segments:
            break
    return done


def _solve_parts(result: EquilibriumResult) -> dict[str, float]:
    """A solve's own timings that are seconds (not counts), in the order it ran them."""
    return {k: v for k, v in result.timings.items() if not k.endswith("segments")}


def _cvxpy_split(result: EquilibriumResult) -> tuple[float, float]:
    return result.timings["clarabel_compile"], result.timings["clarabel_solve"]


def cases(kind: str, segments: int, methods: Collection[str]) -> Iterator[Case]:
    """``equilibrium.<kind>.<method>`` for each of ``methods`` (auto, cvxpy, loop) on one
    market of ``segments`` segments, each against the closed-form floor."""
    market = random_market(segments, COMPONENTS[kind], seed=SEED)
    inputs = kernel_inputs(market)

    def floor() -> Any:
        return closed_form_kernel(inputs)

    params = {"segments": segments}
    if "auto" in methods:
        yield Case(
            f"equilibrium.{kind}.auto",
            params,
            lambda: solve(market),
            "closed form",
            floor,
            details=_solve_parts,
        )
    if "cvxpy" in methods:
        yield Case(
            f"equilibrium.{kind}.cvxpy",
            params,
            lambda: solve(market, method="cvxpy"),
            "closed form",
            floor,
            split=_cvxpy_split,
            repeat=1 if segments > 1_000 else None,
        )
    if "loop" in methods:
        yield Case(
            f"equilibrium.{kind}.loop",
            params,
            lambda: component_loop(market, LOOP_SEGMENTS),
            "closed form",
            floor,
            run_scale=segments / LOOP_SEGMENTS,
            repeat=1,
            warmup=False,
        )
