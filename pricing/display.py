"""How result objects print, written once (after linearmodels' ``_SummaryStr``).

Every result of the engine — a validation report, a panel, curves, an equilibrium,
guidance, a plan, a what-if, a stored run, a backtest — says what it is in
``summary(max_rows)``: a heading, then up to ``max_rows`` rows of its table (``0`` gives
the heading alone; each result picks its own default). It gives its table with
``to_frame()`` and its JSON form with ``to_dict()``. This mixin derives the rest from
those: ``str(result)`` is the summary, and a notebook shows the heading above the first
:attr:`Display.html_rows` rows of ``html_frame()`` (by default ``to_frame()``).
"""

from __future__ import annotations

import html
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd


class Display(ABC):
    """``summary``/``to_frame``/``to_dict`` given, ``__str__`` and ``_repr_html_`` derived."""

    #: rows of the table a notebook shows
    html_rows: ClassVar[int] = 50

    @abstractmethod
    def summary(self, max_rows: int = 20) -> str:
        """A heading, then up to ``max_rows`` rows of the result's table (``0``: the
        heading alone)."""

    @abstractmethod
    def to_frame(self) -> pd.DataFrame:
        """The result's table."""

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data: by default its table's records."""
        return {"rows": records(self.to_frame())}

    def html_frame(self) -> pd.DataFrame:
        """The table a notebook shows (the first :attr:`html_rows` rows of it)."""
        return self.to_frame()

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(self.summary(max_rows=0)).replace("\n", "<br>")
        rows = self.html_frame().head(self.html_rows)
        return f"<p>{head}</p>" + rows.to_html(index=False, na_rep=MISSING)


#: formats one cell of a table
Formatter = Callable[[Any], str]

#: how a missing value shows, in the terminal and on the page alike
MISSING = "–"


def number(value: Any, fmt: str = "{:,.2f}") -> str:
    """``value`` formatted by ``fmt``, or :data:`MISSING` when it is None or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return fmt.format(value)


def table(
    frame: pd.DataFrame, fmt: str | None = None, columns: dict[str, Formatter] | None = None
) -> str:
    """A table as a summary prints it: no index, floats by ``fmt`` (pandas' own format
    when None), the columns named in ``columns`` by their own formatter (:func:`number`,
    :func:`share`: they print a missing value as :data:`MISSING` too), and any other
    missing value (None, NaN, NaT, <NA>, ±inf) as :data:`MISSING`, as the report and
    notebooks show it."""
    import numpy as np

    shown = frame.replace([math.inf, -math.inf], math.nan)
    for c in shown.columns[shown.dtypes.map(lambda d: not isinstance(d, np.dtype))]:
        shown[c] = shown[c].astype(object).where(shown[c].notna(), math.nan)  # <NA> too
    return shown.to_string(
        index=False,
        float_format=None if fmt is None else fmt.format,
        formatters=dict(columns) if columns else None,
        na_rep=MISSING,
    )


#: a relative change smaller than this is the solvers' rounding (their answers are exact
#: to ~1e-15 relative, verified to 1e-6): no change, shown without a sign of its own
NO_CHANGE = 1e-12


def share(value: Any, signed: bool = False) -> str:
    """A fraction (a fill of 1.032, a gap of 0.05) as a percentage, the one way
    percentages print on the terminal and on the page: ``103.2 %``, or with ``signed``
    (a change) ``+5.0 %``, a change within :data:`NO_CHANGE` of 0 as ``+0.0 %``. Tables
    and JSON keep the fraction."""
    if signed and isinstance(value, float | int) and abs(value) < NO_CHANGE:
        value = 0.0
    return number(None if value is None else 100 * value, "{:+.1f} %" if signed else "{:.1f} %")


def signed_share(value: Any) -> str:
    """A relative change kept as a fraction, printed as a signed percentage: ``+5.0 %``."""
    return share(value, signed=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready records: ISO dates, 10 significant digits, NaN as null."""
    out: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", date_format="iso", double_precision=10)
    )
    return out


#: Characters that change how a terminal or a page shows the text around them: control
#: characters (C0 but the newline, DEL, C1), bidirectional embeddings, overrides, isolates
#: and marks, and the line and paragraph separators. A category named with an escape
#: sequence or a right-to-left override must show as what it is, not act.
_UNSAFE = "\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_BETWEEN_LINES = re.compile(f"[{_UNSAFE}]")
_IN_A_LINE = re.compile(f"[{_UNSAFE}\n]")


def escape_controls(text: str, newlines: bool = True) -> str:
    """``text`` with every unsafe character (:data:`_UNSAFE`; the newline too unless
    ``newlines``) written as its Python escape, ``\\x1b`` or ``\\u202e``."""
    return (_BETWEEN_LINES if newlines else _IN_A_LINE).sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
