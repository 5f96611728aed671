r"""Figures of the HTML report, drawn with matplotlib and inlined as PNG data URIs.

Every figure is a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, no display backend) and saved with its ``Software`` metadata removed, so the same
run gives the same bytes on every machine with the same matplotlib and its bundled
DejaVu fonts.

Curves are drawn the way :mod:`pricing.market.market` states them, in the listed rate p:

    D(p) = exp(log_demand_level) · (p(1 + f_c))^ε
    S(p) = exp(log_supply_level) · (p(1 − f_f))^η      (the segment's own pool)

with the rate on the vertical axis and hours per week on the horizontal one.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from pricing.display import escape_controls
from pricing.market.market import curve_hours

FloatArray = npt.NDArray[np.float64]

#: A change of rate or hours in %: red where the market is short of freelancers (the
#: rate should rise), blue where it is short of clients.
DIVERGING = "RdBu_r"
DEMAND_COLOUR = "#1f5fa8"
SUPPLY_COLOUR = "#c2410c"
BAND_COLOUR = "#16a34a"
MISSING_COLOUR = "#d4d4d4"
DPI = 100


def data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,…`` URI (deterministic bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _style() -> Any:  # matplotlib types rc keys as literals
    return {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "text.parse_math": False,  # a $ in a category name is a dollar sign, not math
    }


#: longest name drawn in a figure; longer ones keep their start and end around "…"
NAME_CHARS = 40


def name_text(name: object) -> str:
    """A name from the data as a figure draws it: control characters and bidirectional
    overrides escaped, cut to :data:`NAME_CHARS` in the middle."""
    text = escape_controls(str(name), newlines=False)
    if len(text) <= NAME_CHARS:
        return text
    half = (NAME_CHARS - 1) // 2
    return text[:half] + "…" + text[-half:]


# ----------------------------------------------------------------------- heatmaps
@dataclass(frozen=True)
class Grid:
    """One heatmap: ``cells`` is categories × tiers (NaN: no value)."""

    title: str
    cells: pd.DataFrame
    label: str  # colour bar label
    decimals: int = 0


def heatmaps(grids: Sequence[Grid]) -> str:
    """Heatmaps side by side, sharing the category rows; cells annotated when few."""
    rows, cols = grids[0].cells.shape
    width = max(3.2, 1.0 + 0.9 * cols) * len(grids) + 1.6
    height = max(2.4, 0.26 * rows + 1.4)
    with mpl.rc_context(_style()):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, len(grids), sharey=True, squeeze=False)[0]
        for ax, grid in zip(axes, grids, strict=True):
            _heatmap(fig, ax, grid)
        return data_uri(fig)


def _heatmap(fig: Figure, ax: Axes, grid: Grid) -> None:
    values = grid.cells.to_numpy(np.float64)
    finite = values[np.isfinite(values)]
    # a colour scale set by the 95th percentile, so one extreme cell does not wash out
    # the rest; cells beyond it saturate
    limit = float(np.quantile(np.abs(finite), 0.95)) if finite.size else 1.0
    limit = max(limit, 1.0)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    cmap = mpl.colormaps[DIVERGING].with_extremes(bad=MISSING_COLOUR)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [name_text(c) for c in grid.cells.columns])
    ax.set_yticks(range(values.shape[0]), [name_text(r) for r in grid.cells.index])
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_title(grid.title)
    if values.size <= 400:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                dark = abs(v) > 0.6 * limit
                ax.text(
                    j,
                    i,
                    _signed(v, grid.decimals),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "#111",
                )
    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
    bar.set_label(grid.label)


def _signed(value: float, decimals: int) -> str:
    """``+12``, ``−3``, ``0``: a value that rounds to zero shows no sign (never ``-0``)."""
    rounded = round(value, decimals)
    return "0" if rounded == 0 else f"{rounded:+.{decimals}f}".replace("-", "−")


# ------------------------------------------------------------------------ curves
@dataclass(frozen=True)
class CurvePanel:
    """One segment's curves around its observed point and its equilibrium."""

    title: str
    subtitle: str
    demand_elasticity: float
    log_demand_level: float
    supply_elasticity: float
    log_supply_level: float
    client_fee: float
    freelancer_fee: float
    observed_rate: float
    demand_at_observed: float
    supply_at_observed: float
    rate: float  # equilibrium listed rate (NaN: not cleared)
    hours: float
    band_low: float  # guidance band, listed rate
    band_high: float
    rate_floor: float
    rate_cap: float
    #: hours a week the segment buys from other pools, and its own pool sells to other
    #: segments (:mod:`pricing.decisions.flows`): what moves the equilibrium off the
    #: crossing of its own curves
    inflow_hours: float = float("nan")
    outflow_hours: float = float("nan")


