"""Where a run came from: its inputs' fingerprints, the library versions, its peak memory.

What the manifest records so that a stored number can be traced to the files and the
code that made it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from pathlib import Path

from pricing._version import __version__
from pricing.inputs.contract import OPTIONAL_TABLES, REQUIRED_TABLES
from pricing.inputs.io import find_sources
from pricing.inputs.validation import CheckedInputs
from pricing.store.manifest import InputFile, InputTable

_LIBRARIES = ("numpy", "pandas", "scipy", "cvxpy", "duckdb", "ortools", "pyarrow", "pydantic")


def fingerprints(data_dir: Path, checked: CheckedInputs) -> dict[str, InputTable]:
    """Per input table: its files with size and SHA-256, and the rows read."""
    sources, _ = find_sources(data_dir, REQUIRED_TABLES + OPTIONAL_TABLES)
    out = {}
    for name, source in sources.items():
        rows = checked.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
        files = []
        for path in source.paths:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            files.append(
                InputFile(file=source.relative(path), bytes=path.stat().st_size, sha256=digest)
            )
        out[name] = InputTable(rows=int(rows), files=tuple(files))
    return out


def versions() -> dict[str, str]:
    """pricing's, Python's and the numerical libraries' versions."""
    out = {"pricing": __version__, "python": sys.version.split()[0]}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
