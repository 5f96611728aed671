"""Property tests of :func:`pricing.market.equilibrium.solve` on small hand-built markets.

Comparative statics (demand and supply shifts, fees), complementary slackness on the
edges, rate equalization across a frictionless link, and market clearing, on random
markets of 1–6 segments with elasticities over the whole supported ranges (ε = −1, the
log limit, included), random edges and frictions (zero included), fees, and optional
floors and caps; plus a robustness run on large random markets (marked slow).

Tolerances (all relative). The closed form is exact to rounding; the interior-point path
stops at complementarity μ ≈ 1e-13 of the segment's money scale H*·p* with clearing
residuals ≤ ~1e-11 of the hours, which puts rates at ~1e-10; the engine's own verification
(``VERIFY_TOL``) accepts 1e-6. Each constant below sits between the two, with its reason.

**General position.** The generated markets avoid exact ties: the uncoupled rates of the
segments are kept apart (``_SPREAD``), a bound is never drawn at the uncoupled rate, and a
non-zero friction is at least 0.1 % of the rate. At a tie the solution is degenerate (an
edge with zero flow *and* zero reduced cost, or a rate on its floor with zero surplus) and
an interior point only gets both to ~√μ, which the tolerances here do not allow for.
Degenerate markets are covered by the regression tests at the end, with exact answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import assume as reject_unless
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from scipy.optimize import brentq

from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import Market
from pricing.market.synthetic import random_market

# Two independent solves each carry ~1e-10 of rate error, so a monotone comparison
# p_new ≥ p_old needs a few 1e-10 of slack; 1e-9 gives a 10× margin and is still far
# below any change of rate that matters (a thousandth of a cent on $10/h).
RATE_TOL = 1e-9
# Clearing residuals converge to ≤ ~1e-11 of the segment's reference hours H*; measured
# against the equilibrium hours (which can be several times smaller than H* in a coupled
# market) 1e-8 leaves ~1000× of room, yet is 100× tighter than verification's 1e-6.
CLEAR_TOL = 1e-8
# A reduced cost w − p + τ is never negative beyond the rounding of the iterate (the
# barrier keeps every slack positive): 1e-8 of the rate is 1e4× rounding.
REDUCED_COST_FLOOR = 1e-8
# An edge counts as used above 1e-7 of its segment's demand hours (not the hours it gets,
# which are ~0 under a binding cap). On a used edge the barrier's x·rc ≈ μ·H*p* ≈
# 1e-13·H*p* puts |rc| near 1e-13·p for a flow of the order of the segment's hours and at
# worst ~1e-6·p for a flow of 1e-7 of them; in general position no edge sits that close to
# the threshold (at a degenerate edge both sit at ~3e-7), so |rc| ≤ 1e-7·p on used edges.
USED_FLOW = 1e-7
USED_REDUCED_COST = 1e-7

# derandomized: CI runs the same 60 examples every time (a random draw found two
# degenerate markets at a rate floor that fail by ~1e-8; see the issue 6 note)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DEMAND_ELASTICITY = st.one_of(st.just(-1.0), st.floats(-3.0, -0.2))
SUPPLY_ELASTICITY = st.one_of(st.just(1.0), st.floats(0.1, 3.0))
FEE = st.one_of(st.just(0.0), st.floats(0.0, 0.3))
FRICTION_SHARE = st.one_of(st.just(0.0), st.floats(0.001, 0.3))  # of the segment's p*
BOUND_OFFSET = st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(0.01, 0.3))  # log(b / p*)
LOG_RATE = st.floats(float(np.log(5.0)), float(np.log(450.0)))
LOG_HOURS = st.floats(0.0, float(np.log(1e5)))  # 1 … 100k hours a week
# segment i's uncoupled rate is exp(LOG_RATE draw + _SPREAD[i]): draws that shrink to the
# same value still give distinct rates, and the offsets (square roots of primes) are not
# in arithmetic progression, so no segment's p* is the joint rate of a symmetric group of
# others (evenly spaced p* make the middle segment clear alone exactly: a degenerate tie)
_SPREAD = 0.01 * np.sqrt([2.0, 3.0, 5.0, 7.0, 11.0, 13.0])


@st.composite
def markets(
    draw: st.DrawFn,
    min_segments: int = 1,
    max_segments: int = 6,
    coupled: bool | None = None,
    bounds: bool = True,
) -> Market:
    """A market of 1–6 segments in general position whose uncoupled rates lie in $5–$500.

    The curves are drawn through the uncoupled clearing point (p*, H*) in listed terms, so
    every coupled rate lies in [min p*, max p*] too. ``coupled``: None any edges, True at
    least one edge, False none. ``bounds``: some segments get a floor and/or a cap 1–30 %
    away from p* (either side, so they may or may not bind).
    """
    n = draw(st.integers(max(min_segments, 2 if coupled else 1), max_segments))
    rows = []
    for i in range(n):
        eps, eta = draw(DEMAND_ELASTICITY), draw(SUPPLY_ELASTICITY)
        p_star = np.exp(draw(LOG_RATE) + _SPREAD[i])
        h_star = np.exp(draw(LOG_HOURS))
        fc, ff = draw(FEE), draw(FEE)
        floor = cap = np.nan
        kind = draw(st.sampled_from(["none", "none", "floor", "cap", "both"])) if bounds else ""
        if kind in ("floor", "cap"):
            sign, size = draw(BOUND_OFFSET)
            if kind == "floor":
                floor = p_star * np.exp(sign * size)
            else:
                cap = p_star * np.exp(sign * size)
        elif kind == "both":  # a band around p*, or one entirely above or below it
            sign, size = draw(BOUND_OFFSET)
            width = draw(st.floats(0.02, 0.5))
            floor = p_star * np.exp(sign * size)
            if abs(sign * size + width) >= 0.01:
                cap = floor * np.exp(width)
        rows.append(
            {
                "category": f"c{i}",
                "tier": "t",
                "demand_elasticity": eps,
                "log_demand_level": np.log(h_star) - eps * np.log(p_star * (1 + fc)),
                "supply_elasticity": eta,
                "log_supply_level": np.log(h_star) - eta * np.log(p_star * (1 - ff)),
                "client_fee": fc,
                "freelancer_fee": ff,
                "rate_floor": floor,
                "rate_cap": cap,
            }
        )
    segments = pd.DataFrame(rows)
    pairs = [(j, k) for j in range(n) for k in range(n) if j != k]
    chosen: list[tuple[int, int]] = []
    if pairs and coupled is not False:
        chosen = draw(st.lists(st.sampled_from(pairs), unique=True, min_size=int(bool(coupled))))
    p_star = Market(segments).uncoupled_rate()
    edges = pd.DataFrame(
        {
            "pool": [j for j, _ in chosen],
            "segment": [k for _, k in chosen],
            "friction": [draw(FRICTION_SHARE) * p_star[k] for _, k in chosen],
        },
        dtype=object,
    )
    market = Market(segments, edges)
    note(market_code(market))
    return market


def market_code(market: Market) -> str:
    """The market as Python code (for a failing example's report)."""
    seg = market.segments.to_dict(orient="list")
    edges = market.edges.to_dict(orient="list")
    return (
        f"market = Market(\n    pd.DataFrame({seg!r}),\n    pd.DataFrame({edges!r}),\n)"
    ).replace("nan", "np.nan")


def solved(market: Market) -> EquilibriumResult:
    """Solve and keep the example only when the fast exact paths (closed form, interior
    point) answered every segment: the tolerances of this file are theirs, not the
    fallback solvers'. A market the fast path cannot clear is reported by the engine
    (fallback or ``failed``, never a wrong number — see the regressions below); how often
    that happens on realistic markets is the robustness test's subject, not this one's."""
    result = solve(market)
    fast = bool((result.status == "solved").all())
    if currently_in_test_context():  # a hypothesis example: keep it only if fast
        note(result.summary() + "\n" + market_code(market))
        reject_unless(fast)
    else:  # an explicit market must be solved by the fast path
        assert fast, result.summary() + "\n" + market_code(market)
    return result


def with_value(market: Market, column: str, k: int, value: float) -> Market:
    segments = market.segments.copy()
    segments.loc[k, column] = value
    return Market(segments, market.edges)


def small_market(
    log_hours: tuple[float, ...],
    floor: tuple[float, ...] = (np.nan, np.nan),
    log_rate: tuple[float, ...] = (2.0, 2.0),
    edges: tuple[tuple[int, int], ...] = ((0, 1),),
) -> Market:
    """Segments with ε = −1, η = 1, uncoupled rate exp(log_rate) and hours exp(log_hours),
    joined by zero-friction ``edges`` (more segments: pass longer tuples)."""
    h, r = np.asarray(log_hours), np.asarray(log_rate)
    segments = pd.DataFrame(
        {
            "category": [f"c{i}" for i in range(h.size)],
            "tier": "t",
            "demand_elasticity": -1.0,
            "log_demand_level": h + r,
            "supply_elasticity": 1.0,
            "log_supply_level": h - r,
            "rate_floor": list(floor),
        }
    )
    pool, seg = zip(*edges, strict=True)
    return Market(segments, pd.DataFrame({"pool": pool, "segment": seg, "friction": 0.0}))


# --------------------------------------------------------------------------- 1. demand
@SETTINGS
@given(market=markets(), data=st.data())
def test_demand_increase_never_lowers_any_rate(market: Market, data: st.DataObject) -> None:
    """Raising segment k's demand raises p_k and, the segments being gross substitutes
    through the shared pools, never lowers any other segment's rate. (If some rate fell,
    take the nodes whose rate or wage fell by the most: no pool outside them serves them
    after the shift, none of their pools served outside before, yet their demand rose and
    their pools' supply fell — a contradiction.)"""
    k = data.draw(st.integers(0, len(market) - 1), label="k")
    shift = data.draw(st.floats(0.01, 2.0), label="log demand shift")
    before = solved(market)
    level = market.segments.loc[k, "log_demand_level"]
    after = solved(with_value(market, "log_demand_level", k, level + shift))
    assert after.rate[k] >= before.rate[k] * (1 - RATE_TOL)
    assert (after.rate >= before.rate * (1 - RATE_TOL)).all(), (before.rate, after.rate)


# --------------------------------------------------------------------------- 2. supply
@SETTINGS
@given(market=markets(), data=st.data())
def test_supply_increase_never_raises_any_rate(market: Market, data: st.DataObject) -> None:
    j = data.draw(st.integers(0, len(market) - 1), label="pool")
    shift = data.draw(st.floats(0.01, 2.0), label="log supply shift")
    before = solved(market)
    level = market.segments.loc[j, "log_supply_level"]
    after = solved(with_value(market, "log_supply_level", j, level + shift))
    assert (after.rate <= before.rate * (1 + RATE_TOL)).all(), (before.rate, after.rate)


# --------------------------------------------------------------------------- 3. fees
@SETTINGS
@given(market=markets(coupled=False), data=st.data())
def test_higher_freelancer_fee_lowers_the_freelancer_rate_uncoupled(
    market: Market, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(market) - 1), label="k")
    raise_by = data.draw(st.floats(0.001, 0.5), label="fee increase")
    fee = market.segments.loc[k, "freelancer_fee"]
    before = solved(market).to_frame()
    after = solved(with_value(market, "freelancer_fee", k, fee + raise_by)).to_frame()
    old, new = before["freelancer_rate"][k], after["freelancer_rate"][k]
    assert new <= old * (1 + RATE_TOL), (old, new)


