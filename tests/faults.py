"""Run the `pricing` CLI with writes under one folder failing, where no small disk can be
mounted (a process that is not root): ``python faults.py enospc FOLDER -- ARGS...``.

Every Parquet table, text file or file opened for writing under FOLDER raises the
OSError a full disk gives (ENOSPC), at the call that would write it; everything else
runs as usual. Tests use a real tmpfs when they may (storekit.full_disk).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import sys
from pathlib import Path
from typing import Any


def _install(folder: Path) -> None:
    import pandas as pd

    def under(path: Any) -> bool:
        try:
            return Path(os.fspath(path)).resolve().is_relative_to(folder)
        except TypeError:
            return False

    def full(path: Any) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))

    real_open, real_to_parquet = builtins.open, pd.DataFrame.to_parquet

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if (
            any(c in mode for c in "wax+")
            and under(file)
            and Path(file).name not in (".lock", ".readers")
        ):
            raise full(file)
        return real_open(file, mode, *args, **kwargs)

    def to_parquet(self: pd.DataFrame, path: Any = None, *args: Any, **kwargs: Any) -> Any:
        if path is not None and under(path):
            raise full(path)
        return real_to_parquet(self, path, *args, **kwargs)

    builtins.open = io.open = open_  # io.open: pathlib's
    pd.DataFrame.to_parquet = to_parquet  # type: ignore[method-assign]


def main() -> None:
    kind, folder, separator, *args = sys.argv[1:]
    assert kind == "enospc" and separator == "--", sys.argv
    _install(Path(folder).resolve())
    from pricing.cli import main as pricing

    sys.argv = ["pricing", *args]
    pricing()


if __name__ == "__main__":
    main()
