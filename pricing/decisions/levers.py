r"""Supply levers: what buying units of a catalogue lever does to a :class:`Market`, and
what the market is then worth.

**Diminishing returns.** Unit u of a lever acts with strength e·d^(u−1), for
``effect_per_unit`` e and ``decay`` d ∈ (0, 1] (default :data:`DEFAULT_DECAY`), so u units
act with

    E(u) = e (1 − d^u) / (1 − d)        (E(u) = e·u when d = 1).

**Effects**, on every segment (or edge) of the lever's category:

- ``recruit``: the supply level is multiplied by 1 + E(u) (+E(u) hours at every rate);
  several recruit levers on one category multiply;
- ``fee_discount``: the freelancer fee falls by E(u), to no less than 0;
- ``reskill``: the friction of the edges ``category → to_category`` (every edge out of
  ``category`` when ``to_category`` is empty) falls by E(u) USD/h, to no less than 0.
  Where the adjacency has no such edge the lever opens it at ``open_friction`` − E(u)
  (required then); bought at 0 units the edge stays closed.

**Objectives** of a solved market, each a sum over segments k and pools j:

- ``hours``: filled hours Σ_k q_k (offered hours less any idle at a floor);
- ``gmv``: Σ_k q_k p_k, the hours at the listed rate (fees on top are not counted);
- ``surplus``: total surplus, clients' value of the hours less freelancers' cost of
  working them and the friction of working across categories; fees are transfers and
  cancel. With P_k(q) = (q/A_k)^(1/ε_k) the inverse demand in client rates, capped at a
  choke price P̄_k = :data:`CHOKE` × today's client rate (constant-elasticity demand with
  ε ≥ −1 values the first hours without bound, so a segment a plan lifts from ~0 hours
  would otherwise dominate), q̄_k = D_k(P̄_k) the hours demanded there, and
  W_j(s) = (s/B_j)^(1/η_j) the inverse supply in freelancer rates:

      U_k(q) = ∫_0^q min(P_k, P̄_k) = P̄_k q                                   (q ≤ q̄_k)
             = P̄_k q̄_k (1 + expm1(a L)/a),  a = 1 + 1/ε_k,  L = log(q/q̄_k)   (q > q̄_k)
               (expm1(a L)/a → L as a → 0, i.e. ε = −1),
      C_j(s) = ∫_0^s W_j = s W_j(s) · η_j/(1 + η_j),

  and the surplus is Σ_k [U_k(q_k) − U_k(q⁰_k)] − Σ_j C_j(s_j) − Σ τ_jk x_jk, measured
  from the baseline's hours q⁰. Levers move only supply, so U_k is the same function
  before and after.

Many variants of the market are valued in one batched solve: :meth:`Levers.variants`
stacks copies of the groups a lever touches (the components of the market with every
edge a lever could open), each copy with its own units.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse

from pricing.errors import MarketError
from pricing.inputs.contract import CATALOGUE_COLUMNS
from pricing.inputs.validation import Problem, check_frame
from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import PARAMETERS, Market, curve_hours, curve_price, segment_edges

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Objective = Literal["hours", "gmv", "surplus"]

OBJECTIVES: tuple[Objective, ...] = ("hours", "gmv", "surplus")
#: decay of a lever whose catalogue row leaves ``decay`` empty
DEFAULT_DECAY = 0.9
#: clients value an hour at most this many times today's client rate (surplus objective)
CHOKE = 10.0


def cumulative_effect(effect: FloatArray, decay: FloatArray, units: FloatArray) -> FloatArray:
    """E(u) = e (1 − d^u)/(1 − d), and e·u where d = 1 (arrays broadcast)."""
    linear = decay >= 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = effect * -np.expm1(units * np.log(decay)) / (1.0 - decay)
    out: FloatArray = np.where(linear, effect * units, geometric)
    return out


def read_catalogue(table: pd.DataFrame, market: Market) -> pd.DataFrame:
    """The catalogue checked by the data contract's rules (the same as a data directory's
    interventions table, :func:`~pricing.inputs.validation.check_frame`) and against
    ``market`` (its categories exist), with its optional columns filled in.

    Raises :class:`MarketError` listing every problem."""
    report = check_frame(table, "interventions")
    problems = [_problem_text(p) for p in report.problems]
    categories = set(market.segments["category"].astype(str))
    for column in ("category", "to_category"):
        if column not in table.columns or "intervention_id" not in table.columns:
            continue
        values = table[column]
        bad = values.notna() & ~values.astype(str).isin(categories)
        if bad.any():
            ids = table.loc[bad, "intervention_id"].astype(str).tolist()
            more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
            problems.append(f"{column} has no segment: {', '.join(ids[:5])}{more}")
    if problems:
        raise MarketError(
            f"the intervention catalogue has {len(problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    frame = table.copy()
    for name in ("to_category", "decay", "open_friction"):
        if name not in frame.columns:
            frame[name] = np.nan if name != "to_category" else None
    frame = frame[list(CATALOGUE_COLUMNS)].reset_index(drop=True)
    frame["decay"] = frame["decay"].astype(np.float64).fillna(DEFAULT_DECAY)
    frame["open_friction"] = frame["open_friction"].astype(np.float64)
    frame["to_category"] = frame["to_category"].where(frame["to_category"].notna(), None)
    for name in ("cost_per_unit", "effect_per_unit"):
        frame[name] = frame[name].astype(np.float64)
    frame["max_units"] = frame["max_units"].astype(np.float64).astype(np.int64)
    return frame


def _problem_text(problem: Problem) -> str:
    """One contract problem of the catalogue: its message and the levers at fault."""
    ids = [e.id or f"row {e.row}" for e in problem.examples]
    more = f" and {problem.count - len(ids)} more" if problem.count > len(ids) else ""
    return f"{problem.message}: {', '.join(ids)}{more}"


@dataclass(frozen=True)
class Levers:
    """A checked catalogue bound to a baseline market: applies units of its levers.

    ``extended`` is the baseline plus every edge a reskill lever could open (at its
    ``open_friction``), ``closed`` marks those edges; ``group`` is each segment's
    component in ``extended`` — levers in different groups never interact.
    """

    market: Market
    catalogue: pd.DataFrame

    @classmethod
    def build(cls, market: Market, catalogue: pd.DataFrame) -> Levers:
        return cls(market, read_catalogue(catalogue, market))

    def __len__(self) -> int:
        return len(self.catalogue)

    # ------------------------------------------------------------------ structure
    @cached_property
    def _categories(self) -> tuple[IntArray, pd.Index]:
        codes, names = pd.factorize(self.market.segments["category"].astype(str))
        return codes.astype(np.int64), names

    @property
    def segment_category(self) -> IntArray:
        """Category code of every segment (positions in :attr:`category_names`)."""
        return self._categories[0]

    @property
    def category_names(self) -> pd.Index:
        return self._categories[1]

    @cached_property
    def lever_category(self) -> IntArray:
        names = pd.Index(self.catalogue["category"].astype(str))
        codes: IntArray = self.category_names.get_indexer(names).astype(np.int64)
        return codes

    @cached_property
    def _edges(self) -> tuple[Market, npt.NDArray[np.bool_], sparse.csr_matrix]:
        """The extended market, its closed edges, and the edge × lever reskill matrix."""
        m, cat = self.market, self.catalogue
        keys = list(m.segment_keys)
        base = m.edges[["pool", "segment", "friction"]].assign(closed=False)
        category = m.segments["category"].astype(str).to_numpy()
        lever_cat = cat["category"].astype(str).to_numpy()
        lever_to = cat["to_category"].to_numpy(dtype=object)
        ids = cat["intervention_id"].astype(str).to_numpy()
        reskill = (cat["kind"] == "reskill").to_numpy()
        targeted = np.flatnonzero(reskill & pd.notna(lever_to))
        pairs = pd.DataFrame(
            {
                "from_category": lever_cat[targeted],
                "to_category": lever_to[targeted].astype(str),
                "friction": cat["open_friction"].to_numpy()[targeted],
            }
        )
        # one row per category pair, at its levers' lowest open friction (segment_edges
        # keeps one row of a repeated pair, not the cheapest)
        cheapest = pairs.groupby(["from_category", "to_category"], as_index=False, sort=False)[
            ["friction"]
        ].min()
        wanted = segment_edges(m.segments, keys, cheapest).merge(
            base[["pool", "segment"]], how="left", on=["pool", "segment"], indicator=True
        )
        new = wanted[wanted["_merge"] == "left_only"].drop(columns="_merge")
        unpriced = new[new["friction"].isna()]
        if len(unpriced):
            label = np.asarray(m.labels, dtype=object)
            pool, seg = unpriced["pool"].to_numpy(), unpriced["segment"].to_numpy()
            shown = [f"{label[p]}→{label[q]}" for p, q in zip(pool[:5], seg[:5], strict=True)]
            culprits = pairs["from_category"].isin(category[pool]) & pairs["to_category"].isin(
                category[seg]
            )
            named = sorted(set(ids[targeted[(culprits & pairs["friction"].isna()).to_numpy()]]))
            raise MarketError(
                f"reskill lever(s) {', '.join(named)} would open edge(s) the adjacency lacks "
                f"({', '.join(shown)}{' …' if len(unpriced) > 5 else ''}): give them an "
                "open_friction (USD/h) in the catalogue"
            )
        edges = pd.concat([base, new.assign(closed=True)], ignore_index=True)
        extended = Market(m.segments, edges[["pool", "segment", "friction"]], m.segment_keys)
        # which reskill levers act on each edge of the extended market
        pool_cat = category[edges["pool"].to_numpy()]
        seg_cat = category[edges["segment"].to_numpy()]
        rows, cols = [], []
        for i in np.flatnonzero(reskill).tolist():  # one pass per reskill lever
            hit = pool_cat == lever_cat[i]
            if pd.notna(lever_to[i]):
                hit &= seg_cat == str(lever_to[i])
            rows.append(np.flatnonzero(hit))
            cols.append(np.full(int(hit.sum()), i))
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        matrix = sparse.csr_matrix((np.ones(r.size), (r, c)), shape=(len(edges), len(cat)))
        return extended, edges["closed"].to_numpy(bool), matrix

    @property
    def extended(self) -> Market:
        return self._edges[0]

    @cached_property
    def _bare(self) -> Market:
        """:attr:`extended` keyed by segment position instead of its key columns: the
        many variants a plan solves carry no strings."""
        ext = self.extended
        segments = ext.segments[list(PARAMETERS)].assign(segment=np.arange(len(ext)))
        return Market.unchecked(segments, ext.edges, ("segment",))

    @cached_property
    def group(self) -> IntArray:
        """Component of every segment in the market with every openable edge."""
        return self.extended.component

    def _category_matrix(self, kind: str) -> sparse.csr_matrix:
        """lever × category: 1 where a lever of ``kind`` acts on the category."""
        hit = np.flatnonzero((self.catalogue["kind"] == kind).to_numpy())
        return sparse.csr_matrix(
            (np.ones(hit.size), (hit, self.lever_category[hit])),
            shape=(len(self), len(self.category_names)),
        )

    @cached_property
    def touches(self) -> sparse.csr_matrix:
        """lever × group: 1 where the lever changes some segment or edge of the group."""
        n_groups = int(self.group.max()) + 1 if len(self.market) else 0
        seg_group = sparse.csr_matrix(
            (np.ones(len(self.market)), (self.segment_category, self.group)),
            shape=(len(self.category_names), n_groups),
        )
        on_segments = (
            self._category_matrix("recruit") + self._category_matrix("fee_discount")
        ) @ seg_group
        edges = self.extended.edges
        edge_group = sparse.csr_matrix(
            (np.ones(len(edges)), (np.arange(len(edges)), self.group[edges["pool"].to_numpy()])),
            shape=(len(edges), n_groups),
        )
        on_edges = self._edges[2].T @ edge_group
        effective = (self.catalogue["effect_per_unit"] > 0) & (self.catalogue["max_units"] > 0)
        keep = sparse.diags(effective.to_numpy(np.float64))
        out = (keep @ (on_segments + on_edges)).tocsr()
        out.data[:] = 1.0
        out.eliminate_zeros()
        return out

    # ------------------------------------------------------------------ applying units
    def variants(
        self, groups: IntArray, units: FloatArray
    ) -> tuple[Market, IntArray, IntArray, IntArray]:
        """One market holding a copy of group ``groups[c]`` with lever units ``units[c]``
        for every copy c (units: copies × levers). Returns it with each row's segment
        position in the baseline, each row's copy, and each edge's position in
        :attr:`extended`'s edges."""
        rows, copy = self.variant_rows(groups)
        market, origin = self._apply(rows, copy, units, self._bare.stack(rows, copy))  # noqa: PD013
        return market, rows, copy, origin

    def variant_rows(self, groups: IntArray) -> tuple[IntArray, IntArray]:
        """Segment position and copy of every row of the variants of ``groups``."""
        groups = np.asarray(groups, dtype=np.int64)
        order = np.argsort(self.group, kind="stable")
        size = np.bincount(self.group, minlength=int(self.group.max()) + 1)
        start = np.concatenate([[0], np.cumsum(size)[:-1]])
        k = size[groups]
        copy = np.repeat(np.arange(groups.size), k)
        offset = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
        return order[start[groups][copy] + offset], copy

    def apply(self, units: FloatArray) -> Market:
        """The whole market with ``units`` of every lever bought."""
        return self._apply_whole(units)[0]

    def _apply_whole(self, units: FloatArray) -> tuple[Market, IntArray]:
        n = len(self.market)
        rows, copy = np.arange(n), np.zeros(n, np.int64)
        stacked = self.extended.stack(rows, copy)  # noqa: PD013 (Market.stack)
        return self._apply(rows, copy, np.reshape(units, (1, len(self))), stacked)

    def _apply(
        self,
        rows: IntArray,
        copy: IntArray,
        units: FloatArray,
        stacked: tuple[Market, IntArray],
    ) -> tuple[Market, IntArray]:
        """``units[copy]`` applied to the stacked rows (``Market.stack`` of them)."""
        cat = self.catalogue
        units = np.atleast_2d(np.asarray(units, dtype=np.float64))  # copies × levers
        effect = cumulative_effect(
            cat["effect_per_unit"].to_numpy()[None, :], cat["decay"].to_numpy()[None, :], units
        )
        market, origin = stacked
        cat_of_row = self.segment_category[rows]
        # several recruit levers on one category multiply: their log factors add
        recruit = np.exp(np.asarray(np.log1p(effect) @ self._category_matrix("recruit")))
        discount = np.asarray(effect @ self._category_matrix("fee_discount"))
        # fees and frictions are clipped to their ranges: the edits keep every rule
        market = market.scaled("supply", recruit[copy, cat_of_row], check=False)
        fee = np.maximum(0.0, market.array("freelancer_fee") - discount[copy, cat_of_row])
        market = market.with_fees(freelancer=fee, check=False)
        closed, reskill = self._edges[1], self._edges[2]
        edges = market.edges
        edge_copy = copy[edges["pool"].to_numpy()]
        # the reskill levers of each stacked edge (few per edge), as (edge, lever) pairs
        pairs = reskill[origin].tocoo()
        at = (edge_copy[pairs.row], pairs.col)
        cut = np.bincount(pairs.row, pairs.data * effect[at], minlength=origin.size)
        # only a lever with a to_category opens an edge: one acting on every edge out of
        # its category cheapens a closed edge once another lever opens it
        opens = ((cat["kind"] == "reskill") & cat["to_category"].notna()).to_numpy()
        bought = np.bincount(pairs.row, ((units > 0) & opens)[at], minlength=origin.size) > 0
        keep = ~closed[origin] | bought
        friction = np.where(keep, np.maximum(0.0, edges["friction"].to_numpy() - cut), np.nan)
        return market.with_frictions(friction, check=False), origin[keep]