@SETTINGS
@given(market=markets(coupled=True), data=st.data())
def test_higher_freelancer_fee_lowers_the_pools_net_wage_coupled(
    market: Market, data: st.DataObject
) -> None:
    """In a coupled market the fee of segment k is paid by pool k: its net wage
    w_k(1 − f_k) falls. The segment's ``freelancer_rate`` p_k(1 − f_k) falls with it
    whenever pool k works in its own segment (w_k = p_k) before and after; when pool k
    works elsewhere it can rise (see the explicit example below)."""
    k = data.draw(st.integers(0, len(market) - 1), label="k")
    raise_by = data.draw(st.floats(0.001, 0.5), label="fee increase")
    fee = market.segments.loc[k, "freelancer_fee"]
    before = solved(market)
    after = solved(with_value(market, "freelancer_fee", k, fee + raise_by))
    old_net, new_net = before.wage[k] * (1 - fee), after.wage[k] * (1 - fee - raise_by)
    assert new_net <= old_net * (1 + RATE_TOL), (old_net, new_net)
    at_home = all(abs(r.wage[k] - r.rate[k]) <= RATE_TOL * r.rate[k] for r in (before, after))
    if at_home:
        old, new = (r.to_frame()["freelancer_rate"][k] for r in (before, after))
        assert new <= old * (1 + RATE_TOL), (old, new)


