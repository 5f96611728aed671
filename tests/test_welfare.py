"""The reference welfare program against closed forms, a hand-solved market and the KKT
conditions of a random coupled market."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from pricing.market import welfare
from pricing.market.interior import CoupledProblem
from pricing.market.welfare import solve_welfare

# Clarabel (tolerances 1e-12) gets rates and hours ~1e-9 right on these markets, SCS
# ~1e-8; 1e-6 leaves ample margin for both and still catches any error in the model (a
# wrong scale or exponent is off by percents). At these tolerances Clarabel ends some
# markets AlmostSolved ("optimal_inaccurate") instead; the seeds below are ones it
# solves, and its result is deterministic for a given input.
TOL = 1e-6


def _uncoupled(
    eps: np.ndarray,
    eta: np.ndarray,
    p_star: np.ndarray,
    h_star: np.ndarray,
    floor: np.ndarray | None = None,
    cap: np.ndarray | None = None,
) -> CoupledProblem:
    n = eps.size
    home = np.arange(n)
    none = np.full(n, np.nan)
    return CoupledProblem(
        component=home, eps=eps, eta=eta, p_star=p_star, h_star=h_star,
        floor=none if floor is None else floor, cap=none if cap is None else cap,
        pool=home, segment=home, friction=np.zeros(n),
    )  # fmt: skip


def _random_uncoupled(seed: int, n: int) -> CoupledProblem:
    rng = np.random.default_rng(seed)
    eps = rng.uniform(-3.0, -0.2, n)
    # the log limit exactly, both sides of it, and the blended band |1 + 1/ε| < A_MIN
    eps[:6] = [-1.0, -0.999, -1.001, -1.0004, -0.9996, -0.2]
    eps[6] = -3.0
    eta = rng.uniform(0.1, 3.0, n)
    eta[:2] = [0.1, 3.0]
    p_star = 10 ** rng.uniform(0.0, 3.0, n)  # 1 to 1000 USD/h
    h_star = 10 ** rng.uniform(0.0, 5.0, n)  # 1 to 100k hours
    return _uncoupled(eps, eta, p_star, h_star)


@pytest.mark.parametrize("solver", ["CLARABEL", "SCS"])
def test_uncoupled_markets_clear_at_their_reference_point(solver: str) -> None:
    pb = _random_uncoupled(seed=1, n=150)
    sol = solve_welfare(pb, solver)
    assert sol.status == "optimal"
    assert sol.solver == solver
    # positive rates and wages: the dual sign convention of the balance rows
    np.testing.assert_allclose(sol.rate, pb.p_star, rtol=TOL)
    np.testing.assert_allclose(sol.wage, pb.p_star, rtol=TOL)
    np.testing.assert_allclose(sol.flow, pb.h_star, rtol=TOL)
    assert (sol.shortage == 0).all() and (sol.surplus == 0).all()
    assert sol.compile_seconds > 0 and sol.solve_seconds > 0


def test_binding_cap_and_floor_report_shortage_and_surplus() -> None:
    eps, eta = np.array([-1.5, -0.6, -1.0]), np.array([0.8, 2.0, 1.0])
    p_star, h_star = np.array([40.0, 25.0, 60.0]), np.array([300.0, 5000.0, 80.0])
    cap = np.array([32.0, np.nan, np.nan])  # below p*: binds
    floor = np.array([np.nan, 30.0, 45.0])  # above p* binds; below p* (segment 2) does not
    sol = solve_welfare(_uncoupled(eps, eta, p_star, h_star, floor, cap))
    assert sol.status == "optimal"

    def demand(k: int, p: float) -> float:
        return float(h_star[k] * (p / p_star[k]) ** eps[k])

    def supply(k: int, w: float) -> float:
        return float(h_star[k] * (w / p_star[k]) ** eta[k])

    np.testing.assert_allclose(sol.rate, [32.0, 30.0, 60.0], rtol=TOL)
    np.testing.assert_allclose(sol.shortage[0], demand(0, 32.0) - supply(0, 32.0), rtol=TOL)
    np.testing.assert_allclose(sol.surplus[1], supply(1, 30.0) - demand(1, 30.0), rtol=TOL)
    # hours flow as supplied: at a floor the idle supply is part of the flow
    np.testing.assert_allclose(sol.flow, [supply(0, 32.0), supply(1, 30.0), 80.0], rtol=TOL)
    assert sol.shortage[1:].tolist() == [0.0, 0.0] and sol.surplus[[0]].tolist() == [0.0]
    assert sol.surplus[2] < TOL * h_star[2]


def test_hand_solved_two_segment_market() -> None:
    # ε = −1 and η = 1: D_k(p) = H_k p*_k / p, S_j(w) = H_j w / p*_j. Segment 0 (p* = 10)
    # is cheap, segment 1 (p* = 20) dear; pool 0 may also serve segment 1 at τ = 3.
    # Guess the edge is used: w_0 = p_0 (home edge) and w_0 = p_1 − τ, so p_1 = p_0 + 3.
    # Hours clear in total: D_0 + D_1 = S_0 + S_1. Aiming at p_0 = 12, p_1 = 15:
    #   H_0 (10/12 − 12/10) = H_1 (15/20 − 20/15)  ⇔  H_0 11/30 = H_1 7/12  ⇔  H_0/H_1 = 35/22,
    # so H_0 = 350, H_1 = 220. Then D_0 = 875/3, S_0 = 420, D_1 = 880/3, S_1 = 165:
    # x_00 = D_0, x_01 = S_0 − D_0 = 385/3 > 0 (the guess holds), x_11 = S_1 = 165, and
    # x_01 + x_11 = 880/3 = D_1. Wages: w_0 = 12, w_1 = p_1 = 15.
    pb = CoupledProblem(
        component=np.array([0, 0]), eps=np.array([-1.0, -1.0]), eta=np.array([1.0, 1.0]),
        p_star=np.array([10.0, 20.0]), h_star=np.array([350.0, 220.0]),
        floor=np.full(2, np.nan), cap=np.full(2, np.nan),
        pool=np.array([0, 1, 0]), segment=np.array([0, 1, 1]), friction=np.array([0.0, 0.0, 3.0]),
    )  # fmt: skip
    sol = solve_welfare(pb)
    assert sol.status == "optimal"
    np.testing.assert_allclose(sol.rate, [12.0, 15.0], rtol=TOL)
    np.testing.assert_allclose(sol.wage, [12.0, 15.0], rtol=TOL)
    np.testing.assert_allclose(sol.flow, [875 / 3, 165.0, 385 / 3], rtol=TOL)
    np.testing.assert_allclose(sol.rate[1] - 3.0, sol.wage[0], rtol=TOL)


def _random_coupled(seed: int, n_target: int) -> CoupledProblem:
    """Components of 2–10 segments of similar scale, a random spanning tree of edges in
    random directions plus ~30% extra edges, frictions 0–20% of p*, some caps and floors."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n_target:
        sizes.append(int(rng.integers(2, 11)))
    n = sum(sizes)
    component = np.repeat(np.arange(len(sizes)), sizes)
    p_star = (10 ** rng.uniform(0.5, 2.5, len(sizes)))[component] * rng.uniform(0.8, 1.25, n)
    h_star = (10 ** rng.uniform(1.0, 4.0, len(sizes)))[component] * 10 ** rng.uniform(-0.5, 0.5, n)
    eps = rng.uniform(-3.0, -0.2, n)
    eps[rng.random(n) < 0.05] = -1.0
    eps[:4] = [-1.0004, -0.9996, -0.999, -1.001]  # blended band and just outside it
    edges: set[tuple[int, int]] = set()
    start = 0
    for size in sizes:
        for i in range(1, size):
            a, b = start + i, start + int(rng.integers(0, i))
            edges.add((a, b) if rng.random() < 0.5 else (b, a))
        for _ in range(int(0.3 * size)):
            a, b = start + rng.choice(size, 2, replace=False)
            edges.add((int(a), int(b)))
        start += size
    pool = np.concatenate([np.arange(n), [e[0] for e in sorted(edges)]]).astype(np.int64)
    segment = np.concatenate([np.arange(n), [e[1] for e in sorted(edges)]]).astype(np.int64)
    friction = np.where(pool == segment, 0.0, rng.uniform(0.0, 0.2, pool.size) * p_star[segment])
    capped = rng.random(n) < 0.1
    floored = (rng.random(n) < 0.1) & ~capped
    cap = np.where(capped, p_star * rng.uniform(0.85, 1.3, n), np.nan)
    floor = np.where(floored, p_star * rng.uniform(0.7, 1.15, n), np.nan)
    return CoupledProblem(
        component, eps, rng.uniform(0.1, 3.0, n), p_star, h_star, floor, cap, pool, segment,
        friction,
    )  # fmt: skip


