r"""Values of intervention options from equilibrium re-solves.

The market splits into *groups* (:attr:`pricing.decisions.levers.Levers.group`); a plan's
value is a sum over groups, and each group's value is tabulated by solving copies of it,
all copies in one batched, warm-started equilibrium call
(:func:`pricing.decisions.levers.solve_variants`):

- a group whose levers have at most ``enumerate_limit`` joint unit combinations is
  tabulated **exactly**, every combination (:class:`ExactTable`);
- a larger group is **separable around an anchor** a:

      V_g(u) ≈ V_g(a) + Σ_l [V_g(a with u_l) − V_g(a)],

  each term a re-solve with one lever moved (exact at u = a). :class:`ValueModel` is the
  sum of both kinds, the value and the hours per category of any plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pricing.decisions.levers import Levers, Objective, solve_variants
from pricing.market.equilibrium import EquilibriumResult

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: a re-solved gain below this share of its group's objective is solver noise: the
#: equilibrium verifies to 1e-6 relative and solves to ~1e-10, so 1e-8 is kept clear of
#: both the noise of identical copies and any real effect worth a decision
NOISE = 1e-8


# --------------------------------------------------------------------------- value model
@dataclass(frozen=True)
class ExactTable:
    """A group tabulated over every joint unit combination of its levers."""

    group: int
    levers: IntArray  # (k,)
    configs: IntArray  # (n_cfg, k) units of each lever
    value: FloatArray  # (n_cfg,)
    hours: FloatArray  # (n_cfg, n_categories)


@dataclass(frozen=True)
class ValueModel:
    """V(u) = constant + Σ_l coef[l, u_l] + Σ_exact value[config(u)] (and hours alike)."""

    coef: FloatArray  # (L, U+1), NaN: that option could not be valued
    hours: FloatArray  # (L, U+1, n_categories)
    constant: float
    constant_hours: FloatArray  # (n_categories,)
    exact: list[ExactTable]

    def value(self, units: IntArray) -> tuple[float, FloatArray]:
        """The model's objective and hours per category at ``units``."""
        idx = np.arange(units.size)
        v = self.constant + float(np.nansum(self.coef[idx, units]))
        h = self.constant_hours + self.hours[idx, units].sum(axis=0)
        for ex in self.exact:
            row = config_row(ex, units)
            v += float(ex.value[row])
            h = h + ex.hours[row]
        return v, h


def config_row(ex: ExactTable, units: IntArray) -> int:
    hit = np.flatnonzero((ex.configs == units[ex.levers]).all(axis=1))
    return int(hit[0])


