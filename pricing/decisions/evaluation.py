r"""How a recommendation is judged against the truth (``shared/EVALUATION.md``).

For segments s with a recommended listed rate r_s, today's rate o_s (the status quo: the
segment's observed rate in the as-of week), the true clearing rate p*_s and a band
[l_s, h_s] labelled L (90 %):

    error      = median_s |log(r_s / p*_s)|
    baseline   = median_s |log(o_s / p*_s)|             (keeping today's rate)
    relative   = error / baseline                        goal ≤ 0.3, floor 0.6
    direction  = share of {s : |log(p*_s / o_s)| > 0.05} with
                 sign log(r_s / o_s) = sign log(p*_s / o_s)       goal ≥ 90 %, floor 80 %
    coverage   = share of s with l_s ≤ p*_s ≤ h_s                 goal 88–92 %, floor 75–98 %
    width      = median_s (h_s − l_s) / r_s

Every score is computed on all segments and again on the thin ones and the others apart.
A segment enters a score only where its inputs are finite; the counts say how many did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.display import Display, records

FloatArray = npt.NDArray[np.float64]

#: a segment "moved" when its true rate is this far from today's, in log terms
MOVED = 0.05
#: the goals and floors of EVALUATION.md: (goal, floor) per score
GOALS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "relative_error": ((0.0, 0.3), (0.0, 0.6)),
    "direction": ((0.9, 1.0), (0.8, 1.0)),
    "coverage": ((0.88, 0.92), (0.75, 0.98)),
}
SCORES = ("segments", "error", "baseline_error", "relative_error", "moved", "direction")
BAND_SCORES = ("banded", "coverage", "width")


@dataclass(frozen=True)
class Scores(Display):
    """The scores of one set of recommendations, for all segments and by thinness: one
    row per group (``all``, ``thin``, ``thick``), with how many segments each score read."""

    frame: pd.DataFrame
    label: str = ""

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def row(self, group: str = "all") -> dict[str, float]:
        """The scores of one group (``all``, ``thin``, ``thick``)."""
        row = self.frame[self.frame["group"] == group].iloc[0]
        return {k: float(row[k]) for k in (*SCORES, *BAND_SCORES)}

    def meets(self, floors: bool = True, group: str = "all") -> dict[str, bool]:
        """Whether each judged score is within its floor (or, ``floors=False``, its goal)."""
        row = self.row(group)
        out = {}
        for score, (goal, floor) in GOALS.items():
            low, high = floor if floors else goal
            value = float(row[score])
            out[score] = bool(np.isfinite(value) and low <= value <= high)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "groups": records(self.frame)}

    def summary(self, max_rows: int = 3) -> str:
        lines = [f"Scores against the truth{f' ({self.label})' if self.label else ''}"]
        for group in self.frame["group"].head(max_rows):
            r = self.row(group)
            lines.append(
                f"  {group:<6} {r['segments']:>6,.0f} segments: error {r['error']:.3f} vs "
                f"{r['baseline_error']:.3f} keeping today's rate ({r['relative_error']:.2f}×); "
                f"direction {r['direction']:.1%} of {r['moved']:,.0f} that moved; coverage "
                f"{r['coverage']:.1%} of {r['banded']:,.0f}, width {r['width']:.1%}"
            )
        return "\n".join(lines)


def score(
    recommended: FloatArray,
    today: FloatArray,
    truth: FloatArray,
    low: FloatArray | None = None,
    high: FloatArray | None = None,
    thin: npt.NDArray[np.bool_] | None = None,
    label: str = "",
) -> Scores:
    """The scores of the module docstring, for all segments, the thin and the others."""
    n = len(recommended)
    thin = np.zeros(n, bool) if thin is None else np.asarray(thin, bool)
    low = np.full(n, np.nan) if low is None else np.asarray(low, np.float64)
    high = np.full(n, np.nan) if high is None else np.asarray(high, np.float64)
    rows = []
    for group, chosen in (("all", np.ones(n, bool)), ("thin", thin), ("thick", ~thin)):
        rows.append(
            {
                "group": group,
                **_point_scores(recommended[chosen], today[chosen], truth[chosen]),
                **_band_scores(low[chosen], high[chosen], recommended[chosen], truth[chosen]),
            }
        )
    return Scores(pd.DataFrame(rows), label)


def _point_scores(r: FloatArray, o: FloatArray, p: FloatArray) -> dict[str, float]:
    ok = np.isfinite(r) & np.isfinite(o) & np.isfinite(p) & (r > 0) & (o > 0) & (p > 0)
    r, o, p = r[ok], o[ok], p[ok]
    error = _median(np.abs(np.log(r / p)))
    baseline = _median(np.abs(np.log(o / p)))
    moved = np.abs(np.log(p / o)) > MOVED
    right = np.sign(np.log(r[moved] / o[moved])) == np.sign(np.log(p[moved] / o[moved]))
    return {
        "segments": float(ok.sum()),
        "error": error,
        "baseline_error": baseline,
        "relative_error": error / baseline if baseline > 0 else np.nan,
        "moved": float(moved.sum()),
        "direction": float(right.mean()) if right.size else np.nan,
    }


def _band_scores(
    low: FloatArray, high: FloatArray, r: FloatArray, p: FloatArray
) -> dict[str, float]:
    ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(p) & np.isfinite(r) & (r > 0)
    inside = (low[ok] <= p[ok]) & (p[ok] <= high[ok])
    return {
        "banded": float(ok.sum()),
        "coverage": float(inside.mean()) if ok.any() else np.nan,
        "width": _median((high[ok] - low[ok]) / r[ok]),
    }


def _median(values: FloatArray) -> float:
    return float(np.median(values)) if values.size else np.nan