def curve_grid(panels: Sequence[CurvePanel], columns: int = 3) -> str:
    """Small multiples of demand and supply curves, one panel per segment."""
    rows = -(-len(panels) // columns)
    with mpl.rc_context(_style()):
        fig = Figure(figsize=(3.6 * columns, 2.9 * rows), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            _curves(ax, panel)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
        return data_uri(fig)


def _curves(ax: Axes, c: CurvePanel) -> None:
    known = [v for v in (c.observed_rate, c.rate, c.band_low, c.band_high) if np.isfinite(v)]
    low, high = 0.6 * min(known), 1.5 * max(known)
    p = np.geomspace(low, high, 120)
    demand = curve_hours(c.log_demand_level, c.demand_elasticity, np.log(p * (1 + c.client_fee)))
    supply = curve_hours(
        c.log_supply_level, c.supply_elasticity, np.log(p * (1 - c.freelancer_fee))
    )
    ax.plot(demand, p, color=DEMAND_COLOUR, lw=1.6, label="demand")
    ax.plot(supply, p, color=SUPPLY_COLOUR, lw=1.6, label="supply (own pool)")
    if np.isfinite(c.band_low) and np.isfinite(c.band_high):
        ax.axhspan(c.band_low, c.band_high, color=BAND_COLOUR, alpha=0.15, lw=0, label="band")
    for bound in (c.rate_floor, c.rate_cap):
        if np.isfinite(bound):
            ax.axhline(bound, color="#555", lw=0.8, ls=":")
    if np.isfinite(c.observed_rate):
        ax.axhline(c.observed_rate, color="#666", lw=0.8, ls="--", label="today's rate")
        ax.plot(
            [c.demand_at_observed, c.supply_at_observed],
            [c.observed_rate] * 2,
            "o",
            ms=4,
            color="#444",
        )
    if np.isfinite(c.rate):
        ax.plot(c.hours, c.rate, marker="*", ms=11, color="#111", ls="none", label="equilibrium")
        _net_flow(ax, c)
    ax.set_ylim(low, high)
    ax.set_xlim(left=0)
    ax.set_title(f"{name_text(c.title)}\n{c.subtitle}", loc="left", fontsize=9)
    ax.set_xlabel("hours / week")
    ax.set_ylabel("listed rate, USD/h")


def _net_flow(ax: Axes, c: CurvePanel) -> None:
    """The hours that separate the equilibrium (★) from the own-pool supply: at the
    equilibrium rate the own pool sells ``home + outflow`` hours (◆, on or near its
    supply curve) and the segment buys ``home + inflow`` (★); the arrow between them is
    the net inflow, and the box says both flows."""
    if not (np.isfinite(c.inflow_hours) and np.isfinite(c.outflow_hours)):
        return
    if c.inflow_hours <= 0 and c.outflow_hours <= 0:
        ax.text(
            0.98,
            0.04,
            "no flows: own pool only",
            transform=ax.transAxes,
            ha="right",
            fontsize=7,
            color="#444",
        )
        return
    own = c.hours - c.inflow_hours + c.outflow_hours
    ax.plot(
        own,
        c.rate,
        marker="D",
        ms=5,
        color=SUPPLY_COLOUR,
        ls="none",
        label="own pool's hours at ★'s rate",
    )
    ax.annotate(
        "",
        xy=(c.hours, c.rate),
        xytext=(own, c.rate),
        arrowprops={"arrowstyle": "->", "color": "#111", "lw": 1.0},
    )
    ax.text(
        0.98,
        0.04,
        f"in from other pools {_hours(c.inflow_hours)} h/wk\n"
        f"out to other segments {_hours(c.outflow_hours)} h/wk",
        transform=ax.transAxes,
        ha="right",
        fontsize=7,
        color="#111",
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#ccc", "alpha": 0.85},
    )


def _hours(value: float) -> str:
    return f"{value:,.0f}"


# ---------------------------------------------------------------------- flows
def flow_matrix(shares: pd.DataFrame, hours: pd.Series) -> str:
    """Where each category's freelancers work: ``shares`` is pool category (rows) ×
    work category (columns), % of the pool's hours; ``hours`` the pool's hours a week,
    written beside each row. The diagonal is the hours worked at home."""
    rows, cols = shares.shape
    values = shares.to_numpy(np.float64)
    width = max(4.5, 1.8 + 0.62 * cols) + 1.2
    height = max(2.6, 0.3 * rows + 1.8)
    with mpl.rc_context(_style()):
        fig = Figure(figsize=(min(width, 11.5), height), layout="constrained")
        ax = fig.subplots()
        cmap = mpl.colormaps["Blues"].with_extremes(bad="white")
        image = ax.imshow(
            np.ma.masked_where(~(values > 0), values), cmap=cmap, vmin=0, vmax=100, aspect="auto"
        )
        ax.set_xticks(range(cols), [name_text(c) for c in shares.columns], rotation=35, ha="right")
        ax.set_yticks(
            range(rows),
            [f"{name_text(r)} ({hours.get(r, 0.0):,.0f} h/wk)" for r in shares.index],
        )
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        ax.set_xlabel("category they work in")
        ax.set_ylabel("freelancers' own category (their hours a week)")
        if values.size <= 900:
            for (i, j), v in np.ndenumerate(values):
                if v >= 0.5:
                    ax.text(
                        j,
                        i,
                        f"{v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 60 else "#111",
                    )
        bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
        bar.set_label("% of the category's freelancer hours")
        return data_uri(fig)


# ------------------------------------------------------------------- histograms
def elasticity_histograms(curves: pd.DataFrame) -> str:
    """Raw (2SLS) and shrunk elasticities, one panel per side of the market."""
    with mpl.rc_context(_style()):
        fig = Figure(figsize=(9.0, 2.8), layout="constrained")
        axes = fig.subplots(1, 2, squeeze=False)[0]
        for ax, side in zip(axes, ("demand", "supply"), strict=True):
            rows = curves[curves["side"] == side]
            raw = rows["elasticity_raw"].to_numpy(np.float64)
            shrunk = rows["elasticity"].to_numpy(np.float64)
            both = np.concatenate([raw[np.isfinite(raw)], shrunk[np.isfinite(shrunk)]])
            if both.size == 0:
                ax.set_visible(False)
                continue
            # clip the bins to the central 98 % so one wild raw estimate does not squeeze
            # the rest into a single bar; the clipped counts go into the edge bins
            lo, hi = np.quantile(both, [0.01, 0.99])
            lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
            bins = np.linspace(lo, hi, 31)
            for values, label, colour in (
                (raw, "raw (2SLS)", "#9ca3af"),
                (shrunk, "shrunk (used)", DEMAND_COLOUR if side == "demand" else SUPPLY_COLOUR),
            ):
                finite = np.clip(values[np.isfinite(values)], lo, hi)
                ax.hist(finite, bins=bins, histtype="step", lw=1.6, color=colour, label=label)
            ax.axvline(0, color="#111", lw=0.6)
            ax.set_title(f"{side} elasticity ({len(rows):,} curves)", loc="left")
            ax.set_ylabel("segments")
            ax.legend(frameon=False)
        return data_uri(fig)
