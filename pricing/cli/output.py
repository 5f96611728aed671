"""Small things commands share: reading the configuration, writing a table for --out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pricing.cli.progress import Progress

if TYPE_CHECKING:
    import pandas as pd

    from pricing.config import RunConfig


def load_config(data_dir: Path, config_path: Path | None) -> RunConfig:
    """--config if given, else DATA_DIR/pricing.toml if present, else the defaults
    (a ConfigError, exit 3, when the file is invalid)."""
    from pricing.config import resolve_config

    return resolve_config(data_dir, config_path)[0]


def write_table(frame: pd.DataFrame, out: Path, progress: Progress) -> None:
    """Write ``frame`` to ``out`` (.parquet or .csv) atomically."""
    from pricing.inputs.io import atomic_file

    progress(f"writing {out}")
    with atomic_file(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
