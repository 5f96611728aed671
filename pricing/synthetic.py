"""Random markets of a chosen size and structure, for robustness tests and benchmarks.

Unlike :mod:`pricing.simulate` (a job history with known truth, to test estimation), this
draws a :class:`~pricing.market.Market` directly: segments with elasticities spread over
the whole supported ranges, levels and rates over orders of magnitude, and components of
a chosen size range joined by a random spanning tree plus extra edges (so both trees and
cycles occur), frictions up to a share of the rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.market import Market

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
