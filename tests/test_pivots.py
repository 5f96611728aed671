"""The compiled rounds (:mod:`pricing.market.pivots`) against the vectorized ones
(:func:`pricing.market.forest.finish`): the same method on the same markets, so the same
exact equilibrium, whichever path a component takes.

Tolerances (relative): both paths solve every tree's balance to its last digits (~1e-15),
so two answers are held to each other at 1e-9 (``RATE_TOL`` of ``tests/test_forest.py``)
and flows to 1e-8 of their rows' hours (``FLOW_TOL``); each answer is verified to 1e-9
(``EXACT``: an exact answer's residuals sit at rounding). Against the interior point and
the convex program the compiled path is held by ``tests/test_forest.py`` and
``tests/test_connected.py``, which now run through it (their markets' components are
below :data:`pricing.market.pivots.COMPILED_NODES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, note
from test_connected import BOUNDED, SEEDS, SETTINGS, SIZES
from test_forest import EXACT, FLOW_TOL, RATE_TOL, SMALL_MARKETS, verified

import pricing.market.forest as forest
import pricing.market.pivots as pivots
from pricing.market.equilibrium import EquilibriumResult, _coupled_problem, residuals, solve
from pricing.market.forest import FloatArray, IntArray, Network, finish, spanning_forest
from pricing.market.market import Market
from pricing.market.synthetic import connected_market, random_market


@contextmanager
def compiled_up_to(nodes: int) -> Iterator[None]:
    """Components of at most ``nodes`` nodes take the compiled rounds (0: none)."""
    keep = pivots.COMPILED_NODES
    pivots.COMPILED_NODES = nodes
    try:
        yield
    finally:
        pivots.COMPILED_NODES = keep


def cold(market: Market) -> EquilibriumResult:
    """A verified cold solve that the rounds settled alone (no interior-point iteration),
    exactly."""
    result = verified(solve(market))
    assert result.iterations.max() == 0
    assert residuals(market, result).max() <= EXACT
    return result


def both_paths_agree(market: Market) -> None:
    """Cold, the compiled and the vectorized rounds both settle ``market`` exactly, at
    the same rates, wages and flows."""
    compiled = cold(market)
    with compiled_up_to(0):
        vectorized = cold(market)
    same_answer(compiled, vectorized)


def home_start(market: Market) -> tuple[Network, IntArray, FloatArray]:
    """``market``'s network, its home rows (the uncoupled forest) and the uncoupled
    prices per node."""
    p_star = market.uncoupled_rate()
    problem, _, _ = _coupled_problem(
        market, np.ones(len(market), bool), p_star, market.demand_hours(p_star)
    )
    net = Network.build(problem)
    return net, np.flatnonzero(net.head - net.tail == net.n), np.r_[p_star, p_star, 0.0]


def same_answer(a: EquilibriumResult, b: EquilibriumResult) -> None:
    np.testing.assert_allclose(a.rate, b.rate, rtol=RATE_TOL)
    np.testing.assert_allclose(a.wage, b.wage, rtol=RATE_TOL)
    hours = np.maximum(a.market.demand_hours(a.rate), a.market.supply_hours(a.wage))
    np.testing.assert_allclose(a.home_flow, b.home_flow, rtol=0, atol=FLOW_TOL * hours.max())


@SETTINGS
@given(n=SIZES, seed=SEEDS, bounded=BOUNDED)
def test_a_connected_market_settles_alike_on_both_paths(n: int, seed: int, bounded: float) -> None:
    """One component of 200–2,000 segments (fees, frictions, 10 % bounded or none),
    cold: the compiled rounds and the vectorized ones both settle it exactly, at the same
    rates, wages and flows."""
    market = connected_market(n, seed=seed, bounded_share=bounded)
    note(f"connected_market({n}, seed={seed}, bounded_share={bounded})")
    both_paths_agree(market)


@SETTINGS
@SMALL_MARKETS
def test_small_components_settle_alike_on_both_paths(
    n: int, sizes: tuple[int, int], seed: int, bounded: float
) -> None:
    """Components of 2–50 segments, cold: both paths settle every one exactly, at the
    same answer."""
    market = random_market(n, sizes, seed=seed, bounded_share=bounded)
    note(f"random_market({n}, {sizes}, seed={seed}, bounded_share={bounded})")
    both_paths_agree(market)


def test_a_market_of_both_sizes_is_split_between_the_paths() -> None:
    """Components of 2–400 segments with the limit at 300 nodes: the small ones go
    compiled, the others vectorized, in one call of :func:`pivots.settle`; every component
    settles, at the answer of either path alone, prices to 1e-9 and flows to 1e-8 of
    their hours."""
    net, home, guess = home_start(random_market(4000, (2, 400), seed=3, bounded_share=0.1))
    nodes = 2 * np.bincount(net.comp[home])
    assert (nodes <= 300).any() and (nodes > 300).any()
    answers = {}
    for limit in (0, 300, 10**9):
        with compiled_up_to(limit):
            answers[limit] = pivots.settle(net, home, guess, rounds=100)
        assert answers[limit].settled.all()
    vectorized = finish(net, spanning_forest(net, home, np.ones(home.size)), guess, rounds=100)
    np.testing.assert_allclose(answers[0].price, vectorized.price, rtol=RATE_TOL)
    for limit in (300, 10**9):
        np.testing.assert_allclose(answers[limit].price, answers[0].price, rtol=RATE_TOL)
        gap = np.abs(answers[limit].flow - answers[0].flow)
        assert (gap <= FLOW_TOL * net.hours).all()


@pytest.mark.parametrize("limit", [0, pivots.COMPILED_NODES])
def test_rounds_cut_short_leave_the_component_unsettled_for_the_interior_point(
    limit: int,
) -> None:
    """One round is too few for a connected market of 1,500 segments: either path
    returns it unsettled, where it stopped, with no flow passed off as exact."""
    net, home, guess = home_start(connected_market(1500, seed=3, bounded_share=0.1))
    with compiled_up_to(limit):
        answer = pivots.settle(net, home, guess, rounds=1)
    assert not answer.settled.any() and answer.rounds == 1
    assert np.isfinite(answer.price).all()


@pytest.mark.parametrize(
    ("rounds", "spread"),
    [
        (range(forest.EARLY_ROUNDS), forest.EARLY_SPREAD),
        (range(forest.EARLY_ROUNDS, forest.EARLY_ROUNDS + 50), forest.SPREAD),
    ],
)
def test_the_pivot_factor_is_spread_around_one(rounds: range, spread: float) -> None:
    """The random factor of the pivot rule: over (round, row) pairs it lies in
    [1 − spread, 1 + spread), narrower in the first rounds, with mean 1 within five
    standard errors of a uniform's mean (2 · spread / √12 / √count)."""
    values = np.array([pivots._jitter(k, row) for k in rounds for row in range(200)])
    assert values.min() >= 1 - spread and values.max() < 1 + spread
    assert abs(values.mean() - 1.0) < 5 * 2 * spread / np.sqrt(12) / np.sqrt(values.size)
    assert np.unique(values).size == values.size


@pytest.mark.parametrize("seed", [0, 3, 4, 5])
def test_denser_components_settle_within_the_round_limit(seed: int) -> None:
    """10^4 segments in components of 2–50 with four extra edges a segment: every
    component settles in the compiled rounds within the cold solve's limit (100). A
    component stops only at the limit (module docstring): stopped after 15 rounds without
    fewer wrong rows, as the vectorized rounds stop the whole network, 2–6 components of
    each of these markets went to the interior point."""
    net, home, guess = home_start(random_market(10_000, (2, 50), seed=seed, extra_edges=4.0))
    answer = pivots.settle(net, home, guess, rounds=100)
    assert answer.settled.all()
