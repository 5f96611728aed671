"""The benchmark harness (timing against a baseline, history, comparison, rendering),
`pricing bench --quick` as CI's smoke test (no timing assertions: machines are shared),
and `pricing bench` run from the package alone, outside a checkout."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pricing.bench.harness as bench
from pricing.bench.harness import (
    README_BEGIN,
    README_END,
    RESULTS_BEGIN,
    RESULTS_END,
    Case,
    Entry,
    Record,
    append_history,
    compare,
    machine,
    markdown,
    measure,
    read_history,
    readme_table,
    update_readme,
    update_results,
)
from pricing.bench.paths import ENV, INSTALLED
from pricing.cli import main
from pricing.cli.exits import ExitCode

FIELDS = {
    "name",
    "params",
    "median_s",
    "spread_s",
    "peak_mb",
    "baseline",
    "ratio_to_baseline",
    "compile_s",
    "solve_s",
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """perf_counter advances by 1 s per reading: every timed call takes exactly 1 s."""
    ticks = itertools.count()
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(ticks)))


@pytest.mark.usefixtures("clock")
def test_measure_times_both_sides_and_scales_the_partial_one() -> None:
    calls = {"run": 0, "base": 0}

    def run() -> str:
        calls["run"] += 1
        return "result"

    def base() -> None:
        calls["base"] += 1

    case = Case(
        "equilibrium.coupled.loop",
        {"segments": 1000},
        run,
        "closed form",
        base,
        split=lambda result: (0.25, 0.75) if result == "result" else (0.0, 0.0),
        run_scale=10.0,
    )
    record = measure(case, repeat=3)
    # warm-up 1 + timed 3 + traced 1 runs; warm-up 1 + timed 3 baselines
    assert calls == {"run": 5, "base": 4}
    assert record.stage == "equilibrium" and record.repeats == 3
    assert record.median_s == 10.0 and record.spread_s == (10.0, 10.0)
    assert record.baseline_median_s == 1.0 and record.ratio_to_baseline == 10.0
    assert (record.compile_s, record.solve_s) == (0.25, 0.75)


@pytest.mark.usefixtures("clock")
def test_a_case_without_warm_up_and_with_its_own_peak() -> None:
    calls = []
    case = Case(
        "run",
        {"job_rows": 10},
        lambda: calls.append("run") or {"peak_mb": 123.4},
        "floor",
        lambda: None,
        peak_mb=lambda result: result["peak_mb"],
        repeat=1,
        warmup=False,
    )
    record = measure(case, repeat=5)  # the case's own repeat wins
    assert calls == ["run"] and record.repeats == 1 and record.peak_mb == 123.4


def test_the_traced_peak_sees_numpy_buffers() -> None:
    import numpy as np

    case = Case("x", {}, lambda: np.ones(4_000_000).sum(), "none", lambda: None)
    assert measure(case, 1).peak_mb >= 30  # 32 MB of float64, traced


def record(name: str, ratio: float, params: dict[str, int] | None = None) -> Record:
    return Record(
        name, name.split(".")[0], params or {"segments": 1000}, 1, ratio, (ratio, ratio),
        1.0, None, None, "floor", 1.0, (1.0, 1.0), ratio,
    )  # fmt: skip


def entry(commit: str, cpu: str, *records: Record) -> Entry:
    return Entry({"cpu": cpu, "commit": commit}, False, list(records))


def test_compare_flags_ratios_worse_than_the_margin_against_the_last_same_machine() -> None:
    history = [
        entry("a", "EPYC", record("load", 1.0), record("estimate", 1.0)),
        entry("b", "EPYC", record("load", 2.0)),  # the latest with load: 2.0
        entry("c", "Xeon", record("load", 0.1), record("estimate", 0.1)),  # another machine
    ]
    now = entry(
        "d",
        "EPYC",
        record("load", 2.4),  # +20 %: within 25 %
        record("estimate", 1.3),  # +30 % over commit a: flagged
        record("estimate", 9.0, {"segments": 10}),  # never measured at this size
    )
    (flag,) = compare(now, history, margin=0.25)
    assert flag.name == "estimate" and flag.previous_commit == "a"
    assert flag.worse_by == pytest.approx(0.3)
    assert "ratio 1.3 vs 1 at a (+30%)" in str(flag)
    assert compare(now, history, margin=0.1)[0].name == "load"


def test_history_round_trips_and_results_keep_their_prose(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    first = entry("a", "EPYC", record("load", 1.5))
    append_history(path, first)
    append_history(path, entry("b", "EPYC", record("load", 1.25)))
    assert [e.machine["commit"] for e in read_history(path)] == ["a", "b"]
    assert read_history(path)[0] == first

    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nprose above\n")
    full = Entry(
        {"cpu": "EPYC", "cpu_count": 2, "python": "3.11", "commit": "a", "date": "today"},
        False,
        [record("load", 1.5)],
    )
    update_results(results, full)
    update_results(results, full)  # replaced, not repeated
    text = results.read_text()
    assert text.count(RESULTS_BEGIN) == 1 and text.count(RESULTS_END) == 1
    assert text.endswith("prose above\n")
    assert "| load | segments=1,000 | 1.5 |" in markdown(full)

    # the README's table is made from RESULTS.md's latest block, between its own markers
    readme = tmp_path / "README.md"
    readme.write_text(f"# Tool\n\n## Performance\n\n{README_BEGIN}\nold\n{README_END}\n\nafter\n")
    assert update_readme(readme, results)
    table = readme_table(results.read_text())
    assert readme.read_text() == (
        f"# Tool\n\n## Performance\n\n{README_BEGIN}\n{table}\n{README_END}\n\nafter\n"
    )
    head, _, columns, _, row = table.splitlines()
    assert head == "Measured by `pricing bench` on EPYC (2 CPUs), Python 3.11, commit a, today."
    assert columns.split(" | ")[2:4] == ["median s", "peak MiB"]
    assert row == "| load | segments=1,000 | 1.5 | 1 | floor (1) | 1.5× |"
    plain = tmp_path / "OTHER.md"
    plain.write_text("no markers\n")
    assert not update_readme(plain, results) and plain.read_text() == "no markers\n"


@pytest.mark.slow
def test_pricing_bench_quick_runs_every_stage(tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    results = tmp_path / "RESULTS.md"
    args = ["bench", "--quick", "--json", "-q", "--history", str(history)]
    result = CliRunner().invoke(main, [*args, "--results", str(results), "--record"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    stages = {r["name"].split(".")[0] for r in records}
    assert stages == {
        "load",
        "estimate",
        "equilibrium",
        "connected",
        "whatif",
        "guidance",
        "interventions",
        "run",
        "backtest",
        "report",
        "cluster",
    }
    for r in records:
        assert set(r) >= FIELDS
        assert r["median_s"] > 0 and r["ratio_to_baseline"] > 0 and r["regression"] is None
    cvxpy = next(r for r in records if r["name"] == "equilibrium.coupled.cvxpy")
    assert 0 < cvxpy["compile_s"] < cvxpy["median_s"]
    (saved,) = read_history(history)
    assert saved.quick and len(saved.records) == len(records)
    assert RESULTS_BEGIN in results.read_text()


def test_pricing_bench_only_refuses_an_unknown_stage() -> None:
    result = CliRunner().invoke(main, ["bench", "--only", "solver", "--quick"])
    assert result.exit_code == ExitCode.USAGE
    assert "names no stage" in result.output and "equilibrium" in result.output


def test_pricing_bench_only_one_stage_records_nothing_by_default_when_quick(
    tmp_path: Path,
) -> None:
    history = tmp_path / "history.json"
    args = ["bench", "--quick", "--only", "equilibrium.uncoupled", "--json", "-q"]
    result = CliRunner().invoke(main, [*args, "--history", str(history)])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["equilibrium.uncoupled.auto"]
    assert not history.exists()


def test_size_needs_one_stage_with_sizes() -> None:
    for args, message in (
        (["--size", "1e4"], "--size needs --only naming one stage"),
        (["--only", "e", "--size", "1e4"], "--size needs --only naming one stage"),
        (["--only", "interventions", "--size", "1e4"], "has fixed markets, no size to set"),
        (["--only", "load", "--size", "0.5"], "whole numbers of at least 1"),
    ):
        result = CliRunner().invoke(main, ["bench", "--quick", *args])
        assert result.exit_code == ExitCode.USAGE, args
        assert message in result.output, result.output


def test_an_installed_package_writes_to_its_own_folder() -> None:
    m = {"cpu": "EPYC", "cpu_count": 2, "python": "3.11", "commit": "", "date": "today"}
    installed = Entry(m | {"versions": {"pricing": "0.1.0"}}, True, [record("load", 1.5)])
    assert "pricing 0.1.0 (installed, no checkout)" in markdown(installed)
    assert machine(None)["commit"] == "" and not machine(None)["dirty"]


def test_pricing_bench_runs_from_an_installed_package(tmp_path: Path) -> None:
    """The package alone (copied out of the checkout, as pip installs it), run from
    another folder: the suite comes with the package, setups are cached in
    ./pricing-bench/.data and the history read from ./pricing-bench/results."""
    site, work = tmp_path / "site", tmp_path / "work"
    package = Path(bench.__file__).resolve().parents[1]
    shutil.copytree(package, site / "pricing", ignore=shutil.ignore_patterns("__pycache__"))
    folder = work / INSTALLED
    history = folder / "results" / "history.json"
    # an earlier run on this machine with a far better ratio: the run compares with it
    append_history(
        history, Entry(machine(None), True, [record("load", 1e-9, {"job_rows": 10_000})])
    )
    before = history.read_text()
    env = {k: v for k, v in os.environ.items() if k != ENV} | {"PYTHONPATH": str(site)}
    command = [sys.executable, "-c", "from pricing.cli import main; main()", "bench"]
    command += ["--quick", "--only", "load", "--no-record", "--json", "-q"]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (load,) = json.loads(done.stdout)
    assert load["name"] == "load" and load["regression"] is not None
    assert "slower than before: load job_rows=10,000" in done.stderr
    assert (folder / ".data" / "market_1e04" / "jobs.parquet").is_file()
    assert history.read_text() == before  # --no-record
