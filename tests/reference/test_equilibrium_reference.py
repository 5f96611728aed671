"""Equilibria solved by hand, checked on rates, wages (the duals), flows and the
optimality conditions, for the fast path (``auto``) and the convex program (``cvxpy``).

Tolerances: the closed form is exact to rounding (1e-12); the interior point stops at
clearing residuals of ~1e-11 of hours and rates to ~1e-10 (1e-8 leaves margin); the
convex program runs Clarabel at 1e-10 tolerances, which gives rates to ~1e-8 (1e-6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricing.market.equilibrium import solve
from pricing.market.market import Market

TOL = {"auto": 1e-8, "cvxpy": 1e-6}


def _market(
    eps: list[float],
    a: list[float],
    eta: list[float],
    b: list[float],
    edges: list[tuple[int, int, float]] = (),  # type: ignore[assignment]
    **columns: list[float],
) -> Market:
    """D_k(P) = a_k P^ε_k, S_k(W) = b_k W^η_k; edges (pool, segment, friction)."""
    n = len(eps)
    segments = pd.DataFrame(
        {
            "category": [f"c{i}" for i in range(n)],
            "tier": ["expert"] * n,
            "demand_elasticity": eps,
            "log_demand_level": np.log(a),
            "supply_elasticity": eta,
            "log_supply_level": np.log(b),
            **columns,
        }
    )
    frame = pd.DataFrame(edges, columns=["pool", "segment", "friction"])
    return Market(segments, frame.astype({"pool": np.int64, "segment": np.int64}))


# ----------------------------------------------------------------- fee wedge, bounds
# One segment, D(P) = 880/P, S(W) = 10 W, client fee 10 %, freelancer fee 20 %:
#   880 / (1.1 p) = 10 · 0.8 p  ⇒  p² = 880 / 8.8 = 100  ⇒  p = 10,
#   client rate 11, freelancer rate 8, hours 880/11 = 80 = 10 · 8.
FEES = {"client_fee": [0.1], "freelancer_fee": [0.2]}


@pytest.mark.parametrize("method", ["auto", "cvxpy"])
def test_fee_wedge(method: str) -> None:
    result = solve(_market([-1.0], [880.0], [1.0], [10.0], **FEES), method=method)  # type: ignore[arg-type]
    row = result.to_frame().iloc[0]
    tol = TOL[method]
    assert row["rate"] == pytest.approx(10.0, rel=tol)
    assert row["client_rate"] == pytest.approx(11.0, rel=tol)
    assert row["freelancer_rate"] == pytest.approx(8.0, rel=tol)
    assert row["hours"] == pytest.approx(80.0, rel=tol)
    assert row["shortage_hours"] == pytest.approx(0.0, abs=tol * 80)
    assert row["status"] == "solved"


# A cap of 8 binds: demand 880/(1.1·8) = 100, supply 10·0.8·8 = 64,
#   hours 64, shortage 36. A floor of 12 binds: demand 880/13.2 = 66.667,
#   supply 10·0.8·12 = 96, hours 66.667, surplus 29.333.
@pytest.mark.parametrize("method", ["auto", "cvxpy"])
@pytest.mark.parametrize(
    ("bound", "rate", "hours", "shortage", "surplus"),
    [
        ({"rate_cap": [8.0]}, 8.0, 64.0, 36.0, 0.0),
        ({"rate_floor": [12.0]}, 12.0, 880 / 13.2, 0.0, 96.0 - 880 / 13.2),
    ],
)
def test_binding_bound(
    method: str,
    bound: dict[str, list[float]],
    rate: float,
    hours: float,
    shortage: float,
    surplus: float,
) -> None:
    market = _market([-1.0], [880.0], [1.0], [10.0], **FEES, **bound)
    row = solve(market, method=method).to_frame().iloc[0]  # type: ignore[arg-type]
    tol = TOL[method]
    assert row["rate"] == pytest.approx(rate, rel=tol)
    assert row["hours"] == pytest.approx(hours, rel=tol)
    assert row["shortage_hours"] == pytest.approx(shortage, rel=tol, abs=tol * hours)
    assert row["surplus_hours"] == pytest.approx(surplus, rel=tol, abs=tol * hours)
    assert row["bound"] == ("cap" if shortage else "floor")


def test_slack_bounds_change_nothing() -> None:
    free = solve(_market([-1.0], [880.0], [1.0], [10.0], **FEES))
    bounded = solve(
        _market([-1.0], [880.0], [1.0], [10.0], **FEES, rate_floor=[5.0], rate_cap=[20.0])
    )
    assert bounded.rate[0] == pytest.approx(free.rate[0], rel=1e-12)
    assert bounded.to_frame()["bound"].iloc[0] == ""


# ----------------------------------------------------------------- coupled, two pools
# Segments 0 and 1, D_k(p) = a_k / p, S_k(w) = b_k w, no fees, one edge: pool 0 may
# serve segment 1 at friction τ = 4.  a = (960, 4000), b = (10, 5).
#
# Alone they would clear at p*_0 = √(960/10) = 9.80 and p*_1 = √(4000/5) = 28.28; the gap
# exceeds τ, so pool 0 sends hours to segment 1. Guess that every edge is used: then
#   w_0 = p_0 (home edge) = p_1 − τ (edge 0 → 1),   w_1 = p_1,
# and the whole component clears:  a_0/p_0 + a_1/p_1 = b_0 p_0 + b_1 p_1.  With
# p_0 = p_1 − 4 this is 960/(p_1 − 4) + 4000/p_1 = 10(p_1 − 4) + 5 p_1, solved by p_1 = 20:
#   960/16 + 4000/20 = 60 + 200 = 260 = 160 + 100.   So p = (16, 20), w = (16, 20).
# Flows from the node balances: segment 0 takes x_00 = D_0 = 60 from its own pool;
# pool 0 offers 160, so x_01 = 100 ≥ 0 (the guess holds); segment 1 needs 200 and gets
# x_11 = 200 − 100 = 100 = S_1(20) from pool 1. All flows are positive and every used
# edge has p_k − τ = w_j, so by convexity this is the equilibrium.
COUPLED = dict(eps=[-1.0, -1.0], a=[960.0, 4000.0], eta=[1.0, 1.0], b=[10.0, 5.0])


@pytest.mark.parametrize("method", ["auto", "cvxpy"])
def test_two_pool_coupled_market(method: str) -> None:
    market = _market(**COUPLED, edges=[(0, 1, 4.0)])  # type: ignore[arg-type]
    result = solve(market, method=method)  # type: ignore[arg-type]
    tol = TOL[method]
    np.testing.assert_allclose(result.rate, [16.0, 20.0], rtol=tol)
    np.testing.assert_allclose(result.wage, [16.0, 20.0], rtol=tol)
    np.testing.assert_allclose(result.home_flow, [60.0, 100.0], rtol=tol)
    np.testing.assert_allclose(result.flow, [100.0], rtol=tol)
    frame = result.to_frame()
    np.testing.assert_allclose(frame["hours"], [60.0, 200.0], rtol=tol)
    np.testing.assert_allclose(frame["supply_hours"], [160.0, 100.0], rtol=tol)
    edges = result.edges_frame()
    assert edges["reduced_cost"].abs().max() <= tol * 20  # p_1 − τ = w_0 on the used edge
    assert (result.status == "solved").all()


# The same market with the reverse edge 1 → 0 (τ = 3): it would pay p_0 − 3 = 13 < w_1 =
# 20, so it stays unused (reduced cost 20 − 16 + 3 = 7) and nothing else changes.
@pytest.mark.parametrize("method", ["auto", "cvxpy"])
def test_unused_edge_carries_nothing(method: str) -> None:
    market = _market(**COUPLED, edges=[(0, 1, 4.0), (1, 0, 3.0)])  # type: ignore[arg-type]
    result = solve(market, method=method)  # type: ignore[arg-type]
    tol = TOL[method]
    np.testing.assert_allclose(result.rate, [16.0, 20.0], rtol=tol)
    np.testing.assert_allclose(result.flow, [100.0, 0.0], rtol=tol, atol=tol * 100)
    np.testing.assert_allclose(result.edges_frame()["reduced_cost"], [0.0, 7.0], atol=tol * 20)


# A cap of 18 on segment 1 binds. Then p_1 = 18 and the edge must still be used (alone,
# pool 0 would clear at 9.80 < 18 − 4), so w_0 = p_0 = 14: segment 0 takes 960/14 =
# 68.571 from pool 0, which offers 140 and sends x_01 = 71.429 on; pool 1 offers
# 5 · 18 = 90. Segment 1 wants 4000/18 = 222.222 and gets 161.429: shortage 60.794.
@pytest.mark.parametrize("method", ["auto", "cvxpy"])
def test_cap_in_a_coupled_market(method: str) -> None:
    market = _market(**COUPLED, edges=[(0, 1, 4.0)], rate_cap=[np.nan, 18.0])  # type: ignore[arg-type]
    result = solve(market, method=method)  # type: ignore[arg-type]
    tol = TOL[method]
    np.testing.assert_allclose(result.rate, [14.0, 18.0], rtol=tol)
    np.testing.assert_allclose(result.wage, [14.0, 18.0], rtol=tol)
    np.testing.assert_allclose(result.flow, [140.0 - 960.0 / 14.0], rtol=tol)
    shortage = 4000.0 / 18.0 - 90.0 - (140.0 - 960.0 / 14.0)
    np.testing.assert_allclose(result.shortage, [0.0, shortage], rtol=tol, atol=tol * 100)
    assert result.to_frame()["bound"].tolist() == ["", "cap"]


# ----------------------------------------------------------------- closed form vs program
def test_closed_form_matches_convex_program_on_uncoupled_markets() -> None:
    """Uncoupled markets over the whole elasticity ranges (ε = −1 exactly included):
    the closed form and the convex program agree to 1e-6 relative, the issue's bar
    for Clarabel at tight tolerances."""
    from pricing.market.synthetic import random_market

    market = random_market(300, (1, 1), seed=3)
    segments = market.segments.copy()
    segments.loc[:9, "demand_elasticity"] = -1.0
    market = Market(segments, market.edges)
    closed = solve(market)
    program = solve(market, method="cvxpy")
    assert closed.ok and program.ok
    np.testing.assert_allclose(program.rate, closed.rate, rtol=1e-6)
    np.testing.assert_allclose(program.home_flow, closed.home_flow, rtol=1e-6)
