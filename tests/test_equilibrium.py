"""Solver mechanics: result objects, what-if re-solves, fallbacks and failures, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pricing.market.equilibrium as equilibrium
from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.market.equilibrium import VERIFY_TOL, residuals, solve
from pricing.market.interior import CoupledSolution
from pricing.market.market import Market
from pricing.market.synthetic import random_market


@pytest.fixture(scope="module")
def market() -> Market:
    return random_market(400, (2, 12), seed=11, bounded_share=0.1)


@pytest.fixture(scope="module")
def base(market: Market) -> equilibrium.EquilibriumResult:
    return solve(market)


def _shift(market: Market, category: str | None, log_change: float) -> Market:
    seg = market.segments.copy()
    rows = slice(None) if category is None else seg["category"] == category
    seg.loc[rows, "log_demand_level"] += log_change
    return Market(seg, market.edges, market.segment_keys)


def test_result_objects(base: equilibrium.EquilibriumResult, market: Market) -> None:
    frame = base.to_frame()
    assert len(frame) == len(market)
    expected = {
        "observed_rate", "rate", "client_rate", "freelancer_rate", "hours", "demand_hours",
        "supply_hours", "demand_hours_at_observed", "supply_hours_at_observed",
        "shortage_hours", "surplus_hours", "pool_wage", "gap_frac", "bound", "component",
        "status",
    }  # fmt: skip
    assert expected <= set(frame.columns)
    assert base.ok and set(frame["status"]) == {"solved"}
    assert set(base.components["path"]) == {"interior"}
    assert (base.components["residual"] <= VERIFY_TOL).all()
    assert "Equilibrium (auto)" in base.summary() and "<table" in base._repr_html_()
    assert len(base.edges_frame()) == len(market.edges)
    # hours cleared = hours demanded less the shortage
    gap = (frame["hours"] - (frame["demand_hours"] - frame["shortage_hours"])).abs()
    assert (gap <= 1e-8 * frame["demand_hours"]).all()
    # verification recomputed independently of the solver's own bookkeeping
    assert residuals(market, base).max() <= VERIFY_TOL


def test_whatif_reuses_unchanged_components_exactly(
    base: equilibrium.EquilibriumResult, market: Market
) -> None:
    shifted = _shift(market, "c3", np.log(1.2))
    fresh = solve(shifted)
    quick = solve(shifted, baseline=base)
    touched = (shifted.segments["category"] == "c3").to_numpy()
    same = ~np.isin(shifted.component, shifted.component[touched])
    assert quick.timings["reused_segments"] == same.sum()
    np.testing.assert_array_equal(quick.rate[same], base.rate[same])
    # changed components are re-solved (warm-started) to the cold answer
    np.testing.assert_allclose(quick.rate, fresh.rate, rtol=1e-8)
    np.testing.assert_allclose(quick.flow, fresh.flow, rtol=1e-6, atol=1e-6)
    assert quick.rate[touched].mean() > base.rate[touched].mean()


def test_whatif_everywhere_warm_starts_to_the_same_answer(
    base: equilibrium.EquilibriumResult, market: Market
) -> None:
    """Every segment's demand × 0.8: the warm start from the baseline reaches the cold
    solve's rates (1e-8) in fewer interior-point iterations than the interior point's
    own cold start (the cold solve's forest from the uncoupled rows takes none)."""
    import pricing.market.interior as interior

    shifted = _shift(market, None, np.log(0.8))
    warm = solve(shifted, baseline=base)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interior, "_COLD_ROUNDS", 0)
        fresh = solve(shifted)
    assert warm.timings.get("reused_segments", 0) == 0
    np.testing.assert_allclose(warm.rate, fresh.rate, rtol=1e-8)
    assert np.median(warm.iterations) < np.median(fresh.iterations)


def _refrictioned(market: Market, edge: int, friction: float) -> Market:
    edges = market.edges.copy()
    edges.loc[edge, "friction"] = friction
    return Market(market.segments, edges, market.segment_keys)


