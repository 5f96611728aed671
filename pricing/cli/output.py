"""Small things commands share: printing, reading the configuration, writing a table for
--out (CSV, Parquet or JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pricing.cli.progress import Progress
from pricing.display import escape_controls

if TYPE_CHECKING:
    import pandas as pd

    from pricing.config import RunConfig


def echo(text: str = "", err: bool = False) -> None:
    """Print a command's output (stdout, or stderr with ``err``), every control character
    and bidirectional override in it escaped: names and values come from data, and must
    show as what they are, not move the cursor, recolour or reorder the terminal."""
    click.echo(escape_controls(text), err=err)


def load_config(data_dir: Path, config_path: Path | None) -> RunConfig:
    """--config if given, else DATA_DIR/pricing.toml if present, else the defaults
    (a ConfigError, exit 3, when the file is invalid)."""
    from pricing.config import resolve_config

    return resolve_config(data_dir, config_path)[0]


def write_table(frame: pd.DataFrame, out: Path, progress: Progress, fmt: str | None = None) -> None:
    """Write ``frame`` to ``out`` atomically, saying so on ``progress`` (:func:`write_frame`)."""
    progress(f"writing {out}")
    write_frame(frame, out, fmt)


def write_frame(frame: pd.DataFrame, out: Path, fmt: str | None = None) -> None:
    """Write ``frame`` to ``out`` atomically, as ``fmt`` (default: ``out``'s suffix).

    CSV: a header row, ISO dates, missing values empty. Parquet: the frame's own column
    types. JSON: one array of records, ISO dates, missing values ``null``, numbers to 15
    significant digits (as ``--json`` prints, fractions as fractions). A failure to write
    is an :class:`~pricing.errors.OutputError` (exit 6) and leaves nothing behind."""
    from pricing.inputs.io import atomic_file

    fmt = fmt or out.suffix.lower().lstrip(".")
    with atomic_file(out) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        elif fmt == "json":
            text = frame.to_json(orient="records", date_format="iso", double_precision=15)
            tmp.write_text(text + "\n", encoding="utf-8")
        else:
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
