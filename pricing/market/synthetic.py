"""Random markets of a chosen size and structure, for robustness tests and benchmarks.

Unlike :mod:`pricing.market.simulate` (a job history with known truth, to test estimation), this
draws a :class:`~pricing.market.market.Market` directly: segments with elasticities spread over
the whole supported ranges, levels and rates over orders of magnitude, and components of
a chosen size range joined by a random spanning tree plus extra edges (so both trees and
cycles occur), frictions up to a share of the rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.market.market import Market

DEMAND_ELASTICITY = (-3.0, -0.2)
SUPPLY_ELASTICITY = (0.1, 3.0)


def random_market(
    n_segments: int,
    component_sizes: tuple[int, int] = (1, 1),
    seed: int = 0,
    extra_edges: float = 1.0,
    max_friction_share: float = 0.2,
    bounded_share: float = 0.0,
) -> Market:
    """A market of about ``n_segments`` segments in components whose sizes are uniform in
    ``component_sizes`` (inclusive; (1, 1): uncoupled). Each component is a random
    spanning tree of directed edges plus ``extra_edges`` × its size random extra edges;
    ``bounded_share`` of the segments get a floor or a cap near their rate."""
    rng = np.random.default_rng(seed)
    lo, hi = component_sizes
    n_comp = max(1, round(n_segments / ((lo + hi) / 2)))
    sizes = rng.integers(lo, hi + 1, n_comp)
    n = int(sizes.sum())
    comp = np.repeat(np.arange(n_comp), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = np.arange(n) - starts[comp]
    rate = np.exp(rng.normal(3.6, 0.5, n))  # ~$37/h, mostly $15–100
    hours = np.exp(rng.normal(6.0, 1.5, n))  # ~400 h/week, thin to thick
    eps = rng.uniform(*DEMAND_ELASTICITY, n)
    eta = rng.uniform(*SUPPLY_ELASTICITY, n)
    imbalance = np.exp(rng.normal(0.0, 0.3, n))  # today's supply / demand at the rate
    segments = pd.DataFrame(
        {
            "category": [f"c{c}" for c in comp],
            "tier": [f"t{i}" for i in local],
            "demand_elasticity": eps,
            "log_demand_level": np.log(hours) - eps * np.log(rate),
            "supply_elasticity": eta,
            "log_supply_level": np.log(hours * imbalance) - eta * np.log(rate),
            "observed_rate": rate,
        }
    )
    if bounded_share > 0:
        bounded = rng.random(n) < bounded_share
        as_cap = rng.random(n) < 0.5
        level = rate * np.exp(rng.normal(0.0, 0.15, n))
        segments["rate_cap"] = np.where(bounded & as_cap, level, np.nan)
        segments["rate_floor"] = np.where(bounded & ~as_cap, level, np.nan)
    edges = _edges(rng, comp, starts, sizes, local, extra_edges)
    edges["friction"] = rng.uniform(0, max_friction_share, len(edges)) * rate[edges["segment"]]
    return Market(segments, edges)


#: ranges of the fees of :func:`connected_market` (fractions of the listed rate)
CLIENT_FEE = (0.0, 0.1)
FREELANCER_FEE = (0.05, 0.2)


def connected_market(
    n_segments: int,
    seed: int = 0,
    component_size: int | None = None,
    extra_edges: float = 1.0,
    max_friction_share: float = 0.15,
    bounded_share: float = 0.0,
) -> Market:
    """A market of ``n_segments`` segments in one connected component (issue 18's test
    market): a random spanning tree of directed edges plus ``extra_edges`` × n random
    extra edges, client fees uniform in :data:`CLIENT_FEE`, freelancer fees in
    :data:`FREELANCER_FEE`, frictions uniform up to ``max_friction_share`` of the
    segment's observed rate; ``bounded_share`` of the segments get a floor or a cap.

    ``component_size``: the same segments (curves, fees, bounds drawn from the same
    stream) cut into components of that many consecutive segments instead, each a
    spanning tree plus extra edges of its own; the baseline of the connected market in
    benchmarks. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    n = n_segments
    rate = np.exp(rng.normal(3.6, 0.5, n))
    hours = np.exp(rng.normal(6.0, 1.5, n))
    eps = rng.uniform(*DEMAND_ELASTICITY, n)
    eta = rng.uniform(*SUPPLY_ELASTICITY, n)
    imbalance = np.exp(rng.normal(0.0, 0.3, n))
    client_fee = rng.uniform(*CLIENT_FEE, n)
    freelancer_fee = rng.uniform(*FREELANCER_FEE, n)
    bounded = rng.random(n) < bounded_share
    as_cap = rng.random(n) < 0.5
    level = rate * np.exp(rng.normal(0.0, 0.15, n))
    # the curves pass through (rate, hours) in what clients pay and freelancers receive
    segments = pd.DataFrame(
        {
            "category": [f"c{i}" for i in range(n)],
            "tier": "t",
            "demand_elasticity": eps,
            "log_demand_level": np.log(hours) - eps * np.log(rate * (1 + client_fee)),
            "supply_elasticity": eta,
            "log_supply_level": np.log(hours * imbalance)
            - eta * np.log(rate * (1 - freelancer_fee)),
            "observed_rate": rate,
            "client_fee": client_fee,
            "freelancer_fee": freelancer_fee,
            "rate_cap": np.where(bounded & as_cap, level, np.nan),
            "rate_floor": np.where(bounded & ~as_cap, level, np.nan),
        }
    )
    # the adjacency from its own stream, so that cutting it keeps the segments
    edge_rng = np.random.default_rng([seed, 1])
    size = n if component_size is None else component_size
    comp = np.arange(n) // size
    sizes = np.bincount(comp)
    starts = np.cumsum(sizes) - sizes
    edges = _edges(edge_rng, comp, starts, sizes, np.arange(n) - starts[comp], extra_edges)
    share = edge_rng.uniform(0, max_friction_share, len(edges))
    edges["friction"] = share * rate[edges["segment"]]
    return Market(segments, edges)