def test_freelancer_rate_of_a_segment_served_by_another_pool_can_rise() -> None:
    """Counterexample to "a higher freelancer fee lowers the segment's freelancer rate"
    in a coupled market (a property of the model, not of the solver).

    Pool k exports all its hours to the big segment m (p_m = 100); segment k is served by
    pool j, which also serves m across a friction of 90, so p_k = w_j = p_m − 90 = 10.
    Raising k's freelancer fee shrinks pool k's supply, p_m rises by ~1.3, w_j and p_k rise
    by the same ~1.3 — 13 % of p_k — so p_k(1 − f_k) rises although pool k's net wage
    w_k(1 − f_k) falls."""

    def market(fee: float) -> Market:
        segments = pd.DataFrame(
            {
                "category": ["m", "k", "j"],
                "tier": "t",
                "demand_elasticity": -1.0,
                "log_demand_level": np.log([105_100.0, 500.0, 200.0]),
                "supply_elasticity": 1.0,
                "log_supply_level": np.log([0.01, 10.0, 12.0]),
                "freelancer_fee": [0.0, fee, 0.0],
            }
        )
        edges = pd.DataFrame({"pool": [1, 2, 2], "segment": [0, 0, 1], "friction": [0, 90.0, 0]})
        return Market(segments, edges)

    before, after = solved(market(0.0)), solved(market(0.05))
    # the hand solution at fee 0: p = (100, 10, 10), pool k's wage 100
    np.testing.assert_allclose(before.rate, [100.0, 10.0, 10.0], rtol=RATE_TOL)
    np.testing.assert_allclose(before.wage, [100.0, 100.0, 10.0], rtol=RATE_TOL)
    old, new = (r.to_frame()["freelancer_rate"][1] for r in (before, after))
    assert new > old * 1.05  # 10.00 → 10.75
    assert after.wage[1] * 0.95 < before.wage[1]  # pool k's net wage: 100.0 → 96.2


