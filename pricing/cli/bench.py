"""``pricing bench``: the benchmark suite, each benchmark against a baseline measured in
the same run."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pricing.bench import paths
from pricing.bench.suite import STAGES, Sizes, cases, missing, stages
from pricing.cli.options import json_option, quiet_option
from pricing.cli.output import echo
from pricing.cli.progress import Progress, solver_output_to_stderr

if TYPE_CHECKING:
    from pricing.bench.harness import Entry, Record, Regression

_SIZED = ", ".join(f"{name} ({stage.size})" for name, stage in STAGES.items() if stage.size)


def _sizes(_: click.Context, __: click.Parameter, values: tuple[float, ...]) -> tuple[int, ...]:
    """--size takes 1e6 as well as 1000000; sizes are whole numbers."""
    if any(not math.isfinite(v) or v < 1 or v != int(v) for v in values):
        raise click.BadParameter(f"sizes are whole numbers of at least 1, got {values}")
    return tuple(int(v) for v in values)


@click.command()
@click.option("--quick", is_flag=True, help="The smallest size of each stage (a smoke test).")
@click.option(
    "--only",
    default=None,
    metavar="STAGE",
    help=f"A stage ({', '.join(STAGES)}) or a benchmark name prefix such as equilibrium.coupled.",
)
@click.option(
    "--size",
    "sizes",
    type=float,
    multiple=True,
    callback=_sizes,
    metavar="N",
    help="Run the stage named by --only at size N instead of its own sizes (repeatable; "
    f"1e7 is fine). N counts, by stage: {_SIZED}.",
)
@click.option("--repeat", default=5, show_default=True, help="Timed repetitions per benchmark.")
@click.option(
    "--record/--no-record",
    default=None,
    help="Append the results to the history and, for the whole suite, to RESULTS.md "
    "(and, for a checkout's own RESULTS.md, to its README's performance table). "
    "Default: record unless --quick.",
)
@click.option(
    "--history",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON history to compare with and append to. Default: results/history.json in "
    "the benchmarks folder.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown file whose latest-results table is replaced. Default: RESULTS.md in "
    "the benchmarks folder.",
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
    sizes: tuple[int, ...],
    repeat: int,
    record: bool | None,
    history: Path | None,
    results: Path | None,
    margin: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run the benchmark suite: each benchmark against a baseline measured in the same run.

    Stages: load (validate + aggregate), estimate (batched 2SLS), equilibrium (uncoupled
    and coupled; auto, cvxpy, a naive loop, the closed-form floor), whatif (warm
    re-solves and what-ifs on a stored run), guidance (bands from curve draws),
    interventions (plans), run (the nightly run end to end, 10^6 and 10^7 job rows),
    report (rendered, and opened in Chromium) and cluster (the run on a 2-worker
    LocalCluster against the same run here). Prints median, spread, peak memory,
    compile and solve time and the ratio to the baseline; flags ratios that grew by
    more than --margin since the history's last run on this kind of machine.

    \b
    The benchmarks folder holds the setups' cache (.data/), the history
    (results/history.json) and RESULTS.md:
      $PRICING_BENCH_DIR             when set;
      benchmarks/ of the checkout    when pricing runs from a source checkout;
      ./pricing-bench/               otherwise (an installed package).

    Some stages need the bench extra (pip install 'pricing[bench]': linearmodels,
    playwright, dask) and report needs Chromium ($PRICING_CHROMIUM or chromium).
    """
    from pricing.bench.harness import (
        Entry,
        append_history,
        compare,
        machine,
        read_history,
        update_readme,
        update_results,
    )

    _check(only, sizes, repeat)
    records = _measure(Sizes(quick, sizes), only, 1 if quick else repeat, quiet)
    entry = Entry(machine(paths.CHECKOUT), quick, records)
    history = history or paths.history_path()
    regressions = compare(entry, read_history(history), margin)
    if record if record is not None else not quick:
        append_history(history, entry)
        if only is None:
            results = results or paths.results_path()
            update_results(results, entry)
            if paths.CHECKOUT is not None and results.resolve() == paths.CHECKOUT / paths.RESULTS:
                update_readme(paths.CHECKOUT / "README.md", results)
    _print(entry, regressions, as_json)


def _check(only: str | None, sizes: tuple[int, ...], repeat: int) -> None:
    """Usage errors, found before anything runs: an unknown stage, --size without one
    stage that has a size, a stage this machine cannot run."""
    if repeat < 1:
        raise click.UsageError("--repeat must be at least 1")
    chosen = stages(only)
    if not chosen:
        raise click.UsageError(f"--only {only!r} names no stage; stages: {', '.join(STAGES)}")
    if sizes:
        if only is None or len(chosen) != 1:
            raise click.UsageError("--size needs --only naming one stage")
        if STAGES[chosen[0]].size is None:
            raise click.UsageError(
                f"--size: the {chosen[0]} stage has fixed markets, no size to set; stages "
                f"with a size: {_SIZED}"
            )
    lacking = missing(chosen)
    if lacking:
        raise click.UsageError(
            "this machine cannot run every stage asked for (leave them out with --only):\n  "
            + "\n  ".join(lacking)
        )


def _measure(sizes: Sizes, only: str | None, repeat: int, quiet: bool) -> list[Record]:
    from pricing.bench.harness import measure

    progress = Progress(quiet)
    records = []
    # setups print what they simulate; stdout is for the results
    with solver_output_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        for case in cases(sizes, only):
            progress(f"{case.name} {', '.join(f'{k}={v}' for k, v in case.params.items())}")
            records.append(measure(case, repeat))
    progress.done()
    return records


def _print(entry: Entry, regressions: list[Regression], as_json: bool) -> None:
    """The records (as Markdown, or JSON with any regression), then the regressions on
    stderr."""
    from pricing.bench.harness import markdown

    if as_json:
        flagged = {(r.name, json.dumps(r.params, sort_keys=True)): r for r in regressions}
        out: list[dict[str, Any]] = []
        for r in entry.records:
            hit = flagged.get((r.name, json.dumps(r.params, sort_keys=True)))
            flag = (
                None
                if hit is None
                else {"previous_ratio": hit.previous_ratio, "commit": hit.previous_commit}
            )
            out.append({**r.to_dict(), "regression": flag})
        echo(json.dumps(out, indent=2))
    else:
        echo(markdown(entry))
    for regression in regressions:
        echo(f"slower than before: {regression}", err=True)


COMMANDS = (bench,)
