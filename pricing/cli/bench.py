"""``pricing bench``: the benchmark suite, each benchmark against a baseline measured in
the same run."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from pricing.cli.options import json_option, quiet_option
from pricing.cli.progress import Progress, solver_output_to_stderr
from pricing.inputs import SAMPLE_DIR

BENCHMARKS_DIR = SAMPLE_DIR.parent.parent / "benchmarks"


@click.command()
@click.option("--quick", is_flag=True, help="The smallest size of each stage (a smoke test).")
@click.option(
    "--only",
    default=None,
    help="A stage (load, estimate, equilibrium, whatif, "
    "interventions, run, cluster) or a benchmark name prefix such as equilibrium.coupled.",
)
@click.option("--repeat", default=5, show_default=True, help="Timed repetitions per benchmark.")
@click.option(
    "--record/--no-record",
    default=None,
    help="Append the results to the history and, for the whole suite, to RESULTS.md. "
    "Default: record unless --quick.",
)
@click.option(
    "--history",
    type=click.Path(dir_okay=False, path_type=Path),
    default=BENCHMARKS_DIR / "results" / "history.json",
    show_default="benchmarks/results/history.json",
    help="JSON history to compare with and append to.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=BENCHMARKS_DIR / "RESULTS.md",
    show_default="benchmarks/RESULTS.md",
    help="Markdown file whose latest-results table is replaced.",
)
@click.option(
    "--margin",
    default=0.25,
    show_default=True,
    help="Flag a ratio to baseline that grew by more than this share since the last run.",
)
@json_option("Print the records as a JSON list.")
@quiet_option
def bench(
    quick: bool,
    only: str | None,
    repeat: int,
    record: bool | None,
    history: Path,
    results: Path,
    margin: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run the benchmark suite: each benchmark against a baseline measured in the same run.

    Stages: load (validate + aggregate), estimate (batched 2SLS), equilibrium (uncoupled
    and coupled; auto, cvxpy, a naive loop, the closed-form floor), whatif (warm re-solve),
    interventions (plans), run (the nightly run end to end, 10^6 and 10^7 job rows) and
    cluster (the run on a 2-worker LocalCluster against the same run here). Prints
    median, spread, peak memory, compile and solve time and the ratio to the baseline;
    flags ratios that grew by more than --margin since the history's last run on this
    kind of machine. Needs a source checkout (benchmarks/) and the test extra.
    """
    import importlib

    from pricing.bench.harness import (
        Entry,
        append_history,
        compare,
        machine,
        markdown,
        measure,
        read_history,
        update_results,
    )

    if not (BENCHMARKS_DIR / "suite.py").is_file():
        raise click.UsageError(
            f"no benchmark suite at {BENCHMARKS_DIR}: `pricing bench` runs from a source "
            "checkout of pricing"
        )
    if repeat < 1:
        raise click.UsageError("--repeat must be at least 1")
    sys.path.insert(0, str(BENCHMARKS_DIR))
    suite = importlib.import_module("suite")
    if only is not None and not any(s.startswith(only) or only.startswith(s) for s in suite.STAGES):
        raise click.UsageError(f"--only {only!r} names no stage; stages: {', '.join(suite.STAGES)}")
    progress = Progress(quiet)
    records = []
    # setups print what they simulate; stdout is for the results
    with solver_output_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        for case in suite.cases(quick, only):
            progress(f"{case.name} {', '.join(f'{k}={v}' for k, v in case.params.items())}")
            records.append(measure(case, 1 if quick else repeat))
    progress.done()
    entry = Entry(machine(BENCHMARKS_DIR.parent), quick, records)
    earlier = read_history(history)
    regressions = compare(entry, earlier, margin)
    if record if record is not None else not quick:
        append_history(history, entry)
        if only is None:
            update_results(results, entry)
    flagged = {(r.name, json.dumps(r.params, sort_keys=True)): r for r in regressions}
    if as_json:
        out = []
        for r in records:
            hit = flagged.get((r.name, json.dumps(r.params, sort_keys=True)))
            out.append(
                {
                    **r.to_dict(),
                    "regression": None
                    if hit is None
                    else {"previous_ratio": hit.previous_ratio, "commit": hit.previous_commit},
                }
            )
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(markdown(entry))
    for regression in regressions:
        click.echo(f"slower than before: {regression}", err=True)


COMMANDS = (bench,)
