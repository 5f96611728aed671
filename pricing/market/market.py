r"""The market the equilibrium is computed on: curves, pools, adjacency, fees and bounds.

Every segment i has a demand curve in the rate the client pays, P = p(1 + f_c,i), and a
supply curve in the rate the freelancer receives, W = p(1 − f_f,i), for a listed rate p:

    D_i(P) = exp(log_demand_level_i) · P^ε_i      ε_i < 0
    S_i(W) = exp(log_supply_level_i) · W^η_i      η_i > 0

The freelancers whose primary segment is i form **pool i**. A pool serves its own segment
at no cost and, along an adjacency edge (j → k, friction τ_jk in USD per hour), the
segments of other categories that share its other keys (tier, region). A rate floor or
cap bounds the listed rate of a segment.

**From fitted curves.** :func:`pricing.fit_curves` estimates each curve in the listed
rate observed over the history, ``log QD = log_level + ε log p``. The fees configured in
``[market]`` are taken to be the ones in force over that window, so the client-rate curve
is the estimated one read through them:

    log_demand_level = log_level_D − ε log(1 + f_c),
    log_supply_level = log_level_S − η log(1 − f_f),

and at the configured fees the market reproduces the estimated curves exactly; a scenario
that changes a fee moves the rate along them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.config import MarketConfig
from pricing.display import Display
from pricing.errors import MarketError, suggest
from pricing.estimation.curves import CurveSet

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Columns of :attr:`Market.segments` besides the segment keys, with their defaults
#: (``None``: required).
PARAMETERS: dict[str, float | None] = {
    "demand_elasticity": None,
    "log_demand_level": None,
    "supply_elasticity": None,
    "log_supply_level": None,
    "observed_rate": np.nan,  # today's listed rate, USD/h (NaN: unknown)
    "client_fee": 0.0,
    "freelancer_fee": 0.0,
    "rate_floor": np.nan,  # NaN: no floor
    "rate_cap": np.nan,  # NaN: no cap
}
CURVE_PARAMETERS = (
    "demand_elasticity",
    "log_demand_level",
    "supply_elasticity",
    "log_supply_level",
)


@dataclass(frozen=True)
class Market(Display):
    """Segments with their curves, fees and bounds, and the adjacency edges between pools.

    ``segments`` has the segment keys plus the columns of :data:`PARAMETERS`; a segment
    whose four curve parameters are all NaN has no usable curve and is reported, not
    solved. ``edges`` has ``pool`` and ``segment`` (row positions in ``segments``) and
    ``friction`` (USD per hour, ≥ 0); home edges (pool i → segment i) are implicit.
    Construct by hand for tests and notebooks, or with :meth:`from_curves`.
    """

    segments: pd.DataFrame
    edges: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"pool": [], "segment": [], "friction": []})
    )
    segment_keys: tuple[str, ...] = ("category", "tier")

    def __post_init__(self) -> None:
        segments = self.segments.reset_index(drop=True).copy()
        for name, default in PARAMETERS.items():
            if name not in segments.columns:
                if default is None:
                    raise MarketError(f"segments need a '{name}' column")
                segments[name] = default
            segments[name] = segments[name].astype(np.float64)
        missing = [k for k in self.segment_keys if k not in segments.columns]
        if missing:
            raise MarketError(f"segments lack the key column(s) {missing}")
        edges = self.edges.reset_index(drop=True).copy()
        for name in ("pool", "segment", "friction"):
            if name not in edges.columns:
                raise MarketError(f"edges need a '{name}' column (pool, segment, friction)")
        edges = edges.astype({"pool": np.int64, "segment": np.int64, "friction": np.float64})
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "edges", edges)
        problems = self._problems()
        if problems:
            raise MarketError(
                f"the market has {len(problems)} problem(s):\n"
                + "\n".join(f"  - {p}" for p in problems)
            )

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_curves(
        cls,
        curves: CurveSet,
        adjacency: pd.DataFrame | None = None,
        config: MarketConfig | None = None,
    ) -> Market:
        """The market of fitted ``curves``, the ``adjacency`` table (``from_category,
        to_category, friction``) and the ``[market]`` settings."""
        config = config or MarketConfig()
        keys = list(curves.segment_keys)
        demand = curves.side("demand")
        supply = curves.side("supply").reindex(demand.index)
        frame = demand.index.to_frame(index=False)
        categories = frame["category"].astype(str)
        problems = _unknown_categories(config, set(categories))
        client_fee = categories.map(config.client_fee_by_category).fillna(config.client_fee)
        freelancer_fee = categories.map(config.freelancer_fee_by_category).fillna(
            config.freelancer_fee
        )
        eps = demand["elasticity"].to_numpy(np.float64)
        eta = supply["elasticity"].to_numpy(np.float64)
        frame["demand_elasticity"] = eps
        frame["log_demand_level"] = demand["log_level"].to_numpy() - eps * np.log1p(
            client_fee.to_numpy(np.float64)
        )
        frame["supply_elasticity"] = eta
        frame["log_supply_level"] = supply["log_level"].to_numpy() - eta * np.log1p(
            -freelancer_fee.to_numpy(np.float64)
        )
        frame["observed_rate"] = demand["ref_rate"].to_numpy(np.float64)
        frame["client_fee"] = client_fee.to_numpy(np.float64)
        frame["freelancer_fee"] = freelancer_fee.to_numpy(np.float64)
        floor, cap, bound_problems = _bounds(frame, keys, config)
        problems += bound_problems
        if problems:
            raise MarketError(
                f"the [market] settings have {len(problems)} problem(s):\n"
                + "\n".join(f"  - {p}" for p in problems)
            )
        frame["rate_floor"] = floor
        frame["rate_cap"] = cap
        # a segment without a usable curve is carried with NaN parameters (reported)
        unusable = ~np.isfinite(frame[list(CURVE_PARAMETERS)].to_numpy()).all(axis=1)
        frame.loc[unusable, list(CURVE_PARAMETERS)] = np.nan
        edges = segment_edges(frame, keys, adjacency)
        return cls(frame, edges, tuple(keys))

    def stack(self, rows: IntArray, copy: IntArray) -> tuple[Market, IntArray]:
        """Variants side by side in one market, to solve them in one batched call.

        Row i of the result is segment ``rows[i]`` in copy ``copy[i]`` (each pair at most
        once); an edge joins two rows of the same copy wherever it joins their segments
        here. Returns the market and, for each of its edges, the position of the edge it
        copies in :attr:`edges`, so a caller can change frictions or drop edges per copy.
        Stacking whole components keeps the copies' equilibria those of the originals.
        """
        rows = np.asarray(rows, dtype=np.int64)
        copy = np.asarray(copy, dtype=np.int64)
        n = len(self)
        key = copy * n + rows
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        if sorted_key.size and (np.diff(sorted_key) == 0).any():
            raise ValueError("stack: a (copy, segment) pair appears twice")
        pool = self.edges["pool"].to_numpy()
        by_pool = np.argsort(pool, kind="stable")
        counts = np.bincount(pool, minlength=n)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        k = counts[rows]
        new_pool = np.repeat(np.arange(rows.size), k)
        offset = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
        edge_id = by_pool[first[rows][new_pool] + offset]
        target = copy[new_pool] * n + self.edges["segment"].to_numpy()[edge_id]
        at = np.minimum(np.searchsorted(sorted_key, target), max(sorted_key.size - 1, 0))
        found = sorted_key[at] == target if sorted_key.size else np.zeros(0, bool)
        edges = pd.DataFrame(
            {
                "pool": new_pool[found],
                "segment": order[at[found]],
                "friction": self.edges["friction"].to_numpy()[edge_id[found]],
            }
        )
        segments = self.segments.iloc[rows].reset_index(drop=True)
        return Market.unchecked(segments, edges, self.segment_keys), edge_id[found]

    @classmethod
    def unchecked(
        cls, segments: pd.DataFrame, edges: pd.DataFrame, segment_keys: tuple[str, ...]
    ) -> Market:
        """A market from frames already in :class:`Market`'s layout (every parameter
        column float, edges int64/int64/float64, a default index) and derived from a
        checked market by changes that keep every rule — copies of segments and edges,
        fees and frictions clipped to their ranges. Skips the checks, which dominate the
        cost of building the many variants a plan or a band solves."""
        market = object.__new__(cls)
        object.__setattr__(market, "segments", segments)
        object.__setattr__(market, "edges", edges)
        object.__setattr__(market, "segment_keys", segment_keys)
        return market

    # ----------------------------------------------------------------- validation
    def _problems(self) -> list[str]:
        s, e = self.segments, self.edges
        label = self.labels
        problems: list[str] = []

        def check(bad: npt.NDArray[np.bool_], what: str) -> None:
            if bad.any():
                idx = np.flatnonzero(bad)
                shown = ", ".join(label[i] for i in idx[:5])
                more = f" and {idx.size - 5} more" if idx.size > 5 else ""
                problems.append(f"{what}: {shown}{more}")

        curve = s[list(CURVE_PARAMETERS)].to_numpy()
        finite = np.isfinite(curve)
        check(finite.any(axis=1) & ~finite.all(axis=1), "curve parameters partly missing")
        eps, eta = s["demand_elasticity"].to_numpy(), s["supply_elasticity"].to_numpy()
        check(eps >= 0, "demand elasticity must be negative")
        check(eta <= 0, "supply elasticity must be positive")
        for fee in ("client_fee", "freelancer_fee"):
            v = s[fee].to_numpy()
            check(~((v >= 0) & (v < 1)), f"{fee} must be in [0, 1)")
        floor, cap = s["rate_floor"].to_numpy(), s["rate_cap"].to_numpy()
        check((floor <= 0) | np.isinf(floor), "rate_floor must be positive (NaN: none)")
        check((cap <= 0) | np.isinf(cap), "rate_cap must be positive (NaN: none)")
        check(floor >= cap, "rate_floor must be below rate_cap")
        observed = s["observed_rate"].to_numpy()
        check((observed <= 0) | np.isinf(observed), "observed_rate must be positive (NaN: none)")
        n = len(s)
        pool, seg, tau = e["pool"].to_numpy(), e["segment"].to_numpy(), e["friction"].to_numpy()
        out_of_range = (pool < 0) | (pool >= n) | (seg < 0) | (seg >= n)
        if out_of_range.any():
            problems.append(f"{int(out_of_range.sum())} edge(s) name a segment position ≥ {n}")
            return problems
        if (pool == seg).any():
            problems.append("an edge joins a pool to its own segment (home edges are implicit)")
        if not (np.isfinite(tau) & (tau >= 0)).all():
            problems.append("edge friction must be finite and ≥ 0")
        if pd.Index(pool * n + seg).has_duplicates:
            problems.append("an edge (pool, segment) appears twice")
        return problems

    # ----------------------------------------------------------------- structure
    def __len__(self) -> int:
        return len(self.segments)

    @cached_property
    def labels(self) -> list[str]:
        """``category/tier[/region]`` of every segment."""
        parts = [self.segments[k].astype(str) for k in self.segment_keys]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + "/" + part
        return joined.tolist()

    @cached_property
    def usable(self) -> npt.NDArray[np.bool_]:
        """Segments whose curves are all finite (the others are reported, not solved)."""
        finite: npt.NDArray[np.bool_] = np.isfinite(
            self.segments[list(CURVE_PARAMETERS)].to_numpy(np.float64)
        ).all(axis=1)
        return finite

    @cached_property
    def active_edges(self) -> npt.NDArray[np.bool_]:
        """Edges whose pool and segment both have usable curves."""
        e = self.edges
        active: npt.NDArray[np.bool_] = (
            self.usable[e["pool"].to_numpy()] & self.usable[e["segment"].to_numpy()]
        )
        return active

    @cached_property
    def component(self) -> IntArray:
        """Connected component of every segment over the active edges (0, 1, …)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(self)
        active = self.active_edges
        if not active.any():
            return np.arange(n, dtype=np.int64)
        e = self.edges[active]
        graph = coo_matrix(
            (np.ones(len(e)), (e["pool"].to_numpy(), e["segment"].to_numpy())), shape=(n, n)
        )
        _, labels = connected_components(graph, directed=False)
        return np.asarray(labels, dtype=np.int64)

    @cached_property
    def log_client_fee(self) -> FloatArray:
        """log(1 + client_fee) per segment."""
        return np.log1p(self.array("client_fee"))

    @cached_property
    def log_freelancer_fee(self) -> FloatArray:
        """log(1 − freelancer_fee) per segment."""
        return np.log1p(-self.array("freelancer_fee"))

    @cached_property
    def has_bounds(self) -> bool:
        """Whether any segment has a rate floor or cap."""
        return bool(self.segments[["rate_floor", "rate_cap"]].notna().to_numpy().any())

    def array(self, name: str) -> FloatArray:
        """A parameter column as a read-only float array."""
        out = self.segments[name].to_numpy(np.float64)
        out.flags.writeable = False
        return out

    # ----------------------------------------------------------------- curves
    def demand_hours(self, rate: FloatArray) -> FloatArray:
        """Hours demanded at listed ``rate`` (the client pays rate × (1 + client_fee))."""
        eps = self.array("demand_elasticity")
        client = np.log(rate) + self.log_client_fee
        hours: FloatArray = np.exp(self.array("log_demand_level") + eps * client)
        return hours

    def supply_hours(self, rate: FloatArray) -> FloatArray:
        """Hours pools offer at listed ``rate`` (freelancers get rate × (1 − freelancer_fee))."""
        eta = self.array("supply_elasticity")
        freelancer = np.log(rate) + self.log_freelancer_fee
        hours: FloatArray = np.exp(self.array("log_supply_level") + eta * freelancer)
        return hours

    def uncoupled_rate(self) -> FloatArray:
        """The listed rate that clears each segment alone, ignoring bounds (closed form)::

        exp(l_D) (p(1+f_c))^ε = exp(l_S) (p(1−f_f))^η
        ⇔ log p = (l_D − l_S + ε log(1+f_c) − η log(1−f_f)) / (η − ε)
        """
        eps, eta = self.array("demand_elasticity"), self.array("supply_elasticity")
        numerator = (
            self.array("log_demand_level")
            - self.array("log_supply_level")
            + eps * self.log_client_fee
            - eta * self.log_freelancer_fee
        )
        return np.exp(numerator / (eta - eps))

    # ----------------------------------------------------------------- notebook
    def edges_frame(self) -> pd.DataFrame:
        """The adjacency edges with the pool's and the segment's labels."""
        e = self.edges.copy()
        labels = np.asarray(self.labels, dtype=object)
        e.insert(0, "from_segment", labels[e["pool"].to_numpy()])
        e.insert(1, "to_segment", labels[e["segment"].to_numpy()])
        return e

    def to_frame(self) -> pd.DataFrame:
        out = self.segments.copy()
        out["component"] = self.component
        out["usable"] = self.usable
        return out

    def summary(self, max_rows: int = 0) -> str:
        comp = self.component
        sizes = np.bincount(comp)
        coupled = int((sizes[comp] > 1).sum())
        lines = [
            f"Market of {len(self):,} segments ({int((~self.usable).sum())} without usable "
            f"curves), {len(self.edges):,} adjacency edges",
            f"  {coupled:,} segments in {int((sizes > 1).sum()):,} coupled components "
            f"(largest {int(sizes.max()) if sizes.size else 0}), "
            f"{len(self) - coupled:,} uncoupled",
        ]
        for fee in ("client_fee", "freelancer_fee"):
            v = self.segments[fee]
            lines.append(f"  {fee}: {v.min():.1%} … {v.max():.1%}")
        bounded = self.segments[["rate_floor", "rate_cap"]].notna().sum()
        lines.append(f"  {bounded['rate_floor']} floors, {bounded['rate_cap']} caps")
        if max_rows:
            lines.append(self.to_frame().head(max_rows).to_string(index=False))
        return "\n".join(lines)


