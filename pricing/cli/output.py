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
    """Write ``frame`` to ``out`` atomically, saying so on ``progress``
    (:func:`pricing.inputs.io.write_frame`)."""
    from pricing.inputs.io import write_frame

    progress(f"writing {out}")
    write_frame(frame, out, fmt)