def _anchor_result(
    levers: Levers,
    rows: IntArray,
    copy: IntArray,
    stacked: tuple[Market, IntArray],
    anchor: tuple[FloatArray, EquilibriumResult],
) -> EquilibriumResult:
    """The anchor's solution laid out as the variants (``rows``, ``copy``) at anchor
    units."""
    units, solved = anchor
    market, origin = levers._apply(rows, copy, np.tile(units, (int(copy.max()) + 1, 1)), stacked)
    # the anchor market's edges are the extended market's open ones, in the same order
    _, solved_origin = levers._apply_whole(units)
    position = np.full(len(levers.extended.edges), -1)
    position[solved_origin] = np.arange(solved_origin.size)
    return EquilibriumResult(
        market=market,
        method=solved.method,
        rate=solved.rate[rows],
        wage=solved.wage[rows],
        flow=solved.flow[position[origin]],
        home_flow=solved.home_flow[rows],
        shortage=solved.shortage[rows],
        surplus=solved.surplus[rows],
        status_code=solved.status_code[rows],
        path_code=solved.path_code[rows],
        residual=solved.residual[rows],
        iterations=solved.iterations[rows],
    )


# --------------------------------------------------------------------------- objectives
def segment_values(
    result: EquilibriumResult, objective: Objective, base_hours: FloatArray
) -> FloatArray:
    """Each segment's share of ``objective`` (module docstring); the surplus counts a
    pool's cost and its friction at its own segment, and clients' value from
    ``base_hours`` (per segment of ``result.market``)."""
    m = result.market
    n = len(m)
    e = m.edges
    pool, seg = e["pool"].to_numpy(), e["segment"].to_numpy()
    inflow = result.home_flow + np.bincount(seg, result.flow, minlength=n)
    hours = inflow - result.surplus
    if objective == "hours":
        return hours
    if objective == "gmv":
        out: FloatArray = hours * result.rate
        return out
    if objective != "surplus":
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        served = np.where(inflow > 0, hours / inflow, 1.0)
    worked = result.home_flow * served + np.bincount(pool, result.flow * served[seg], minlength=n)
    friction = np.bincount(pool, result.flow * served[seg] * e["friction"].to_numpy(), minlength=n)
    eps, eta = m.array("demand_elasticity"), m.array("supply_elasticity")
    observed = m.array("observed_rate")
    today = np.where(np.isfinite(observed), observed, m.uncoupled_rate())
    choke = CHOKE * today * (1.0 + m.array("client_fee"))
    choke_hours = curve_hours(m.array("log_demand_level"), eps, np.log(choke))
    value = _client_value(hours, choke, choke_hours, eps) - _client_value(
        base_hours, choke, choke_hours, eps
    )
    wage = curve_price(m.array("log_supply_level"), eta, worked)
    cost = worked * wage * eta / (1.0 + eta)
    surplus: FloatArray = value - cost - friction
    return surplus