class Valuer:
    """Re-solves group copies for a catalogue and tabulates the value model."""

    def __init__(
        self,
        levers: Levers,
        objective: Objective,
        baseline: EquilibriumResult,
        base_hours: FloatArray,
        limit: int,
    ) -> None:
        self.levers = levers
        self.objective = objective
        self.base_hours = base_hours
        cat = levers.catalogue
        self.max_units = cat["max_units"].to_numpy(np.int64)
        touches = levers.touches.tocsc()
        self.n_groups = touches.shape[1]
        self.group_levers = [
            touches.indices[touches.indptr[g] : touches.indptr[g + 1]].astype(np.int64)
            for g in range(self.n_groups)
        ]
        box = np.array(
            [float(np.prod(self.max_units[ls] + 1.0)) for ls in self.group_levers], dtype=float
        )
        has = np.array([ls.size > 0 for ls in self.group_levers], dtype=bool)
        self.exact_groups = np.flatnonzero(has & (box <= limit))
        self.separable_groups = np.flatnonzero(has & (box > limit))
        self.copies = 0
        self.failed = 0
        self.solve_seconds = 0.0
        self.exact = self._tabulate_exact(baseline)
        # separable group → (its levers' anchor units, lever, units, gain, hours gain,
        # anchor value, anchor hours by category) of its latest tabulation
        self._tables: dict[
            int, tuple[bytes, IntArray, IntArray, FloatArray, FloatArray, float, FloatArray]
        ] = {}
        # hours of the groups no lever touches, which every plan keeps
        fixed = ~has[levers.group]
        self.fixed_hours: FloatArray = np.bincount(
            levers.segment_category[fixed],
            np.nan_to_num(base_hours[fixed]),
            minlength=len(levers.category_names),
        ).astype(np.float64)

    def _solve(
        self,
        groups: IntArray,
        units: FloatArray,
        anchor: tuple[FloatArray, EquilibriumResult],
    ) -> tuple[FloatArray, FloatArray]:
        t0 = time.perf_counter()
        value, hours, failed = solve_variants(
            self.levers, groups, units, self.objective, self.base_hours, anchor
        )
        self.solve_seconds += time.perf_counter() - t0
        self.copies += int(groups.size)
        self.failed += failed
        return value, hours

    def _tabulate_exact(self, baseline: EquilibriumResult) -> list[ExactTable]:
        L = len(self.levers)
        specs, groups, units = [], [], []
        for g in self.exact_groups.tolist():
            ls = self.group_levers[g]
            configs = np.stack(
                np.unravel_index(
                    np.arange(int(np.prod(self.max_units[ls] + 1))), self.max_units[ls] + 1
                ),
                axis=1,
            ).astype(np.int64)
            u = np.zeros((len(configs), L))
            u[:, ls] = configs
            specs.append((g, ls, configs))
            groups.append(np.full(len(configs), g))
            units.append(u)
        if not specs:
            return []
        value, hours = self._solve(
            np.concatenate(groups), np.concatenate(units), (np.zeros(L), baseline)
        )
        out, start = [], 0
        for g, ls, configs in specs:
            stop = start + len(configs)
            v = value[start:stop]
            v = np.where(np.abs(v - v[0]) < NOISE * abs(v[0]), v[0], v)  # solver noise
            out.append(ExactTable(g, ls, configs, v, hours[start:stop]))
            start = stop
        return out

    def model(self, anchor: IntArray, solved: EquilibriumResult) -> ValueModel:
        """The value model around ``anchor``, whose whole market ``solved`` is. Exact
        groups do not depend on the anchor, and a separable group whose levers' anchor
        units are those of an earlier round keeps that round's values (its copies would
        be the same markets)."""
        L, n_cat = len(self.levers), len(self.levers.category_names)
        width = int(self.max_units.max()) + 1 if L else 1
        stale = np.array(
            [
                g not in self._tables
                or self._tables[g][0] != anchor[self.group_levers[g]].tobytes()
                for g in self.separable_groups.tolist()
            ],
            dtype=np.bool_,
        )
        self._tabulate_separable(self.separable_groups[stale], anchor, solved)
        coef = np.zeros((L, width))
        hours = np.zeros((L, width, n_cat))
        constant, constant_hours = 0.0, self.fixed_hours.copy()
        for g in self.separable_groups.tolist():
            _, lever, units_of, gain, dh, value, by_cat = self._tables[g]
            np.add.at(coef, (lever, units_of), gain)
            np.add.at(hours, (lever, units_of), dh)
            constant += value
            constant_hours += by_cat
        coef[np.arange(width)[None, :] > self.max_units[:, None]] = 0.0
        return ValueModel(coef, hours, constant, constant_hours, self.exact)

    def _tabulate_separable(
        self, groups: IntArray, anchor: IntArray, solved: EquilibriumResult
    ) -> None:
        """Re-solve ``groups`` with one lever moved at a time from ``anchor``."""
        if not groups.size:
            return
        pair_g = np.concatenate([np.full(self.group_levers[g].size, g) for g in groups])
        pair_l = np.concatenate([self.group_levers[g] for g in groups])
        # one copy per (group, lever, units ≠ anchor), then one anchor copy per group
        counts = self.max_units[pair_l]
        pair = np.repeat(np.arange(pair_l.size), counts)
        step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        lever = pair_l[pair]
        units_of = np.where(step >= anchor[lever], step + 1, step)  # skip the anchor's units
        copy_group = np.concatenate([pair_g[pair], groups]).astype(np.int64)
        units = np.tile(anchor.astype(np.float64), (copy_group.size, 1))
        units[np.arange(lever.size), lever] = units_of
        value, by_cat = self._solve(copy_group, units, (anchor.astype(np.float64), solved))
        n_var = lever.size
        at = np.searchsorted(groups, pair_g[pair]) + n_var  # each copy's anchor copy
        gain = value[:n_var] - value[at]
        gain = np.where(np.abs(gain) < NOISE * np.abs(value[at]), 0.0, gain)
        dh = by_cat[:n_var] - by_cat[at]
        dh = np.where(np.abs(dh) < NOISE * np.abs(by_cat[at]), 0.0, dh)
        owner = pair_g[pair]
        for i, g in enumerate(groups.tolist()):
            mine = owner == g
            self._tables[g] = (
                anchor[self.group_levers[g]].tobytes(),
                lever[mine],
                units_of[mine],
                gain[mine],
                dh[mine],
                float(value[n_var + i]),
                by_cat[n_var + i],
            )
