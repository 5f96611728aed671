"""The adjacency table (data contract v1.1): its rows as edges between segment keys.

A row lets the pool of (``from_category``, ``from_tier``, ``from_region``) serve the
segments of (``to_category``, ``to_tier``, ``to_region``) at ``friction`` USD per hour.
The tier and region columns are optional (a v1 table has none) and may be blank, per
segment key k (tier, and region when it is a key):

    from_k  to_k     edges
    x       y        pool k = x  →  segment k = y            (across k: x ≠ y)
    x       blank    pool k = x  →  segment k = x            (within x)
    blank   y        every pool k = v  →  segment k = y      (every v, into y)
    blank   blank    every pool k = v  →  segment k = v      (within each v: v1)

An edge from a pool to its own segment is its home edge and left out. When several rows
name the same edge the most specific wins (the one that names more of the four key
columns): a v1 row ``design → writing`` sets every tier's friction, and a row
``design/expert → writing/expert`` overrides it for experts. Two equally specific rows
for one edge are a duplicate, which validation reports
(:mod:`pricing.inputs.validation`) and :func:`resolve` resolves by the later row.

Used by validation, by the market (:func:`pricing.market.market.segment_edges`) and by
scenarios' ``[[adjacency]]`` entries, so the three read a row the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

#: the segment keys an adjacency row may name on both ends (``category`` always does)
KEYS = ("tier", "region")
#: the optional columns of the table, per key
COLUMNS = {key: (f"from_{key}", f"to_{key}") for key in KEYS}


def blank(values: pd.Series) -> pd.Series:
    """Where a key column leaves its value open: missing, or empty text."""
    text = values.astype("string").str.strip()
    return values.isna() | (text == "").fillna(True)


def named(adjacency: pd.DataFrame, key: str) -> bool:
    """Whether ``adjacency`` names ``key`` in any row (a column of it holds a value)."""
    return any(c in adjacency and (~blank(adjacency[c])).any() for c in COLUMNS[key])


def resolve(adjacency: pd.DataFrame, values: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Every edge the rows of ``adjacency`` name (module docstring), one row per edge
    and row of the table: ``from_category``, ``to_category``, ``from_<k>`` and ``to_<k>``
    for each key k of ``values`` (the values it takes in the market), ``friction``,
    ``row`` (the row's position) and ``specificity`` (how many key columns it names).
    Home edges are left out; key columns of keys not in ``values`` are not read."""
    frame = pd.DataFrame(
        {
            "from_category": adjacency["from_category"].astype(str).to_numpy(),
            "to_category": adjacency["to_category"].astype(str).to_numpy(),
            "friction": adjacency["friction"].to_numpy(np.float64),
            "row": np.arange(len(adjacency)),
            "specificity": np.zeros(len(adjacency), np.int64),
        }
    )
    for key in values:
        for column in COLUMNS[key]:
            given = adjacency[column] if column in adjacency else pd.Series(np.nan, frame.index)
            open_ = blank(given).to_numpy()
            text = given.astype(str).str.strip()
            frame[column] = text.where(~open_, None).to_numpy(dtype=object)
            frame["specificity"] += ~open_
    for key, options in values.items():
        # a blank pool end: every value of the key; then a blank segment end: the pool's
        src, dst = COLUMNS[key]
        every = frame[src].isna()
        spread = (
            frame[every].drop(columns=src).merge(pd.DataFrame({src: list(options)}), how="cross")
        )
        frame = pd.concat([frame[~every], spread], ignore_index=True)
        frame[dst] = frame[dst].where(frame[dst].notna(), frame[src])
    home = frame["from_category"] == frame["to_category"]
    for key in values:
        src, dst = COLUMNS[key]
        home &= frame[src] == frame[dst]
    return frame[~home].sort_values(["row"], kind="stable").reset_index(drop=True)


def edges(adjacency: pd.DataFrame, values: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The edges of :func:`resolve`, each once: the most specific row's (the later one
    among equally specific rows)."""
    resolved = resolve(adjacency, values)
    ends = ["from_category", "to_category", *(c for k in values for c in COLUMNS[k])]
    best = resolved.sort_values(["specificity", "row"], kind="stable")
    return best.drop_duplicates(ends, keep="last").sort_values("row", kind="stable")


def duplicates(adjacency: pd.DataFrame, values: Mapping[str, Sequence[str]]) -> list[list[int]]:
    """The sets of rows (positions) that name one edge equally specifically, with no
    more specific row naming it: each set once, however many edges it shares."""
    resolved = resolve(adjacency, values)
    ends = ["from_category", "to_category", *(c for k in values for c in COLUMNS[k])]
    top = resolved.groupby(ends, dropna=False)["specificity"].transform("max")
    best = resolved[resolved["specificity"] == top]
    sets = best.groupby(ends, dropna=False, sort=False)["row"].agg(lambda r: sorted(r))
    tied = {tuple(int(i) for i in rows) for rows in sets if len(rows) > 1}
    return [list(rows) for rows in sorted(tied)]
