"""The sample's nightly run and a what-if against the stored golden run (tests/golden/).

A change of the house that should change no number (a move, a refactoring) must leave
every stored table and every report's text as they were. The comparison is not bit for
bit: the suite must pass on any x86-64 CPU, and SIMD kernels round differently in the
last bits. Tolerances:

- floats: within 1e-6 of each other, relative, or absolute where the value is below
  1e-6 of its column's largest: 1e-6 is the equilibrium's own verification bar
  (``VERIFY_TOL``), so a number that moves by more has changed in substance;
- everything else (keys, labels, statuses, counts, flags, units bought): equal;
- a report's text (figures and machine-specific header rows taken out,
  :func:`golden.normalized`): equal; its numbers are printed to a few digits.

After a change that moves numbers on purpose, rewrite the golden files with
``.venv/bin/python tests/golden/golden.py`` and say why in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import golden

RTOL = 1e-6


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    run, scenario = golden.produce(tmp_path_factory.mktemp("golden") / "store")
    return {"run": run, "scenario": scenario}


def assert_tables_close(expected: pd.DataFrame, actual: pd.DataFrame, name: str) -> None:
    assert list(actual.columns) == list(expected.columns), name
    assert len(actual) == len(expected), name
    for column in expected.columns:
        a, b = expected[column], actual[column]
        if pd.api.types.is_float_dtype(a):
            u, v = a.to_numpy(np.float64), b.to_numpy(np.float64)
            finite = u[np.isfinite(u)]
            floor = RTOL * (np.abs(finite).max() if finite.size else 0.0)
            np.testing.assert_allclose(
                v, u, rtol=RTOL, atol=floor, equal_nan=True, err_msg=f"{name}.{column}"
            )
        else:
            pd.testing.assert_series_equal(b, a, check_names=False, obj=f"{name}.{column}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["run", "scenario"])
def test_tables_match_the_golden_run(fresh: dict[str, Path], kind: str) -> None:
    stored = golden.HERE / "sample" / kind
    names = sorted(p.name for p in stored.glob("*.parquet"))
    assert names == sorted(p.name for p in fresh[kind].glob("*.parquet"))
    for name in names:
        assert_tables_close(
            pd.read_parquet(stored / name), pd.read_parquet(fresh[kind] / name), name
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["run", "scenario"])
def test_the_report_text_matches_the_golden_run(fresh: dict[str, Path], kind: str) -> None:
    expected = (golden.HERE / "sample" / kind / "report.txt").read_text(encoding="utf-8")
    actual = golden.normalized((fresh[kind] / "report.html").read_text(encoding="utf-8"))
    assert actual == expected