@pytest.mark.parametrize("coupled", [False, True], ids=["uncoupled", "coupled"])
@SETTINGS
@given(data=st.data())
def test_higher_client_fee_raises_the_client_rate(coupled: bool, data: st.DataObject) -> None:
    """The demand of segment k shifts down in the listed rate: p_k falls, but by less than
    the fee, so the client rate p_k(1 + f_c) rises (if it fell, the nodes with the largest
    rate drop would see more demand and less supply, as in the demand test)."""
    market = data.draw(markets(coupled=coupled), label="market")
    k = data.draw(st.integers(0, len(market) - 1), label="k")
    raise_by = data.draw(st.floats(0.001, 0.5), label="fee increase")
    fee = market.segments.loc[k, "client_fee"]
    before = solved(market).to_frame()
    after = solved(with_value(market, "client_fee", k, fee + raise_by)).to_frame()
    old, new = before["client_rate"][k], after["client_rate"][k]
    assert new >= old * (1 - RATE_TOL), (old, new)


# --------------------------------------------------------------------------- 4. edges
@SETTINGS
@given(market=markets(coupled=True))
def test_flows_only_where_the_reduced_cost_vanishes(market: Market) -> None:
    """Reduced cost w_j − p_k + τ_jk ≥ 0 on every edge, = 0 on every used edge; the home
    edges (w_k − p_k, implicit) too."""
    result = solved(market)
    # the segment's scale: its demand (the hours it gets can be ~0 when a cap binds)
    hours, rate = result.to_frame()["demand_hours"].to_numpy(), result.rate
    edges = result.edges_frame()
    seg = edges["segment"].to_numpy()
    rc = edges["reduced_cost"].to_numpy()
    flow = edges["flow_hours"].to_numpy()
    assert (flow >= 0).all()
    assert (rc >= -REDUCED_COST_FLOOR * rate[seg]).all(), edges
    used = flow > USED_FLOW * hours[seg]
    assert (np.abs(rc[used]) <= USED_REDUCED_COST * rate[seg][used]).all(), edges[used]
    home_rc = result.wage - result.rate
    assert (home_rc >= -REDUCED_COST_FLOOR * rate).all()
    home_used = result.home_flow > USED_FLOW * hours
    assert (np.abs(home_rc[home_used]) <= USED_REDUCED_COST * rate[home_used]).all()


