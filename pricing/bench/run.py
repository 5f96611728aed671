"""Stage ``run``: the nightly run end to end, as an orchestrator starts it.

For a simulated market of about N job rows (the load stage's markets: 104 weeks, 40 jobs
per segment-week, the simulator's catalogue and budget) the benchmark starts
``pricing run --json --no-report`` as a fresh process into an empty store (interpreter
start and imports included), with the intervention plan or without it (the same
settings with a budget of 0, written beside the data as ``pricing.no-plan.toml``). The
record's details are every step's seconds as the run reports them; its peak memory is
the run's own ``peak_memory_mb`` (its peak resident set, ``VmHWM``, before storing; the
child's ``ru_maxrss`` would also count this process's memory at the fork).

The baseline, measured in the same run, is the load stage's **floor**: one DuckDB pass
reading every contract column of jobs and supply and grouping it per segment-week, the
least any run must do with the data. The ratio is what estimating, clearing, guiding,
planning and storing cost on top of reading the data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pricing.bench.harness import Case
from pricing.bench.load import floor, market_dir
from pricing.config import load_config


def no_plan_config(data: Path) -> Path:
    """``data``'s pricing.toml with an intervention budget of 0 (no plan), written
    beside it as pricing.no-plan.toml."""
    settings = load_config(data / "pricing.toml")
    settings = settings.model_copy(
        update={"interventions": settings.interventions.model_copy(update={"budget": 0.0})}
    )
    path = data / "pricing.no-plan.toml"
    path.write_text(settings.to_toml())
    return path


def one_run(data: Path, config: Path | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``pricing run --json`` (with ``extra`` options) in a fresh process: its wall time
    (``wall``), steps (``steps``), peak memory (``peak_mb``) and what it reports
    degraded (``degraded``)."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-c", "from pricing.cli import main; main()", "run"]
        command += ["--data", str(data), "--store", f"{scratch}/store", "--json", "--quiet"]
        command += ["--no-report", *extra]
        if config is not None:
            command += ["--config", str(config)]
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            start = time.perf_counter()
            code = subprocess.run(command, stdout=stdout, stderr=stderr).returncode
            wall = time.perf_counter() - start
        if code not in (0, 4, 5):
            raise RuntimeError(f"pricing run failed ({code}): {err.read_text()}")
        payload = json.loads(out.read_text())
    return {
        "wall": wall,
        "steps": payload["timings_s"],
        "peak_mb": payload["peak_memory_mb"],
        "degraded": payload["degraded"],
    }


def case(rows: int, plan: bool, repeat: int | None) -> Case:
    """The nightly run of about ``rows`` job rows, with or without its plan, against the
    floor; ``repeat`` as the suite chooses (minutes-long runs once)."""
    data = market_dir(rows)
    config = None if plan else no_plan_config(data)
    return Case(
        "run",
        {"job_rows": rows, "plan": plan},
        lambda: one_run(data, config),
        "DuckDB read-and-group floor",
        lambda: floor(data),
        peak_mb=lambda result: float(result["peak_mb"]),
        repeat=repeat,
        warmup=False,
        details=lambda result: dict(result["steps"]),
    )