def _edges(
    rng: np.random.Generator,
    comp: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    local: np.ndarray,
    extra: float,
) -> pd.DataFrame:
    n = comp.size
    child = np.flatnonzero(local > 0)
    parent = starts[comp[child]] + (rng.random(child.size) * local[child]).astype(np.int64)
    flip = rng.random(child.size) < 0.5
    pool = [np.where(flip, child, parent)]
    seg = [np.where(flip, parent, child)]
    n_extra = round(extra * n)
    src = rng.integers(0, n, n_extra)
    dst = starts[comp[src]] + rng.integers(0, sizes[comp[src]])
    keep = src != dst
    pool.append(src[keep])
    seg.append(dst[keep])
    key = np.unique(np.concatenate(pool) * n + np.concatenate(seg))
    return pd.DataFrame({"pool": key // n, "segment": key % n})


def random_catalogue(market: Market, n_options: int, seed: int = 0) -> pd.DataFrame:
    """An intervention catalogue of ``n_options`` levers on random categories of
    ``market`` (a third of each kind), priced against the category's weekly GMV at
    today's rates: recruit +1–5 % supply per unit, fee discounts of 0.2–1 point, reskills
    to a random other category opened at 5–20 % of its median rate, 0.5–4 $/h per unit."""
    rng = np.random.default_rng(seed)
    seg = market.segments
    gmv = (market.demand_hours(market.array("observed_rate")) * seg["observed_rate"]).groupby(
        seg["category"].astype(str)
    )
    weekly = gmv.sum()
    names = weekly.index.to_numpy(dtype=object)
    rate = seg.groupby(seg["category"].astype(str))["observed_rate"].median()
    category = rng.choice(names, n_options)
    kind = np.array(["recruit", "reskill", "fee_discount"])[np.arange(n_options) % 3]
    other = rng.choice(names, n_options)
    other = np.where(other == category, np.roll(names, 1)[np.searchsorted(names, category)], other)
    reskill = kind == "reskill"
    effect = np.select(
        [kind == "recruit", kind == "fee_discount"],
        [rng.uniform(0.01, 0.05, n_options), rng.uniform(0.002, 0.01, n_options)],
        rng.uniform(0.5, 4.0, n_options),
    )
    cost = weekly[category].to_numpy() * effect * rng.uniform(2.0, 10.0, n_options)
    cost = np.where(reskill, rng.uniform(500.0, 5000.0, n_options), cost)
    return pd.DataFrame(
        {
            "intervention_id": [f"{k}:{i}" for i, k in enumerate(kind)],
            "category": category,
            "kind": kind,
            "cost_per_unit": np.maximum(1.0, np.round(cost)),
            "max_units": rng.integers(1, 11, n_options),
            "effect_per_unit": effect,
            "to_category": pd.Series(other).where(reskill, None),
            "decay": rng.uniform(0.7, 1.0, n_options),
            "open_friction": np.where(
                reskill, rate[other].to_numpy() * rng.uniform(0.05, 0.2, n_options), np.nan
            ),
        }
    )