# --------------------------------------------------------------------------- 5. equal rates
@SETTINGS
@given(
    eps=DEMAND_ELASTICITY,
    eta=SUPPLY_ELASTICITY,
    log_rate=LOG_RATE,
    log_hours=LOG_HOURS,
    fc=FEE,
    ff=FEE,
    neighbours=st.lists(
        st.tuples(DEMAND_ELASTICITY, SUPPLY_ELASTICITY, LOG_RATE, LOG_HOURS, FRICTION_SHARE),
        min_size=0,
        max_size=2,
    ),
)
def test_frictionless_link_equalizes_identical_segments(
    eps: float,
    eta: float,
    log_rate: float,
    log_hours: float,
    fc: float,
    ff: float,
    neighbours: list[tuple[float, float, float, float, float]],
) -> None:
    """Segments 0 and 1 have the same curves and edges both ways at zero friction; pool 0
    (and pool 1) may also serve a neighbour segment of its own. No other pool reaches 0 or
    1, so if p_0 > p_1 both pools would leave segment 1 (w ≥ p_0 > p_1) with nobody to
    serve its positive demand: the rates must be equal."""
    rows = []
    for eps_i, eta_i, log_p, log_h, fc_i, ff_i in [
        (eps, eta, log_rate, log_hours, fc, ff),
        (eps, eta, log_rate, log_hours, fc, ff),
        *[(e, h, lp, lh, 0.1, 0.1) for e, h, lp, lh, _ in neighbours],
    ]:
        rows.append(
            {
                "category": f"c{len(rows)}",
                "tier": "t",
                "demand_elasticity": eps_i,
                "log_demand_level": log_h - eps_i * (log_p + np.log1p(fc_i)),
                "supply_elasticity": eta_i,
                "log_supply_level": log_h - eta_i * (log_p + np.log1p(-ff_i)),
                "client_fee": fc_i,
                "freelancer_fee": ff_i,
            }
        )
    pool, segment, friction = [0, 1], [1, 0], [0.0, 0.0]
    for i, (*_, log_p, _, share) in enumerate(neighbours):
        pool.append(i)  # pool 0 serves neighbour 2, pool 1 neighbour 3
        segment.append(2 + i)
        friction.append(share * np.exp(log_p))
    market = Market(
        pd.DataFrame(rows), pd.DataFrame({"pool": pool, "segment": segment, "friction": friction})
    )
    note(market_code(market))
    result = solved(market)
    p0, p1 = result.rate[0], result.rate[1]
    # 1e-9: both rates are duals of the same two tight edges (w_0 = p_1, w_1 = p_0, flows
    # of the order of the hours both ways), each good to ~1e-10
    assert abs(p0 - p1) <= RATE_TOL * max(p0, p1), (p0, p1)