def test_whatif_keeps_components_whose_only_change_leaves_an_idle_edge_priced_out(
    base: equilibrium.EquilibriumResult, market: Market
) -> None:
    """Halving the friction of an edge with no flow that still does not pay (reduced cost
    w − p + τ > 0) changes nothing: the component keeps the baseline's solution, which a
    cold solve reproduces. Halving the friction of a used edge is re-solved."""
    e = base.edges_frame()
    seg, tau = e["segment"].to_numpy(), e["friction"].to_numpy()
    rc = e["reduced_cost"].to_numpy() / base.rate[seg]
    flow = e["flow_hours"].to_numpy()
    n_usable = int(market.usable.sum())

    idle = np.flatnonzero((flow < 1e-9) & (rc > tau / base.rate[seg]) & (tau > 0))
    assert idle.size, "the fixture market has no idle, priced-out edge"
    cheaper = _refrictioned(market, int(idle[0]), tau[idle[0]] / 2)
    kept = solve(cheaper, baseline=base)
    assert kept.timings["reused_segments"] == n_usable
    np.testing.assert_array_equal(kept.rate, base.rate)
    np.testing.assert_allclose(solve(cheaper).rate, kept.rate, rtol=1e-8)

    used = np.flatnonzero((flow > 1.0) & (tau > 0))
    assert used.size, "the fixture market has no used edge with a friction"
    cheaper = _refrictioned(market, int(used[0]), tau[used[0]] / 2)
    redone = solve(cheaper, baseline=base)
    in_comp = market.component == market.component[seg[used[0]]]
    assert redone.timings["reused_segments"] == n_usable - int(in_comp.sum())
    assert not np.allclose(redone.rate[in_comp], base.rate[in_comp], rtol=1e-6)
    np.testing.assert_allclose(solve(cheaper).rate, redone.rate, rtol=1e-8)


def test_copies_of_a_component_share_one_sparse_factorization(
    base: equilibrium.EquilibriumResult, market: Market
) -> None:
    """Ten copies of every component side by side (as planning stacks them): every
    pattern repeats, so every component goes to a sparse class (one symbolic Cholesky,
    batched over its copies), and each copy clears as the market does alone."""
    from pricing.market.interior import _classify

    n, copies = len(market), 10
    rows, copy = np.tile(np.arange(n), copies), np.repeat(np.arange(copies), n)
    stacked, _ = market.stack(rows, copy)  # noqa: PD013 (Market.stack)
    coupled = np.bincount(stacked.component)[stacked.component] > 1
    p_star = stacked.uncoupled_rate()
    problem, _, _ = equilibrium._coupled_problem(
        stacked, coupled & stacked.usable, p_star, stacked.demand_hours(p_star)
    )
    assert (_classify(problem).of >= 0).all()
    result = solve(stacked)
    assert result.ok
    np.testing.assert_allclose(
        result.rate.reshape(copies, n), np.tile(base.rate, (copies, 1)), rtol=1e-8
    )


def stalls_on_component_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interior point stops short on component 0: not converged, not yet clearing."""
    real = equilibrium.solve_coupled

    def stalled(problem, start=None):  # type: ignore[no-untyped-def]
        out = real(problem, start)
        converged = out.converged.copy()
        converged[0] = False
        reason = list(out.reason)
        reason[0] = "simulated stall"
        rate = out.rate.copy()
        rate[problem.component == 0] *= 1.01  # where it stopped: not yet clearing
        return CoupledSolution(
            rate, out.wage, out.flow, out.shortage, out.surplus, converged,
            out.iterations, reason,
        )  # fmt: skip

    monkeypatch.setattr(equilibrium, "solve_coupled", stalled)


def test_unconverged_components_fall_back_to_the_convex_program(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = solve(market)
    stalls_on_component_zero(monkeypatch)
    result = solve(market)
    assert result.ok
    row = result.components.iloc[0]
    assert row["status"] == "solved_fallback" and row["path"] == "clarabel"
    assert row["reason"].startswith("simulated stall")  # why it fell back
    # the fallback's answer is the same equilibrium, to Clarabel's accuracy
    np.testing.assert_allclose(result.rate, reference.rate, rtol=1e-6)


def test_without_fallback_a_stalled_component_is_failed_and_no_convex_program_runs(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pricing.market.welfare as welfare

    reference = solve(market)

    def never(problem, solver="CLARABEL"):  # type: ignore[no-untyped-def]
        raise AssertionError("the convex program ran")

    stalls_on_component_zero(monkeypatch)
    monkeypatch.setattr(welfare, "solve_welfare", never)
    result = solve(market, fallback=False)
    first = market.component == 0
    assert (result.status[first] == "failed").all() and np.isnan(result.rate[first]).all()
    # every other component is the same answer as with the fallback available
    np.testing.assert_array_equal(result.rate[~first], reference.rate[~first])


@pytest.mark.parametrize("path", ["direct", "cg"])
def test_components_above_the_dense_limit_clear_on_sparse_linear_algebra(
    market: Market, base: equilibrium.EquilibriumResult, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the dense limit at 1 every coupled component's K is a sparse Schur block,
    factored directly (LDLᵀ) or solved by forest-preconditioned CG; both give the dense
    path's equilibrium to 1e-8 (each path's rates are good to ~1e-10), and no convex
    program runs."""
    import pricing.market.interior as interior
    import pricing.market.sparse_schur as sparse_schur
    import pricing.market.welfare as welfare

    def never(problem, solver="CLARABEL"):  # type: ignore[no-untyped-def]
        raise AssertionError("the convex program ran")

    monkeypatch.setattr(interior, "_COLD_ROUNDS", 0)  # the interior point, not the forest
    monkeypatch.setattr(interior, "MAX_DENSE", 1)
    monkeypatch.setattr(welfare, "solve_welfare", never)
    direct = path == "direct"
    monkeypatch.setattr(interior, "factor_directly", lambda *_: direct)
    kinds: set[type] = set()
    real = interior._schur_blocks

    def spy(*args):  # type: ignore[no-untyped-def]
        blocks = real(*args)
        kinds.update(type(b) for b, _ in blocks)
        return blocks

    monkeypatch.setattr(interior, "_schur_blocks", spy)
    result = solve(market)
    assert result.ok and set(result.status) == {"solved"}
    assert kinds == {sparse_schur.DirectSchur if direct else sparse_schur.ForestCG}
    np.testing.assert_allclose(result.rate, base.rate, rtol=1e-8)
    np.testing.assert_allclose(result.flow, base.flow, rtol=1e-6, atol=1e-6)


