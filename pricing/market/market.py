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

**Uncertainty.** A market from fitted curves carries, per segment and side, the standard
error of the elasticity and the degrees of freedom of its interval (``*_elasticity_se``,
``*_dof``); the uncertainty of the curve's level at its anchor — log hours at the anchor
rate a (``anchor_rate``, the as-of week's rate) — given the elasticity (``*_level_se``,
the nowcast filter's; NaN where unknown), and how that level moves with the elasticity,
as the covariance of the two (``*_slope_level_cov`` = g·se(ε)², g the level's gain per
unit of elasticity); the correlation of the demand and supply levels (``level_corr``);
for a forecast, the part of the levels' error that a market-wide shock shares between
segments (``*_common_se``, the sides' correlation ``common_corr``, and ``common_group``:
segments with the same code share one shock; :mod:`pricing.estimation.levels`); and the
curve's estimation flags (``*_flags``). Guidance draws its bands from these, so
a market read back from the store, or edited by a scenario, still has them.

**Edits.** Every change a scenario, a band draw or a lever makes is one of these methods,
each returning a new market:

- :meth:`Market.scaled`: a side's hours × m at every rate, l ← l + log m;
- :meth:`Market.rotated`: an elasticity ε → ε′ turning the curve around a listed rate a
  (by default the anchor), so that the hours there stay:
  l′ = l + (ε − ε′)(log a + log φ), with φ the side's fee factor (1 + f_c, 1 − f_f);
- :meth:`Market.with_fees`, :meth:`Market.with_bounds`: fees and rate bounds set;
- :meth:`Market.with_edges`: adjacency edges opened, re-priced or closed by their ends,
  :meth:`Market.with_frictions` by their positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.config import MarketConfig
from pricing.display import Display, table
from pricing.errors import MarketError, suggest
from pricing.estimation.curves import CurveSet
from pricing.inputs.adjacency import edges as adjacency_edges

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayLike = float | FloatArray
Mask = npt.NDArray[np.bool_]

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
#: Columns of the curves' uncertainty (module docstring), with their defaults: NaN is
#: unknown (no band), zero level uncertainty a curve whose level is taken as known; a
#: market built without an anchor rate anchors its curves at the observed rate.
UNCERTAINTY: dict[str, float] = {
    "anchor_rate": np.nan,
    "demand_elasticity_se": np.nan,
    "supply_elasticity_se": np.nan,
    "demand_dof": np.nan,
    "supply_dof": np.nan,
    "demand_level_se": 0.0,
    "supply_level_se": 0.0,
    "demand_slope_level_cov": 0.0,
    "supply_slope_level_cov": 0.0,
    "level_corr": 0.0,
    "demand_common_se": 0.0,
    "supply_common_se": 0.0,
    "common_corr": 0.0,
    "common_group": 0.0,
}
#: The curves' estimation flags (comma-separated names; "" for none).
FLAG_COLUMNS = ("demand_flags", "supply_flags")
#: The week the anchor rate was observed in (the segment's as-of week; NaT: unknown).
ANCHOR_WEEK = "anchor_week"
Side = Literal["demand", "supply"]
SIDES: tuple[Side, Side] = ("demand", "supply")


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
        # a market built by hand passes its curves through today's rate
        if "anchor_rate" not in segments:
            segments["anchor_rate"] = segments["observed_rate"]
        for name, value in UNCERTAINTY.items():
            segments[name] = segments[name].astype(np.float64) if name in segments else value
        for name in FLAG_COLUMNS:
            segments[name] = segments[name].fillna("").astype(str) if name in segments else ""
        if ANCHOR_WEEK in segments:
            segments[ANCHOR_WEEK] = pd.to_datetime(segments[ANCHOR_WEEK])
        else:
            segments[ANCHOR_WEEK] = pd.NaT
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
        week: Literal["as_of", "next"] = "as_of",
    ) -> Market:
        """The market of fitted ``curves``, the ``adjacency`` table (``from_category,
        to_category, friction``) and the ``[market]`` settings, in the as-of week or, with
        ``week="next"``, the week after it (the curves' forecast levels and their
        uncertainty)."""
        config = config or MarketConfig()
        keys = list(curves.segment_keys)
        demand = curves.side("demand")
        supply = curves.side("supply").reindex(demand.index)
        if week == "next":
            demand, supply = (_next_week(fit) for fit in (demand, supply))
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
        frame = frame.assign(**_uncertainty(curves, frame[keys], week))
        edges = segment_edges(frame, keys, adjacency)
        return cls(frame, edges, tuple(keys))

    def with_uncertainty(self, curves: CurveSet) -> Market:
        """This market with the uncertainty and flags of fitted ``curves`` (matched by the
        segment keys; a segment they lack gets none)."""
        keys = list(self.segment_keys)
        missing = [k for k in keys if k not in curves.frame.columns]
        if missing:
            raise MarketError(
                f"the curves lack the market's segment key column(s) {missing}; fit them with "
                f"segment keys {keys}"
            )
        columns = _uncertainty(curves, self.segments[keys])
        if np.isnan(columns["anchor_rate"]).all():  # curves without a reference point
            del columns["anchor_rate"]
        return self._edited(columns)

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

    # ----------------------------------------------------------------- edits
    def scaled(
        self, side: Side, factor: ArrayLike, where: Mask | None = None, check: bool = True
    ) -> Market:
        """``side``'s hours × ``factor`` (> 0) at every rate where ``where`` (default: every
        segment): l ← l + log factor."""
        column = f"log_{side}_level"
        shift = np.where(_mask(where, len(self)), np.log(factor), 0.0)
        return self._edited({column: self.array(column) + shift}, check=check)

    def rotated(
        self,
        elasticity: Mapping[Side, ArrayLike],
        where: Mask | None = None,
        around: ArrayLike | None = None,
        check: bool = True,
    ) -> Market:
        """Each side's elasticity in ``elasticity`` set where ``where``, each curve turned
        around the listed rate ``around`` (default: the anchor rate) so that the hours
        there stay (module docstring). A segment without a curve keeps none."""
        chosen = _mask(where, len(self)) & self.usable
        pivot = self.array("anchor_rate") if around is None else np.asarray(around, np.float64)
        columns = {}
        for side, value in elasticity.items():
            old = self.array(f"{side}_elasticity")
            new = np.where(chosen, value, old)
            with np.errstate(invalid="ignore", divide="ignore"):
                log_pivot = np.log(pivot) + self.log_fee(side)
            turned = np.where(chosen & (new != old), (old - new) * log_pivot, 0.0)
            columns[f"{side}_elasticity"] = new
            columns[f"log_{side}_level"] = self.array(f"log_{side}_level") + turned
        return self._edited(columns, check=check)

    def with_fees(
        self,
        client: ArrayLike | None = None,
        freelancer: ArrayLike | None = None,
        where: Mask | None = None,
        check: bool = True,
    ) -> Market:
        """The client and/or freelancer fee set where ``where``; the curves stay the same
        functions of the rates clients pay and freelancers get."""
        chosen = _mask(where, len(self))
        columns = {
            f"{name}_fee": np.where(chosen, value, self.array(f"{name}_fee"))
            for name, value in (("client", client), ("freelancer", freelancer))
            if value is not None
        }
        return self._edited(columns, check=check)

    def with_bounds(
        self,
        floor: ArrayLike | None = None,
        cap: ArrayLike | None = None,
        where: Mask | None = None,
        check: bool = True,
    ) -> Market:
        """Rate floor and/or cap set where ``where`` (NaN removes one)."""
        chosen = _mask(where, len(self))
        columns = {
            f"rate_{name}": np.where(chosen, value, self.array(f"rate_{name}"))
            for name, value in (("floor", floor), ("cap", cap))
            if value is not None
        }
        return self._edited(columns, check=check)

    def with_frictions(self, friction: FloatArray, check: bool = True) -> Market:
        """Every edge re-priced to ``friction`` (one per edge, in order); NaN closes it."""
        keep = ~np.isnan(friction)
        edges = pd.DataFrame(
            {
                "pool": self.edges["pool"].to_numpy()[keep],
                "segment": self.edges["segment"].to_numpy()[keep],
                "friction": np.asarray(friction, np.float64)[keep],
            },
            copy=False,
        )
        return self._edited({}, edges, check=check)

    def with_edges(self, edges: pd.DataFrame) -> Market:
        """The edges ``pool → segment`` of ``edges`` (positions and ``friction``) set:
        re-priced where they exist, opened where not; a NaN friction closes one."""
        n = len(self)
        have = self.edges["pool"].to_numpy() * n + self.edges["segment"].to_numpy()
        want = edges["pool"].to_numpy() * n + edges["segment"].to_numpy()
        friction = pd.Series(edges["friction"].to_numpy(np.float64), index=want)
        friction = friction[~friction.index.duplicated(keep="last")]
        kept = self.edges[~np.isin(have, friction.index)]
        opened = friction[friction.notna()]
        added = pd.DataFrame(
            {"pool": opened.index // n, "segment": opened.index % n, "friction": opened.to_numpy()}
        )
        out = pd.concat([kept, added]).sort_values(["pool", "segment"], kind="stable")
        return self._edited({}, out.reset_index(drop=True))

    def _edited(
        self,
        columns: dict[str, FloatArray],
        edges: pd.DataFrame | None = None,
        check: bool = True,
    ) -> Market:
        """This market with ``columns`` replaced (the others shared, not copied) and, if
        given, new ``edges``; checked unless ``check`` is false (an edit that keeps every
        rule, on the hot paths of band draws and plans)."""
        segments = self.segments.assign(**columns)
        chosen = self.edges if edges is None else edges
        if check:
            return Market(segments, chosen, self.segment_keys)
        return Market.unchecked(segments, chosen, self.segment_keys)

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
        anchor = s["anchor_rate"].to_numpy()
        check((anchor <= 0) | np.isinf(anchor), "anchor_rate must be positive (NaN: none)")
        for name in ("level_corr", "common_corr"):
            check(~(np.abs(s[name].to_numpy()) <= 1), f"{name} must be in [−1, 1]")
        for side in SIDES:
            v = s[f"{side}_common_se"].to_numpy()
            check(~(v >= 0) | np.isinf(v), f"{side}_common_se must be ≥ 0 and finite")
            for what in ("elasticity_se", "level_se"):
                v = s[f"{side}_{what}"].to_numpy()
                check((v < 0) | np.isinf(v), f"{side}_{what} must be ≥ 0 and finite (NaN: unknown)")
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

    def log_fee(self, side: Side) -> FloatArray:
        """log of the side's fee factor: log(1 + client_fee) or log(1 − freelancer_fee)."""
        return self.log_client_fee if side == "demand" else self.log_freelancer_fee

    @cached_property
    def has_bounds(self) -> bool:
        """Whether any segment has a rate floor or cap."""
        return bool(self.segments[["rate_floor", "rate_cap"]].notna().to_numpy().any())

    def array(self, name: str) -> FloatArray:
        """A parameter column as a read-only float array (read from the frame once: a
        market does not change)."""
        out = self._arrays.get(name)
        if out is None:
            out = self.segments[name].to_numpy(np.float64)
            out.flags.writeable = False
            self._arrays[name] = out
        return out

    @cached_property
    def _arrays(self) -> dict[str, FloatArray]:
        """The columns :meth:`array` has read (a solve reads each several times, and a
        pandas column access costs ~50 µs)."""
        return {}

    # ----------------------------------------------------------------- curves
    def hours(self, side: Side, rate: FloatArray) -> FloatArray:
        """Hours demanded (``demand``: the client pays rate × (1 + client_fee)) or offered
        (``supply``: freelancers get rate × (1 − freelancer_fee)) at listed ``rate``."""
        return curve_hours(
            self.array(f"log_{side}_level"),
            self.array(f"{side}_elasticity"),
            np.log(rate) + self.log_fee(side),
        )

    def demand_hours(self, rate: FloatArray) -> FloatArray:
        """Hours demanded at listed ``rate``."""
        return self.hours("demand", rate)

    def supply_hours(self, rate: FloatArray) -> FloatArray:
        """Hours pools offer at listed ``rate``."""
        return self.hours("supply", rate)

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
            lines.append(table(self.to_frame().head(max_rows)))
        return "\n".join(lines)


def _uncertainty(
    curves: CurveSet, segments: pd.DataFrame, week: Literal["as_of", "next"] = "as_of"
) -> dict[str, npt.NDArray[Any]]:
    """The uncertainty columns (module docstring) of ``curves`` for ``segments`` (their
    key columns): the elasticities' standard errors and degrees of freedom, the flags,
    and the anchor, the reference rate the levels were fitted through."""
    keys = list(segments.columns)
    out: dict[str, npt.NDArray[Any]] = {}
    for side in SIDES:
        fit = curves.side(side)
        fit = (_next_week(fit) if week == "next" else fit).reset_index()
        for name, default in (("dof", np.inf), ("ref_rate", np.nan), ("flags", "")):
            if name not in fit:
                fit[name] = default
        aligned = segments.merge(fit, on=keys, how="left", validate="one_to_one")
        if side == "demand":
            out["anchor_rate"] = aligned["ref_rate"].to_numpy(np.float64)
            if "ref_week" in aligned:
                out[ANCHOR_WEEK] = pd.to_datetime(aligned["ref_week"]).to_numpy()
            for name in ("level_corr", "common_corr", "common_group"):
                if name in aligned:
                    out[name] = aligned[name].fillna(0.0).to_numpy(np.float64)
        out[f"{side}_elasticity_se"] = aligned["std_error"].to_numpy(np.float64)
        out[f"{side}_dof"] = aligned["dof"].to_numpy(np.float64)
        out[f"{side}_flags"] = aligned["flags"].fillna("").astype(str).to_numpy()
        if "level_se" in aligned:  # NaN: a level whose uncertainty is unknown (no band)
            out[f"{side}_level_se"] = aligned["level_se"].to_numpy(np.float64)
            cov = aligned["slope_level_cov"].fillna(0.0)
            out[f"{side}_slope_level_cov"] = cov.to_numpy(np.float64)
        if "common_se" in aligned:
            out[f"{side}_common_se"] = aligned["common_se"].fillna(0.0).to_numpy(np.float64)
    return out


def _next_week(fit: pd.DataFrame) -> pd.DataFrame:
    """A side's fitted curves with the next week's levels and level uncertainty in place
    of the as-of week's (the slope's uncertainty and its covariance with the level are
    carried over: the forecast moves the level, not the slope), with the common part of
    the levels' error (the as-of week's has none: its shifters are observed)."""
    return fit.assign(
        log_level=fit["log_level_next"],
        level_se=fit["level_se_next"],
        level_corr=fit["level_corr_next"],
        common_se=fit["common_se_next"],
        common_corr=fit["common_corr_next"],
    )


def curve_hours(log_level: ArrayLike, elasticity: ArrayLike, log_price: ArrayLike) -> FloatArray:
    """The constant-elasticity curve, hours = exp(level) · price^elasticity, in logs: the
    one place its formula is written (demand in the client's price, supply in the
    freelancer's)."""
    hours: FloatArray = np.exp(
        np.asarray(log_level) + np.asarray(elasticity) * np.asarray(log_price)
    )
    return hours


def curve_price(log_level: ArrayLike, elasticity: ArrayLike, hours: ArrayLike) -> FloatArray:
    """The inverse of :func:`curve_hours`: the price at which the curve gives ``hours``."""
    price: FloatArray = np.exp(
        (np.log(np.asarray(hours)) - np.asarray(log_level)) / np.asarray(elasticity)
    )
    return price


def _mask(where: Mask | None, n: int) -> npt.NDArray[np.bool_]:
    return np.ones(n, bool) if where is None else np.asarray(where, dtype=bool)


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
    """Adjacency rows → segment edges: the pool of (from_category, from_tier,
    from_region) → the segment of (to_category, to_tier, to_region), a blank tier or
    region meaning every one (pool end) or the pool's (segment end); the most specific
    row wins an edge (:mod:`pricing.inputs.adjacency`, contract v1.1)."""
    if adjacency is None or adjacency.empty:
        return pd.DataFrame(
            {
                "pool": np.array([], np.int64),
                "segment": np.array([], np.int64),
                "friction": np.array([], np.float64),
            }
        )
    others = [k for k in keys if k != "category"]
    values = {k: sorted(frame[k].astype(str).unique()) for k in others}
    named = adjacency_edges(adjacency, values)
    position = frame[keys].astype(str).assign(_pos=np.arange(len(frame)))
    ends = {}
    for end, label in (("from", "pool"), ("to", "segment")):
        ends[end] = position.rename(columns={k: f"{end}_{k}" for k in keys} | {"_pos": label})
    joined = named.merge(ends["from"], on=[f"from_{k}" for k in keys]).merge(
        ends["to"], on=[f"to_{k}" for k in keys]
    )
    out = joined[["pool", "segment", "friction"]].sort_values(["pool", "segment"])
    return out.reset_index(drop=True)