def _client_value(
    hours: FloatArray, choke: FloatArray, choke_hours: FloatArray, eps: FloatArray
) -> FloatArray:
    """U(q) = ∫_0^q min(P, P̄) (module docstring), elementwise."""
    a = 1.0 + 1.0 / eps
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(np.maximum(hours, choke_hours) / choke_hours)
        small = np.abs(a * log_ratio) < 1e-8
        power = np.where(small, log_ratio * (1 + 0.5 * a * log_ratio), np.expm1(a * log_ratio) / a)
    out: FloatArray = np.where(
        hours <= choke_hours, choke * hours, choke * choke_hours * (1.0 + power)
    )
    return out


def solve_variants(
    levers: Levers,
    groups: IntArray,
    units: FloatArray,
    objective: Objective,
    base_hours: FloatArray,
    anchor: tuple[FloatArray, EquilibriumResult],
) -> tuple[FloatArray, FloatArray, int]:
    """Value of every variant: objective per copy, hours per copy × category, and the
    number of copies whose equilibrium failed (their values are NaN).

    ``anchor``: lever units and the solved whole market they give. Every copy starts
    from the anchor's solution of its group, and a copy equal to the anchor keeps it."""
    n_copies = int(np.asarray(groups).size)
    rows, copy = levers.variant_rows(groups)
    if rows.size == 0:
        empty = np.zeros((n_copies, len(levers.category_names)))
        return np.zeros(n_copies), empty, 0
    stack = levers._bare.stack(rows, copy)  # noqa: PD013 (Market.stack)
    stacked, _ = levers._apply(rows, copy, units, stack)
    result = solve(stacked, baseline=_anchor_result(levers, rows, copy, stack, anchor))
    values = segment_values(result, objective, base_hours[rows])
    hours = segment_values(result, "hours", base_hours[rows])
    ok = np.isin(result.status, ("solved", "solved_fallback")) | ~stacked.usable
    bad = np.bincount(copy, (~ok).astype(np.float64), minlength=n_copies) > 0
    total = np.bincount(copy, np.where(ok, np.nan_to_num(values), 0.0), minlength=n_copies).astype(
        np.float64
    )
    total[bad] = np.nan
    n_cat = len(levers.category_names)
    by_cat = (
        np.bincount(
            copy * n_cat + levers.segment_category[rows],
            np.where(ok, np.nan_to_num(hours), 0.0),
            minlength=n_copies * n_cat,
        )
        .reshape(n_copies, n_cat)
        .astype(np.float64)
    )
    by_cat[bad] = np.nan
    return total, by_cat, int(bad.sum())