def _unknown_categories(config: MarketConfig, categories: set[str]) -> list[str]:
    problems = []
    for setting in ("client_fee_by_category", "freelancer_fee_by_category"):
        for name in getattr(config, setting):
            if name not in categories:
                hint = suggest(name, sorted(categories))
                problems.append(
                    f"market.{setting}: no segment has category '{name}'"
                    + (f"; did you mean '{hint}'?" if hint else "")
                )
    return problems


def _bounds(
    frame: pd.DataFrame, keys: list[str], config: MarketConfig
) -> tuple[FloatArray, FloatArray, list[str]]:
    """Floor and cap of every segment: highest floor, lowest cap among matching entries."""
    floor = np.full(len(frame), np.nan)
    cap = np.full(len(frame), np.nan)
    problems = []
    for i, bound in enumerate(config.bounds):
        match = np.ones(len(frame), dtype=bool)
        for key in ("category", "tier", "region"):
            wanted = getattr(bound, key)
            if wanted is None:
                continue
            if key not in keys:
                problems.append(f"market.bounds.{i}: '{key}' is not a segment key")
                match[:] = False
                continue
            values = frame[key].astype(str)
            if wanted not in set(values):
                hint = suggest(wanted, sorted(set(values)))
                problems.append(
                    f"market.bounds.{i}: no segment has {key} '{wanted}'"
                    + (f"; did you mean '{hint}'?" if hint else "")
                )
            match &= (values == wanted).to_numpy()
        if bound.floor is not None:
            floor[match] = np.fmax(floor[match], bound.floor)
        if bound.cap is not None:
            cap[match] = np.fmin(cap[match], bound.cap)
    crossed = floor >= cap
    if crossed.any():
        problems.append(
            f"market.bounds: {int(crossed.sum())} segment(s) get a floor at or above their cap "
            "from different entries"
        )
    return floor, cap, problems


def segment_edges(
    frame: pd.DataFrame, keys: list[str], adjacency: pd.DataFrame | None
) -> pd.DataFrame:
    """Category edges → segment edges: pool (from, other keys) → segment (to, other keys)."""
    if adjacency is None or adjacency.empty:
        return pd.DataFrame(
            {
                "pool": np.array([], np.int64),
                "segment": np.array([], np.int64),
                "friction": np.array([], np.float64),
            }
        )
    others = [k for k in keys if k != "category"]
    position = frame[keys].assign(_pos=np.arange(len(frame)))
    pools = position.rename(columns={"category": "from_category", "_pos": "pool"})
    segments = position.rename(columns={"category": "to_category", "_pos": "segment"})
    adj = adjacency[["from_category", "to_category", "friction"]].astype(
        {"from_category": str, "to_category": str}
    )
    joined = adj.merge(pools, on="from_category").merge(
        segments, on=["to_category", *others] if others else ["to_category"]
    )
    out = joined[["pool", "segment", "friction"]].sort_values(["pool", "segment"])
    return out.reset_index(drop=True)