def test_a_component_no_solver_clears_is_failed_with_its_reason(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pricing.market.welfare as welfare

    real_interior, real_welfare = equilibrium.solve_coupled, welfare.solve_welfare

    def wrong(problem, start=None):  # type: ignore[no-untyped-def]
        out = real_interior(problem, start)
        rate = out.rate.copy()
        rate[problem.component == 0] *= 1.01  # a wrong answer that "converged"
        return CoupledSolution(
            rate, out.wage, out.flow, out.shortage, out.surplus, out.converged,
            out.iterations, out.reason,
        )  # fmt: skip

    def broken(problem, solver="CLARABEL"):  # type: ignore[no-untyped-def]
        out = real_welfare(problem, solver)
        return type(out)(
            **{**out.__dict__, "rate": out.rate * 1.01, "status": "optimal_inaccurate"}
        )

    monkeypatch.setattr(equilibrium, "solve_coupled", wrong)
    monkeypatch.setattr(welfare, "solve_welfare", broken)
    result = solve(market)
    assert not result.ok
    failed = result.status == "failed"
    first = market.component == 0
    assert failed[first].all() and not failed[~first].any()
    assert np.isnan(result.rate[first]).all() and np.isfinite(result.rate[~first]).all()
    reason = result.components.iloc[0]["reason"]
    assert "interior: residual" in reason and "clarabel: optimal_inaccurate" in reason
    assert "scs: optimal_inaccurate" in reason
    assert "failed" in result.summary()


def test_segments_without_curves_are_reported(market: Market) -> None:
    seg = market.segments.copy()
    seg.loc[0, ["demand_elasticity", "log_demand_level"]] = np.nan
    seg.loc[0, ["supply_elasticity", "log_supply_level"]] = np.nan
    result = solve(Market(seg, market.edges, market.segment_keys))
    assert result.ok
    assert result.status[0] == "no_curve" and np.isnan(result.rate[0])
    assert (result.status[1:] == "solved").all()


def test_bad_method_is_refused(market: Market) -> None:
    with pytest.raises(ValueError, match="method"):
        solve(market, method="newton")  # type: ignore[arg-type]


def test_cli_equilibrium_on_the_sample(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    out = tmp_path / "eq.parquet"
    result = runner.invoke(main, ["equilibrium", "--json", "-q", "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == {"solved": payload["segments"]}
    assert payload["max_residual"] <= VERIFY_TOL
    frame = pd.read_parquet(out)
    assert len(frame) == payload["segments"] and frame["rate"].gt(0).all()
    text = runner.invoke(main, ["equilibrium", "-q", "--rows", "5"])
    assert text.exit_code == ExitCode.OK and "Equilibrium (auto)" in text.output


def _residuals_by_formula(market: Market, st: equilibrium._State) -> np.ndarray:
    """:func:`residuals` written as numpy passes over whole arrays, formula by formula
    (its docstring): the oracle for its compiled loops."""
    p, w = st.rate, st.wage
    e = market.edges
    pool, seg, tau = e["pool"].to_numpy(), e["segment"].to_numpy(), e["friction"].to_numpy()
    flow = np.where(np.isfinite(st.flow), st.flow, 0.0)
    active = market.active_edges & np.isfinite(st.flow)
    n = len(market)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d, s = market.demand_hours(p), market.supply_hours(w)
        d_rate = d * np.abs(market.array("demand_elasticity"))
        s_rate = s * market.array("supply_elasticity")
        inflow = st.home_flow + np.bincount(seg[active], flow[active], minlength=n)
        outflow = st.home_flow + np.bincount(pool[active], flow[active], minlength=n)
        worst = np.abs(d + st.surplus - inflow - st.shortage) / d_rate
        worst = np.maximum(worst, np.abs(s - outflow) / s_rate)
        home = np.minimum(
            np.maximum(w - p, 0.0) / p, np.maximum(st.home_flow, 0.0) / np.minimum(s, d)
        )
        worst = np.maximum(np.maximum(worst, home), np.maximum(p - w, 0.0) / p)
        floor, cap = market.array("rate_floor"), market.array("rate_cap")
        below = np.where(np.isnan(floor), 0.0, np.maximum((floor - p) / p, 0.0))
        above = np.where(np.isnan(cap), 0.0, np.maximum((p - cap) / p, 0.0))
        worst = np.maximum(worst, np.maximum(below, above))
        at_cap = np.where(np.isnan(cap), np.inf, np.abs(cap - p) / p)
        at_floor = np.where(np.isnan(floor), np.inf, np.abs(p - floor) / p)
        worst = np.maximum(worst, np.minimum(np.abs(st.shortage) / d_rate, at_cap))
        worst = np.maximum(worst, np.minimum(np.abs(st.surplus) / d_rate, at_floor))
        worst = np.maximum(worst, np.maximum(-np.minimum(st.shortage, st.surplus), 0.0) / d)
        rc = (w[pool] - p[seg] + tau) / p[seg]
        x_rel = flow / np.minimum(s[pool], d[seg])
        edge = np.maximum(np.maximum(-rc, 0.0), np.maximum(-x_rel, 0.0))
        edge = np.maximum(edge, np.minimum(np.maximum(rc, 0.0), np.maximum(x_rel, 0.0)))
        edge = np.where(active, edge, 0.0)
        for end in (pool, seg):
            np.maximum.at(worst, end, edge)
    return np.where(np.isfinite(worst), worst, np.inf)


def test_residuals_match_their_formulas_on_answers_and_on_damaged_states() -> None:
    """The compiled checks against the same formulas as numpy passes, on a solved market
    with bounds and on copies of its answer damaged as an unconverged iterate can be:
    rates off by 0.1 %, NaN flows, zero wages, negative home flows, a cap passed. Where
    a residual is not finite both say inf. Elsewhere they sum a segment's flows in
    another order: rounding of ~1e-16 of its hours, over |ε| D, measured ≤ 6e-14 here,
    so ``atol`` = 1e-12 (and 1e-12 relative for the large residuals of damaged states)."""
    market = random_market(3_000, (2, 50), seed=3, bounded_share=0.3)
    result = solve(market)
    st = equilibrium._State(market)
    for name in ("rate", "wage", "home_flow", "shortage", "surplus", "flow"):
        setattr(st, name, getattr(result, name).copy())
    states = [st]
    damaged = equilibrium._State(market)
    for name in ("rate", "wage", "home_flow", "shortage", "surplus", "flow"):
        setattr(damaged, name, getattr(result, name).copy())
    damaged.rate[::7] *= 1.001
    damaged.flow[::11] = np.nan
    damaged.wage[::13] = 0.0
    damaged.home_flow[::17] = -1.0
    capped = np.flatnonzero(np.isfinite(market.array("rate_cap")))[::3]
    damaged.rate[capped] = market.array("rate_cap")[capped] * 1.01
    states.append(damaged)
    for state in states:
        got, expected = residuals(market, state), _residuals_by_formula(market, state)
        assert (np.isinf(got) == np.isinf(expected)).all()
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)
    assert np.isinf(residuals(market, damaged)).any() and residuals(market, st).max() <= VERIFY_TOL


def test_a_components_residual_is_its_worst_chosen_segments() -> None:
    """Per component, the largest residual of its chosen segments (0 with none chosen;
    inf and NaN win): the same numbers as np.maximum.at, exactly (a maximum is one of
    the numbers)."""
    rng = np.random.default_rng(0)
    comp = rng.integers(0, 300, 5_000)
    chosen = rng.random(5_000) < 0.8
    worst = rng.random(5_000)
    worst[::97] = np.inf
    expected = np.zeros(300)
    np.maximum.at(expected, comp[chosen], worst[chosen])
    got = equilibrium._component_worst(comp, chosen, worst, 300)
    assert np.array_equal(got, expected)


def test_warming_compiles_the_loops_and_solves_two_coupled_segments() -> None:
    """``make``'s set-up compiles numba's loops through :func:`equilibrium.warm`: two
    segments joined by an edge, solved through the compiled rounds and verified by the
    compiled checks (it raises if they do not solve)."""
    import pricing.market.pivots as pivots

    equilibrium.warm()
    for loop in (pivots._settle_all, equilibrium._worst, equilibrium._component_worst):
        assert loop.signatures
