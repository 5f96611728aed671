"""Where ``pricing bench`` writes: the benchmarks folder, and the sample it measures.

The benchmarks folder holds

- ``.data/``: setups written once and re-used (simulated markets, stored runs);
- ``results/history.json``: every recorded run of the suite (``--history``);
- ``RESULTS.md``: the latest full run's table, between markers (``--results``); in a
  checkout, README.md's performance table is made from it
  (:func:`pricing.bench.harness.readme_table`) each time ``pricing bench`` writes it.

It is ``$PRICING_BENCH_DIR`` when that is set; otherwise, in a source checkout, the
checkout's ``benchmarks/`` (found beside the package, as :data:`pricing.inputs.SAMPLE_DIR`
is), so that the history and RESULTS.md are the committed ones; otherwise, for an
installed package, ``pricing-bench/`` in the working directory.

Nothing here imports more than the standard library: the CLI reads it for ``--help``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pricing.inputs import SAMPLE_DIR

#: names another benchmarks folder, in a checkout or not
ENV = "PRICING_BENCH_DIR"
#: the benchmarks folder of an installed package, in the working directory
INSTALLED = "pricing-bench"

_ROOT = Path(__file__).resolve().parents[2]
#: the source checkout this package runs from, or None for an installed package
CHECKOUT: Path | None = (
    _ROOT if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "benchmarks").is_dir() else None
)


def bench_dir() -> Path:
    """The benchmarks folder (module docstring), as an absolute path."""
    chosen = os.environ.get(ENV)
    if chosen:
        return Path(chosen).resolve()
    if CHECKOUT is not None:
        return CHECKOUT / "benchmarks"
    return Path.cwd() / INSTALLED


def cache_dir() -> Path:
    """Where setups are written once and re-used."""
    return bench_dir() / ".data"


def history_path() -> Path:
    return bench_dir() / "results" / "history.json"


#: the checkout's RESULTS.md, whose latest block the checkout's README.md shows too
RESULTS = Path("benchmarks") / "RESULTS.md"


def results_path() -> Path:
    return bench_dir() / RESULTS.name


def sample_dir() -> Path:
    """The shipped sample market: ``data/sample`` of a checkout; an installed package,
    which ships no data, simulates it once into the cache as ``make sample`` made it
    (data/README.md): the same market, up to rounding in the last digit."""
    if SAMPLE_DIR.is_dir():
        return SAMPLE_DIR
    target = cache_dir() / "sample"
    if not target.is_dir():
        from pricing.market.simulate import SimulationSpec, simulate_market

        spec = SimulationSpec(segments=36, weeks=104, seed=20240101, jobs_per_week=12.0)
        simulate_market(spec).write(target)
    return target