def test_random_coupled_market_satisfies_optimality_conditions() -> None:
    pb = _random_coupled(seed=3, n_target=200)
    sol = solve_welfare(pb)
    assert sol.status == "optimal"
    n, h, p, w = pb.h_star.size, pb.h_star, sol.rate, sol.wage
    inflow = np.bincount(pb.segment, sol.flow, n)
    outflow = np.bincount(pb.pool, sol.flow, n)
    # market clearing, relative to each segment's hours (the blend near ε = −1 is within
    # 1.3e-7 (log q̃)² of the exact curve, far inside TOL)
    demand = h * (p / pb.p_star) ** pb.eps
    supply = h * (w / pb.p_star) ** pb.eta
    assert np.abs(demand + sol.surplus - inflow - sol.shortage).max() <= TOL * h.min()
    np.testing.assert_array_less(np.abs(demand + sol.surplus - inflow - sol.shortage), TOL * h)
    np.testing.assert_array_less(np.abs(supply - outflow), TOL * h)
    # edges: w_j ≥ p_k − τ everywhere, with equality wherever hours flow
    slack = w[pb.pool] - p[pb.segment] + pb.friction
    scale = p[pb.segment]
    assert (slack >= -TOL * scale).all()
    used = sol.flow > TOL * h[pb.segment]
    assert (np.abs(slack[used]) <= TOL * scale[used]).all()
    assert used.sum() > n  # the market is really coupled: more edges used than home edges
    # bounds: rates inside them, shortage and surplus only where they bind
    capped, floored = np.isfinite(pb.cap), np.isfinite(pb.floor)
    assert (p[capped] <= pb.cap[capped] * (1 + TOL)).all()
    assert (p[floored] >= pb.floor[floored] * (1 - TOL)).all()
    short = sol.shortage > TOL * h
    assert short.any() and np.allclose(p[short], pb.cap[short], rtol=TOL)
    idle = sol.surplus > TOL * h
    assert idle.any() and np.allclose(p[idle], pb.floor[idle], rtol=TOL)


def test_solver_failure_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: cp.Problem, *args: object, **kwargs: object) -> None:
        raise cp.error.SolverError("Solver 'CLARABEL' failed.")

    monkeypatch.setattr(cp.Problem, "solve", fail)
    pb = _random_uncoupled(seed=0, n=10)
    sol = solve_welfare(pb)
    assert sol.status == "error: Solver 'CLARABEL' failed."
    assert np.isnan(sol.rate).all() and np.isnan(sol.flow).all() and sol.flow.size == 10


def test_unsolved_program_returns_no_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {**welfare._OPTIONS["CLARABEL"], "max_iter": 2}
    monkeypatch.setitem(welfare._OPTIONS, "CLARABEL", options)
    sol = solve_welfare(_random_uncoupled(seed=1, n=10))
    assert sol.status == "user_limit"
    assert np.isnan(sol.rate).all() and np.isnan(sol.wage).all() and np.isnan(sol.surplus).all()


def test_unknown_solver_is_rejected() -> None:
    with pytest.raises(ValueError, match="solver must be one of"):
        solve_welfare(_random_uncoupled(seed=0, n=10), "ECOS")
