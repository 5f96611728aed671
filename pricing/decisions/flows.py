r"""Where each pool's freelancers work: the pool → segment flows of an equilibrium.

Pool j is the freelancers whose primary segment is j. At the equilibrium of
:mod:`pricing.market.equilibrium` it offers s_j = S_j(w_j) hours a week at its wage w_j
(USD/h, on the listed-rate basis), split over its own segment (the home flow x_jj) and
the adjacent segments k it may serve at friction τ_jk (USD/h), x_jk:

    s_j = x_jj + Σ_k x_jk                      (a pool's outflows: its supply)
    q_k + y_k − z_k = x_kk + Σ_j x_jk          (a segment's inflows: the hours it buys,
                                                 plus idle hours at a floor y_k, less the
                                                 shortage at a cap z_k)

with p_k − τ_jk ≤ w_j, equal on every edge that carries hours. So a segment's
equilibrium (★ in the report's curve panels) lies off the crossing of its own demand
and its own pool's supply by what flows in from other pools (inflow) and out of its pool
to other segments (outflow): at the listed rate p_k it buys D_k(p_k) = own-pool hours
kept home + inflow, while its own pool offers S_k(w_k) = home + outflow.

:func:`flows_table` is the one place this table is built; the run store keeps it
(``flows``, ``scenario_flows``) and :class:`Flows` shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pricing.display import Display, records, table

if TYPE_CHECKING:
    from pricing.market.equilibrium import EquilibriumResult

#: columns of the table after the pool's and the segment's keys
FLOW_COLUMNS = ("kind", "hours", "rate", "pool_wage", "friction")


def flows_table(result: EquilibriumResult) -> pd.DataFrame:
    """One row per pool → segment pair that can carry hours: every segment's home flow
    (``kind`` ``home``, friction 0) and every adjacency edge between segments with
    usable curves (``edge``). Columns: the pool's keys (``pool_<key>``), the segment's
    keys, ``kind``, ``hours`` (a week), the segment's listed ``rate`` and the pool's
    wage ``pool_wage`` (USD/h, listed basis), ``friction`` (USD/h). Hours are NaN where
    the component was not cleared."""
    market = result.market
    keys = list(market.segment_keys)
    n = len(market)
    edges = market.edges
    active = market.active_edges
    pool = np.concatenate([np.arange(n), edges["pool"].to_numpy()[active]])
    seg = np.concatenate([np.arange(n), edges["segment"].to_numpy()[active]])
    segments = market.segments[keys].reset_index(drop=True)
    out = segments.iloc[pool].add_prefix("pool_").reset_index(drop=True)
    out = pd.concat([out, segments.iloc[seg].reset_index(drop=True)], axis=1)
    out["kind"] = np.where(np.arange(len(pool)) < n, "home", "edge")
    out["hours"] = np.concatenate([result.home_flow, result.flow[active]])
    out["rate"] = result.rate[seg]
    out["pool_wage"] = result.wage[pool]
    out["friction"] = np.concatenate([np.zeros(n), edges["friction"].to_numpy()[active]])
    return out


def category_pairs(flows: pd.DataFrame) -> pd.DataFrame:
    """Hours a week from each pool category to each category it works in, one row per
    pair that carries hours (``pool_category``, ``category``, ``hours``), summed over
    tiers and regions; unsolved flows left out."""
    used = flows[flows["hours"] > 0]
    pairs: pd.DataFrame = used.groupby(["pool_category", "category"], as_index=False, sort=True)[
        ["hours"]
    ].sum()
    return pairs


def category_matrix(flows: pd.DataFrame) -> pd.DataFrame:
    """:func:`category_pairs` as a matrix: pool category (rows) × category worked in
    (columns), every category on both axes, 0 where no hours flow."""
    pairs = category_pairs(flows)
    names = sorted(set(flows["pool_category"]) | set(flows["category"]))
    matrix = pairs.pivot_table(
        index="pool_category", columns="category", values="hours", aggfunc="sum"
    )
    return matrix.reindex(index=names, columns=names).fillna(0.0)


def segment_balance(flows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per segment: hours its pool keeps home (``home_hours``), takes in from other
    pools (``inflow_hours``) and sends to other segments (``outflow_hours``), a week."""
    home = flows[flows["kind"] == "home"].set_index(keys)["hours"]
    edge = flows[flows["kind"] == "edge"]
    inflow = edge.groupby(keys, sort=False)["hours"].sum()
    outflow = edge.groupby([f"pool_{k}" for k in keys], sort=False)["hours"].sum()
    outflow.index.names = keys
    out = pd.DataFrame({"home_hours": home})
    out["inflow_hours"] = inflow.reindex(out.index).fillna(0.0)
    out["outflow_hours"] = outflow.reindex(out.index).fillna(0.0)
    return out.reset_index()


@dataclass(frozen=True)
class Flows(Display):
    """The flows of an equilibrium (:func:`flows_table`), immutable: ``to_frame()`` one
    row per pool → segment pair, ``by_category()`` the category matrix,
    ``balance()`` each segment's home hours, inflow and outflow."""

    frame: pd.DataFrame
    segment_keys: tuple[str, ...]

    @classmethod
    def of(cls, result: EquilibriumResult) -> Flows:
        return cls(flows_table(result), tuple(result.market.segment_keys))

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def by_category(self) -> pd.DataFrame:
        return category_matrix(self.frame)

    def balance(self) -> pd.DataFrame:
        return segment_balance(self.frame, list(self.segment_keys))

    def to_dict(self) -> dict[str, Any]:
        return {"flows": records(self.frame)}

    def summary(self, max_rows: int = 20) -> str:
        f = self.frame
        moved = f[(f["kind"] == "edge") & (f["hours"] > 0)]
        total = float(np.nansum(f["hours"]))
        share = float(moved["hours"].sum()) / total if total > 0 else float("nan")
        lines = [
            f"Flows: {total:,.0f} hours a week, {len(moved):,} edge(s) used, "
            f"{share:.1%} of the hours worked outside the freelancers' own segment"
        ]
        if max_rows and len(moved):
            top = moved.sort_values("hours", ascending=False).head(max_rows)
            lines.append(table(top, "{:,.2f}"))
        return "\n".join(lines)