# --------------------------------------------------------------------------- 6. clearing
@SETTINGS
@given(market=markets())
def test_every_segment_and_pool_clears(market: Market) -> None:
    """D_k(p_k) + surplus_k = Σ_j x_jk + shortage_k for every segment, and every pool's
    supply S_j(w_j) = Σ_k x_jk."""
    result = solved(market)
    frame = result.to_frame()
    demand = frame["demand_hours"].to_numpy()
    supplied = frame["hours"].to_numpy() + result.surplus  # hours offered into the segment
    lhs, rhs = demand + result.surplus, supplied + result.shortage
    assert np.allclose(lhs, rhs, rtol=CLEAR_TOL, atol=0.0), frame
    offered = market.supply_hours(result.wage)
    assert np.allclose(frame["supply_hours"], offered, rtol=CLEAR_TOL, atol=0.0), frame


# --------------------------------------------------------------------------- regressions
# Markets the properties above found, reduced by hand to a few segments, with their
# exact answers. At commit cae74cc the first seven fail: the interior point is only ~√μ
# exact at a degenerate edge or bound, does not converge for a small elastic segment
# served by a big pool, and returns a verified but wrong rate for a segment priced far
# above its own curve. At 7accff8 (active-set polish) the first six pass, the seventh
# still fails, and the last (a floor absorbing a big pool) fails where cae74cc passed.
# Since 7d5a5ce all pass: slacks as variables, the polish, convergence of each balance
# against its own terms, and complementarity measured against the smaller end of a flow.
E2 = float(np.exp(2.0))


@pytest.mark.parametrize("pool_log_hours", [0.0, 6.0], ids=["equal", "big-pool"])
def test_degenerate_edge_keeps_rates_exact(pool_log_hours: float) -> None:
    """Two segments clearing alone at the same rate e², joined by a zero-friction edge:
    the exact answer is p = w = e² for both and no flow on the edge, whose flow and reduced
    cost are then both zero. At cae74cc the interior point ended with both at ~√(x·rc):
    rates 1.9e-7 (equal) and 2.6e-6 (big pool) off e², verified as ``solved`` at residual
    3.8e-7 and 1.3e-8 (the complementarity check divides the flow by the big pool's
    supply, not by the small segment's hours)."""
    result = solve(small_market((pool_log_hours, 0.0)))
    assert (result.status == "solved").all()
    np.testing.assert_allclose(result.rate, E2, rtol=RATE_TOL)
    np.testing.assert_allclose(result.wage, E2, rtol=RATE_TOL)
    demand = result.to_frame()["demand_hours"].to_numpy()
    rc = result.edges_frame()["reduced_cost"].to_numpy()
    used = result.flow > USED_FLOW * demand[1]
    assert (np.abs(rc[used]) <= USED_REDUCED_COST * E2).all()


@pytest.mark.parametrize("n_small", [1, 2], ids=["falls-back", "fails"])
def test_floor_at_the_clearing_rate_is_solved_exactly(n_small: int) -> None:
    """A big segment (H* = e^6.5 at p* = e^2.5) whose pool may serve small segments (H* = 1 at
    p* = e²) at zero friction; the last small one has a floor exactly at its rate e². No
    edge is used (w_0 = e^2.5 > e²), so every segment clears alone: p = (e^2.5, e², …).
    At cae74cc the interior point stopped with y·(p − floor) ≈ 8.6e-12 of the small
    segment's H*p* (the component's μ is dominated by the big segment), i.e. surplus 4e-6
    of the hours and p 2e-6 above the floor, and verification (1e-6) rejected it. With one
    small segment Clarabel failed too (1.5e-6) and SCS passed (``solved_fallback``); with
    two, Clarabel (8.4e-6) and SCS (2.4e-6) failed as well and the component ``failed``."""
    log_hours = (6.5, *([0.0] * n_small))
    log_rate = (2.5, *([2.0] * n_small))
    floor = (*([np.nan] * n_small), E2)
    edges = tuple((0, k) for k in range(1, n_small + 1))
    result = solve(small_market(log_hours, floor, log_rate, edges))
    assert result.ok, result.summary()
    assert (result.status == "solved").all(), result.summary()
    np.testing.assert_allclose(result.rate, np.exp(log_rate), rtol=RATE_TOL)


