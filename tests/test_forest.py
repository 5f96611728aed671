"""The forest finisher (:mod:`pricing.market.forest`): the exact equilibrium on a forest of
used rows, the active-set rounds, and the solver paths that use it — the cold solve of
every coupled component, small or large, the interior point's finisher on large
components and the warm start of what-ifs — against the interior point alone,
hand-solved markets and the convex program.

Tolerances (relative): the forest solves each tree's balance to its last digits, so its
rates sit at rounding (~1e-15). Two exact answers are held to 1e-9 (:data:`RATE_TOL`).
The interior point alone usually reaches ~1e-10 but stops at a few 1e-9 where it stalls
at rounding, so an answer is held to it by its own residual
(:func:`against_interior_point`); the convex program (Clarabel at 1e-12) to 1e-8, as in
``tests/test_connected.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st
from scipy.optimize import brentq
from test_connected import BOUNDED, SEEDS, SETTINGS, SIZES

import pricing.market.interior as interior
from pricing.market.equilibrium import (
    VERIFY_TOL,
    EquilibriumResult,
    _coupled_problem,
    residuals,
    solve,
)
from pricing.market.forest import Network, finish, solve_forest, spanning_forest
from pricing.market.market import Market
from pricing.market.synthetic import connected_market, random_market

# the forest's rates and wages against another exact answer: rounding, with a margin
RATE_TOL = 1e-9
# |ε| + η of the synthetic markets is at least 0.3 (DEMAND_ELASTICITY, SUPPLY_ELASTICITY)
_LEAST_SLOPE = 0.3
# a row's flow against its larger end's hours, the same margin
FLOW_TOL = 1e-8
# the forest's answer clears to rounding: verification's residuals sit far below its bar
EXACT = 1e-9


@contextmanager
def forests(cold_rounds: int, finisher_mu: float) -> Iterator[None]:
    """Solve with the cold forest's rounds and the finisher's μ given."""
    keep = interior._COLD_ROUNDS, interior._FOREST_MU
    interior._COLD_ROUNDS, interior._FOREST_MU = cold_rounds, finisher_mu
    try:
        yield
    finally:
        interior._COLD_ROUNDS, interior._FOREST_MU = keep


def interior_point_alone() -> AbstractContextManager[None]:
    """Neither the cold forest nor the finisher: the interior point and its polish."""
    return forests(0, 0.0)


def interior_point_first() -> AbstractContextManager[None]:
    """No cold forest: the interior point, finished on a forest once μ ≤ 1e-4."""
    return forests(0, interior._FOREST_MU)


def against_interior_point(market: Market, interior_point: EquilibriumResult) -> float:
    """Relative tolerance of rates and wages against the interior point alone: the
    forest's rounding (:data:`RATE_TOL`) plus the interior point's own error. It stops at
    a clearing residual r relative to hours, usually ~1e-10 but a few 1e-9 where it stalls
    at rounding (``connected_market(1512, seed=61)``: 4.7e-9, its rates 1.3e-9 from the
    forest's, whose residual is 9e-13), and hours off by r put a segment's rate off by
    about r / (|ε| + η)."""
    return RATE_TOL + float(residuals(market, interior_point).max()) / _LEAST_SLOPE


def verified(result: EquilibriumResult) -> EquilibriumResult:
    assert (result.status == "solved").all(), result.summary()
    assert residuals(result.market, result).max() <= VERIFY_TOL
    return result


def settles_cold_at_the_rates_of(
    market: Market, path: AbstractContextManager[None]
) -> EquilibriumResult:
    """A cold solve settles every component as a forest (no interior-point iteration),
    exactly (every residual ≤ :data:`EXACT`), at the rates and wages of the interior point
    on ``path`` (:func:`against_interior_point`), whose verified answer is returned."""
    forest = verified(solve(market))
    with path:
        interior_point = verified(solve(market))
    assert forest.iterations.max() == 0 < interior_point.iterations.max()
    rtol = against_interior_point(market, interior_point)
    np.testing.assert_allclose(forest.rate, interior_point.rate, rtol=rtol)
    np.testing.assert_allclose(forest.wage, interior_point.wage, rtol=rtol)
    assert residuals(market, forest).max() <= EXACT
    return interior_point


def shifted(market: Market, category: str = "c0", factor: float = 1.1) -> Market:
    """Demand × ``factor`` in one category: a what-if that moves a few rows."""
    segments = market.segments.copy()
    segments.loc[segments["category"] == category, "log_demand_level"] += np.log(factor)
    return Market(segments, market.edges)


# --------------------------------------------------------------------------- by hand
def _two_segments(friction: float) -> Market:
    """Segment 0 with cheap supply, segment 1 with rich demand; pool 0 may serve 1."""
    segments = pd.DataFrame(
        {
            "category": ["c0", "c1"],
            "tier": "t",
            "demand_elasticity": [-1.0, -0.5],
            "log_demand_level": np.log([200.0, 400.0]) + np.log([20.0, 40.0]) * [1.0, 0.5],
            "supply_elasticity": [1.5, 0.8],
            "log_supply_level": np.log([400.0, 200.0]) - np.log([20.0, 40.0]) * [1.5, 0.8],
        }
    )
    edges = pd.DataFrame({"pool": [0], "segment": [1], "friction": [friction]})
    return Market(segments, edges)


def test_one_tree_clears_at_its_hand_solved_rate_from_the_uncoupled_rows() -> None:
    """Pool 0 serving segment 1 at τ = 3 joins both segments into one tree with
    p_0 = w_0 = t, p_1 = w_1 = t + 3, clearing where D_0(t) + D_1(t + 3) = S_0(t) +
    S_1(t + 3) (brentq to 1e-15). Started from the uncoupled rows (home edges only),
    the edge pays, enters in the first round, and the answer is that t to rounding
    (1e-12 relative), with the edge carrying D_1 − S_1 at t + 3."""
    market = _two_segments(3.0)

    def excess(t: float) -> float:
        p = np.array([t, t + 3.0])
        return float(market.demand_hours(p).sum() - market.supply_hours(p).sum())

    t = brentq(excess, 1.0, 100.0, xtol=1e-15, rtol=1e-15)
    p_star = market.uncoupled_rate()
    problem, _, _ = _coupled_problem(market, np.ones(2, bool), p_star, market.demand_hours(p_star))
    net = Network.build(problem)
    home = np.flatnonzero(net.head - net.tail == net.n)  # the home edges' rows
    answer = finish(
        net, spanning_forest(net, home, np.ones(home.size)), np.r_[p_star, p_star, 0.0], rounds=3
    )
    assert answer.settled.all() and answer.rounds == 1
    np.testing.assert_allclose(answer.price[2:4], [t, t + 3.0], rtol=1e-12)
    np.testing.assert_allclose(answer.price[:2], [t, t + 3.0], rtol=1e-12)
    at = np.array([t, t + 3.0])
    carried = market.demand_hours(at)[1] - market.supply_hours(at)[1]
    np.testing.assert_allclose(answer.flow[0], carried, rtol=1e-12)


def test_a_binding_cap_fixes_its_tree_through_the_ground() -> None:
    """A cap below the tree's clearing rate on segment 1: the cap row joins the tree to
    the ground, whose price is fixed, so p_1 = cap and p_0 = cap − τ exactly, and the
    ground takes up the shortage D − S of the whole tree."""
    cap = 20.0
    market = _two_segments(3.0)
    segments = market.segments.assign(rate_cap=[np.nan, cap])
    capped = Market(segments, market.edges)
    result = verified(solve(capped))
    np.testing.assert_allclose(result.rate, [cap - 3.0, cap], rtol=1e-12)
    prices = np.array([cap - 3.0, cap])
    gap = capped.demand_hours(prices).sum() - capped.supply_hours(prices).sum()
    np.testing.assert_allclose(result.shortage[1], gap, rtol=1e-12)


# --------------------------------------------------------------------------- properties
@SETTINGS
@given(n=SIZES, seed=SEEDS, bounded=BOUNDED)
@example(n=1512, seed=61, bounded=0.0)  # the interior point stalls at a residual of 4.7e-9
def test_the_equilibriums_own_rows_solve_to_it(n: int, seed: int, bounded: float) -> None:
    """The rows the interior point alone leaves used, given to the forest with every
    rate 5 % off: one solve (or a round or two for a degenerate row the interior point
    left undecided) returns its rates (:func:`against_interior_point`) and its flows to
    1e-8 of their hours."""
    market = connected_market(n, seed=seed, bounded_share=bounded)
    note(f"connected_market({n}, seed={seed}, bounded_share={bounded})")
    with interior_point_alone():
        reference = verified(solve(market))
    p_star = market.uncoupled_rate()
    problem, _, edge_ids = _coupled_problem(
        market, np.ones(n, bool), p_star, market.demand_hours(p_star)
    )
    net = Network.build(problem)
    ic, jf = np.flatnonzero(np.isfinite(problem.cap)), np.flatnonzero(np.isfinite(problem.floor))
    flow = np.r_[reference.flow[edge_ids], reference.home_flow, reference.shortage[ic],
                 reference.surplus[jf]]  # fmt: skip
    used = np.flatnonzero(flow > 1e-9 * net.hours)
    guess = 1.05 * np.r_[reference.wage, reference.rate, 0.0]
    answer = finish(net, spanning_forest(net, used, np.ones(used.size)), guess, rounds=5)
    assert answer.settled.all()
    rtol = against_interior_point(market, reference)
    np.testing.assert_allclose(answer.price[n : 2 * n], reference.rate, rtol=rtol)
    np.testing.assert_allclose(answer.price[:n], reference.wage, rtol=rtol)
    assert np.abs(answer.flow - flow).max() <= FLOW_TOL * net.hours.max()
    assert (np.abs(answer.flow - flow) <= FLOW_TOL * net.hours).all()


@SETTINGS
@given(n=st.integers(600, 2000), seed=SEEDS, bounded=BOUNDED)
def test_a_cold_solve_settles_as_a_forest_from_the_uncoupled_rows(
    n: int, seed: int, bounded: float
) -> None:
    """Cold, a component above the dense limit (512 segments) starts from the uncoupled
    solution (every segment on its home edge) as a forest; the random pivot rule
    settles it without an interior-point iteration, exactly (every verification
    residual ≤ 1e-9), at the rates of an independent path (1e-9): the interior point
    from its own cold start, which hands the rows it has decided to the forest once
    μ ≤ 1e-4 (its finisher; then exact too)."""
    market = connected_market(n, seed=seed, bounded_share=bounded)
    note(f"connected_market({n}, seed={seed}, bounded_share={bounded})")
    interior_point = settles_cold_at_the_rates_of(market, interior_point_first())
    assert residuals(market, interior_point).max() <= EXACT


@pytest.mark.parametrize("rounds", [1, 5])
def test_components_the_cold_forest_leaves_resume_in_the_interior_point(rounds: int) -> None:
    """Cut short after 1 or 5 rounds, the cold forest leaves its component unsettled; the
    interior point solves it from its own cold start, to the answer of the interior point
    alone with its finisher (1e-9)."""
    market = connected_market(1500, seed=3, bounded_share=0.1)
    with forests(rounds, interior._FOREST_MU):
        resumed = verified(solve(market))
    with interior_point_first():
        cold = verified(solve(market))
    assert resumed.iterations.max() > 0  # the hand-off happened
    np.testing.assert_allclose(resumed.rate, cold.rate, rtol=RATE_TOL)


@SETTINGS
@given(n=SIZES, seed=SEEDS, bounded=BOUNDED, factor=st.sampled_from([0.7, 1.1, 1.5]))
def test_a_whatif_settles_as_a_forest_at_the_cold_answer(
    n: int, seed: int, bounded: float, factor: float
) -> None:
    """Demand × 0.7, 1.1 or 1.5 in one category: the baseline's forest settles the
    changed component without an interior-point iteration, at the cold solve's rates
    (:func:`against_interior_point`) — the cold one by the interior point alone, an
    independent path."""
    market = connected_market(n, seed=seed, bounded_share=bounded)
    note(f"connected_market({n}, seed={seed}, bounded_share={bounded}); demand × {factor}")
    base = verified(solve(market))
    what = shifted(market, factor=factor)
    warm = verified(solve(what, baseline=base))
    with interior_point_alone():
        cold = verified(solve(what))
    np.testing.assert_allclose(warm.rate, cold.rate, rtol=against_interior_point(what, cold))
    assert warm.iterations.max() == 0
    assert residuals(what, warm).max() <= EXACT


# --------------------------------------------------------------------------- oracle
@pytest.mark.parametrize("seed", [0, 1])
def test_a_whatif_by_the_forest_agrees_with_the_convex_program(seed: int) -> None:
    """200 connected segments (seed 1: 10 % bounded), demand +10 % in one category,
    solved from the baseline's forest and by the convex program: where Clarabel solves
    the rates agree to 1e-8 (Clarabel at 1e-12 reaches ~1e-9), where SCS answers to
    verification's 1e-6 (as in ``tests/test_connected.py``)."""
    market = connected_market(200, seed=seed, bounded_share=0.1 * seed)
    what = shifted(market)
    ours = verified(solve(what, baseline=solve(market)))
    assert ours.iterations.max() == 0
    reference = solve(what, method="cvxpy")
    assert reference.ok
    for status, rtol in {"solved": 1e-8, "solved_fallback": 1e-6}.items():
        chosen = reference.status == status
        np.testing.assert_allclose(ours.rate[chosen], reference.rate[chosen], rtol=rtol)


# --------------------------------------------------------------------------- the solve
def test_a_forest_with_a_long_path_is_solved_level_by_level() -> None:
    """A path of 3,001 nodes (a chain market: pool i serves segment i + 1 and its own)
    is one tree 3,000 levels deep; its prices climb by τ per step and its flows are the
    subtree sums, each node balanced to rounding."""
    n = 1500
    segments = pd.DataFrame(
        {
            "category": [f"c{i}" for i in range(n)],
            "tier": "t",
            "demand_elasticity": -1.0,
            "log_demand_level": np.log(1000.0),
            "supply_elasticity": 1.0,
            "log_supply_level": np.log(10.0) + np.linspace(1.0, 0.0, n),
        }
    )
    a = np.arange(n - 1)
    market = Market(segments, pd.DataFrame({"pool": a, "segment": a + 1, "friction": 1e-3}))
    p_star = market.uncoupled_rate()
    problem, _, _ = _coupled_problem(market, np.ones(n, bool), p_star, market.demand_hours(p_star))
    net = Network.build(problem)
    every = np.arange(net.tail.size)  # the chain's rows and the home rows: one tree
    forest = spanning_forest(net, every, np.ones(every.size))
    assert forest.rows.size == every.size
    price, flow, _, cleared = solve_forest(net, forest, np.r_[p_star, p_star, 0.0])
    assert cleared.all()
    reduced = price[net.tail] - price[net.head] + net.const
    assert np.abs(reduced).max() <= 1e-12 * price.max()
    node = np.arange(net.nodes - 1)
    need = net.requirement(price[node], node)[0]  # D of a segment, −S of a pool
    inflow = np.bincount(net.head, flow, net.nodes) - np.bincount(net.tail, flow, net.nodes)
    np.testing.assert_allclose(inflow[:-1], need, rtol=1e-9, atol=1e-9 * np.abs(need).max())


# --------------------------------------------------------------------------- small components
#: markets of small components: 300–3,000 segments in components of 2–4, 2–50 or 10
SMALL_MARKETS = given(
    n=st.integers(300, 3000),
    sizes=st.sampled_from([(2, 4), (2, 50), (10, 10)]),
    seed=SEEDS,
    bounded=BOUNDED,
)


@SETTINGS
@SMALL_MARKETS
def test_small_components_settle_cold_as_forests_at_the_interior_points_rates(
    n: int, sizes: tuple[int, int], seed: int, bounded: float
) -> None:
    """Components of 2–50 segments (issue 18's small-component market), cold: the forest
    from the uncoupled rows settles every component without an interior-point iteration,
    exactly (every verification residual ≤ 1e-9), at the rates and wages of the interior
    point alone from its own cold start (:func:`against_interior_point`)."""
    market = random_market(n, sizes, seed=seed, bounded_share=bounded)
    note(f"random_market({n}, {sizes}, seed={seed}, bounded_share={bounded})")
    settles_cold_at_the_rates_of(market, interior_point_alone())


@pytest.mark.parametrize("bounded", [0.0, 0.2])
def test_small_components_with_fees_agree_with_the_convex_program(bounded: float) -> None:
    """300 segments with fees in components of 10 (20 % bounded: floors and caps), cold by
    the forest and by the convex program: where Clarabel solves the rates agree to 1e-8
    (Clarabel at 1e-12 reaches ~1e-9), where SCS answers to verification's 1e-6."""
    market = connected_market(300, seed=4, component_size=10, bounded_share=bounded)
    ours = verified(solve(market))
    assert ours.iterations.max() == 0
    if bounded:
        assert (ours.shortage > 0).any() and (ours.surplus > 0).any()  # bounds bind
    reference = solve(market, method="cvxpy")
    assert reference.ok
    for status, rtol in {"solved": 1e-8, "solved_fallback": 1e-6}.items():
        chosen = reference.status == status
        np.testing.assert_allclose(ours.rate[chosen], reference.rate[chosen], rtol=rtol)
        np.testing.assert_allclose(ours.wage[chosen], reference.wage[chosen], rtol=rtol)


def test_an_exactly_indifferent_edge_leaves_the_uncoupled_rates() -> None:
    """Pool 0 may serve segment 1 at τ = p*_1 − p*_0: at the uncoupled rates the edge is
    exactly indifferent (reduced cost 0 up to the rounding of τ), so it carries nothing
    and both segments keep their own clearing rates (1e-12), by the forest from the
    uncoupled rows and by the interior point alone, whose answer must come out of its
    polish for this degenerate row (1e-9)."""
    base = _two_segments(0.0)
    p_star = base.uncoupled_rate()
    assert p_star[1] > p_star[0]
    edges = pd.DataFrame({"pool": [0], "segment": [1], "friction": [p_star[1] - p_star[0]]})
    market = Market(base.segments, edges)
    forest = verified(solve(market))
    assert forest.iterations.max() == 0
    np.testing.assert_allclose(forest.rate, p_star, rtol=1e-12)
    np.testing.assert_allclose(forest.wage, p_star, rtol=1e-12)
    assert abs(forest.flow[0]) <= 1e-12 * market.demand_hours(p_star).max()
    with interior_point_alone():
        interior_point = verified(solve(market))
    rtol = against_interior_point(market, interior_point)
    np.testing.assert_allclose(interior_point.rate, forest.rate, rtol=rtol)


def _tied_pools(cycle: bool) -> Market:
    """Segments 0 and 1 identical and cheap, segments 2 (and 3) rich; pools 0 and 1 both
    serve segment 2 (and, with ``cycle``, segment 3 too) at zero friction: the two pools'
    wages tie, and with ``cycle`` the used rows close a cycle (pool 0 → 2 ← pool 1 → 3 ←
    pool 0), so the flows are not unique, the rates are."""
    segments = pd.DataFrame(
        {
            "category": ["c0", "c1", "c2", "c3"],
            "tier": "t",
            "demand_elasticity": [-1.0, -1.0, -0.5, -0.8],
            "log_demand_level": np.log([100.0, 100.0, 900.0, 700.0]) + np.log(20.0),
            "supply_elasticity": [1.2, 1.2, 0.6, 0.9],
            "log_supply_level": np.log([400.0, 400.0, 100.0, 80.0]) - np.log(20.0),
        }
    )
    pool, segment = [0, 1], [2, 2]
    if cycle:
        pool, segment = [0, 1, 0, 1], [2, 2, 3, 3]
    return Market(segments, pd.DataFrame({"pool": pool, "segment": segment, "friction": 0.0}))


@pytest.mark.parametrize("cycle", [False, True])
def test_zero_friction_ties_settle_at_the_interior_points_rates(cycle: bool) -> None:
    """Two identical pools serving the same rich segments at zero friction: their wages
    tie at the rich segments' rate (zero friction: w = p on every used row), the cheap
    segments' rates equal (identical curves), and the rates agree with the interior
    point alone (1e-9). With a cycle of used rows the flows are not unique (the forest
    leaves one row of the cycle idle): only verification holds them."""
    market = _tied_pools(cycle)
    forest = verified(solve(market))
    assert forest.iterations.max() == 0
    assert residuals(market, forest).max() <= EXACT
    rich = [2, 3] if cycle else [2]
    np.testing.assert_allclose(forest.wage[[0, 1]], forest.rate[rich[0]], rtol=1e-12)
    np.testing.assert_allclose(forest.rate[0], forest.rate[1], rtol=1e-12)
    with interior_point_alone():
        interior_point = verified(solve(market))
    rtol = against_interior_point(market, interior_point)
    np.testing.assert_allclose(forest.rate, interior_point.rate, rtol=rtol)
    np.testing.assert_allclose(forest.wage, interior_point.wage, rtol=rtol)