@pytest.mark.parametrize(
    ("log_demand", "log_supply", "eta", "client_fee"),
    [
        ((12.0, 10.0), (-4.0, 4.0), (1.0, 2.0), 0.0),  # Clarabel inaccurate, SCS passes
        # as drawn by hypothesis: Clarabel (2.7e-5) and SCS (4.2e-6) fail too → "failed"
        ((10.842426406800001, 11.0282842712), (-1.2047140452, 3.929289322), (1 / 3, 2.5), 0.5),
    ],
    ids=["falls-back", "fails"],
)
def test_small_elastic_segment_served_by_a_big_pool(
    log_demand: tuple[float, float],
    log_supply: tuple[float, float],
    eta: tuple[float, float],
    client_fee: float,
) -> None:
    """Segment 0 (ε = −3, ~1 h at ~$25–55) is served at zero friction by pool 1, which is
    thousands of hours at ~$7.6 (ε = −1): segment 0's rate falls to pool 1's and its hours
    grow ~300-fold. Nothing is degenerate — both edges into segment 0 and pool 1's home
    edge carry flow, so p_0 = p_1 = w_1 = p solves the single equation
    D_0(p) + D_1(p) = S_0(p) + S_1(p), the oracle here. At cae74cc the interior point did
    not converge in 200 iterations: the used edge's slack was clamped at its 1e-15·p*
    floor while μ was still ~1e-8, after which the line search took steps of 0.004–0.016.
    Clarabel was inaccurate on both; SCS solved the first and failed the second."""
    market = Market(
        pd.DataFrame(
            {
                "category": ["c0", "c1"],
                "tier": "t",
                "demand_elasticity": [-3.0, -1.0],
                "log_demand_level": list(log_demand),
                "supply_elasticity": list(eta),
                "log_supply_level": list(log_supply),
                "client_fee": [client_fee, 0.0],
            }
        ),
        pd.DataFrame({"pool": [1], "segment": [0], "friction": [0.0]}),
    )

    def excess(log_p: float) -> float:
        p = np.full(2, np.exp(log_p))
        return float(np.log(market.demand_hours(p).sum() / market.supply_hours(p).sum()))

    exact = np.exp(brentq(excess, np.log(1.0), np.log(100.0), xtol=1e-14))
    result = solve(market)
    assert result.ok, result.summary()
    assert (result.status == "solved").all(), result.summary()
    np.testing.assert_allclose(result.rate, exact, rtol=RATE_TOL)


def test_segment_served_only_by_another_pool_gets_that_pools_wage() -> None:
    """Found by the demand-shift property (in general position): segment 2 (ε = −3,
    p* = 7.5, H* = 1) loses its own pool to segment 0 (held at its floor 320) and is served
    by pool 3 alone, whose wage is segment 1's cap 250, so p_2 = w_3 = 250 exactly — and its
    demand is (7.5/250)³ ≈ 4e-5 of H*. The exact answer: p = (320, 250, 250, 250),
    w = (320, 250, 320, 250). At cae74cc (and with the polish in the working tree at the
    time of writing) p_2 came out 5e-5 low, the used edge 3 → 2 carrying all of segment 2's
    hours at a reduced cost of 5e-5·p, yet verified ``solved`` at residual 8.1e-7 (the flow
    is measured against pool 3's supply, ~33 h, not segment 2's 4e-5 h). Segment 2's
    non-binding floor (6) is needed to trigger it; without it p_2 is exact to 1e-11."""
    p_star = np.array([400.0, 320.0, 7.5, 7.5])
    h_star = np.array([1.0, 20_000.0, 1.0, 1.0])
    eps = np.array([-1.0, -1.0, -3.0, -1.0])
    segments = pd.DataFrame(
        {
            "category": ["c0", "c1", "c2", "c3"],
            "tier": "t",
            "demand_elasticity": eps,
            "log_demand_level": np.log(h_star) - eps * np.log(p_star),
            "supply_elasticity": 1.0,
            "log_supply_level": np.log(h_star) - np.log(p_star),
            "rate_floor": [320.0, np.nan, 6.0, np.nan],
            "rate_cap": [np.nan, 250.0, np.nan, np.nan],
        }
    )
    market = Market(
        segments, pd.DataFrame({"pool": [2, 3, 3], "segment": [0, 2, 1], "friction": 0})
    )
    result = solve(market)
    assert result.ok, result.summary()
    np.testing.assert_allclose(result.rate, [320.0, 250.0, 250.0, 250.0], rtol=RATE_TOL)
    np.testing.assert_allclose(result.wage, [320.0, 250.0, 320.0, 250.0], rtol=RATE_TOL)


@pytest.mark.parametrize(
    "friction", [6.4137070372673906, 51.309656298139124], ids=["tau-6.41", "tau-51.3"]
)
def test_floor_that_absorbs_a_big_pool(friction: float) -> None:
    """Found by the supply-shift property at 7accff8 (solved exactly at cae74cc, so a
    regression of the polish commits): segment 0 (p* = 410, H* = 1) has a floor at 319.68;
    pool 1 (p* = 7.56, H* = e⁸, η = 2) reaches it across ``friction``. The floor is a
    phantom demand at 319.68, so pool 1 sells there at w_1 = 319.68 − τ and works at home
    at the same rate: p = (319.68, 319.68 − τ) exactly, with ~4–5 million idle hours as
    segment 0's surplus. At 7accff8 the interior point does not converge (clearing residual
    1.5e-6 / 2.3e-5); with τ = 6.41 Clarabel (1.9e-6) and SCS (unbounded_inaccurate) fail
    too and both segments are ``failed``; with τ = 51.3 Clarabel passes at 8.5e-7."""
    floor = 319.68000403292314
    segments = pd.DataFrame(
        {
            "category": ["c0", "c1"],
            "tier": "t",
            "demand_elasticity": [-1.0, -1.0],
            "log_demand_level": [6.017320508075689, 10.022360679774998],
            "supply_elasticity": [1.0, 2.0],
            "log_supply_level": [-6.017320508075689, 3.955278640450004],
            "rate_floor": [floor, np.nan],
        }
    )
    edges = pd.DataFrame({"pool": [1], "segment": [0], "friction": [friction]})
    result = solve(Market(segments, edges))
    assert result.ok, result.summary()
    assert (result.status == "solved").all(), result.summary()
    np.testing.assert_allclose(result.rate, [floor, floor - friction], rtol=RATE_TOL)


# --------------------------------------------------------------------------- robustness
# Wall time on 2 cores (solve only, per seed): uncoupled ~0.005 s (0.3 s on the first call,
# warming up); coupled (2–50 segments per component, 10 % bounded, ~385 components)
# ~0.4–0.5 s, and ~1.6–1.9 s for seed 0, whose 45-segment component 374 sits near the 1e-6
# bar on every path (interior point 5.4e-7 at cae74cc; with the polish in the working tree
# at the time of writing, interior 1.1e-6, Clarabel 1.3e-6, SCS 5.6e-7: solved_fallback)
# and pays the first import of cvxpy. Whole test ~4 s.
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("sizes", "bounded_share"), [((1, 1), 0.0), ((2, 50), 0.1)], ids=["uncoupled", "coupled"]
)
def test_large_random_markets_solve(
    sizes: tuple[int, int], bounded_share: float, seed: int
) -> None:
    market = random_market(10_000, sizes, seed=seed, bounded_share=bounded_share)
    result = solve(market)
    assert result.ok, result.summary()
    assert not (result.status == "failed").any()
    done = np.isin(result.status, ("solved", "solved_fallback"))
    for name in ("rate", "wage", "home_flow"):
        assert np.isfinite(getattr(result, name)[done]).all(), name
    e = market.edges
    edge_done = done[e["pool"].to_numpy()] & done[e["segment"].to_numpy()]
    assert np.isfinite(result.flow[edge_done]).all()
    assert result.components["residual"].max() <= 1e-6
