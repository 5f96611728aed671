"""The benchmark suite that ``pricing bench`` runs: every stage, from 10^3 to 10^6.

Each stage is a function ``(quick) -> iterator of Case``; a case is set up (seeded data,
markets, stored runs; cached under benchmarks/.data/) only when its stage is run. The
setups and baselines are the ones of the stage's own script (bench_load.py,
bench_estimate.py, …), whose docstrings say why each baseline is the right one; this file
only chooses the sizes. ``quick`` picks the smallest size of each stage, for CI's smoke
test (it finishes in well under two minutes on 2 cores).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pricing.bench.harness import Case  # noqa: E402  (after the script folder is on the path)


def load(quick: bool) -> Iterator[Case]:
    """Read + validate + aggregate Parquet inputs, against one DuckDB read-and-group."""
    from bench_load import floor, market_dir

    from pricing.config import load_config
    from pricing.inputs.panel import build_panel
    from pricing.inputs.validation import check_inputs

    for rows in (10_000,) if quick else (10_000, 100_000, 1_000_000):
        data = market_dir(rows, "parquet")
        config = load_config(data / "pricing.toml")
        yield Case(
            "load",
            {"job_rows": rows},
            lambda d=data, c=config: build_panel(check_inputs(d, c).checked()),
            "DuckDB read-and-group floor",
            lambda d=data: floor(d, "parquet"),
        )


def estimate(quick: bool) -> Iterator[Case]:
    """Batched 2SLS of G segments' curves, against linearmodels' IV2SLS in a loop
    (timed on the first 50 segments, scaled to G)."""
    from bench_estimate import linearmodels_loop, ours, simulate

    for groups in (1_000,) if quick else (1_000, 10_000, 100_000):
        frame = simulate(groups)
        head = frame[frame["segment"] < 50]
        yield Case(
            "estimate",
            {"segments": groups, "weeks": 104},
            lambda f=frame: ours(f),
            "linearmodels IV2SLS loop",
            lambda h=head: linearmodels_loop(h),
            baseline_scale=groups / 50,
        )


def equilibrium(quick: bool) -> Iterator[Case]:
    """Clearing uncoupled and coupled markets (``auto``, the engine's default), the convex
    program (``cvxpy``) and one cvxpy problem per component (``loop``, timed on the first
    100 segments and scaled), each against the closed-form numpy kernel on the same
    segments (the floor of any clearing method)."""
    from bench_equilibrium import closed_form_kernel, kernel_inputs, loop_seconds

    from pricing.market.equilibrium import solve
    from pricing.market.synthetic import random_market

    def cvxpy_split(result: Any) -> tuple[float, float]:
        return result.timings["clarabel_compile"], result.timings["clarabel_solve"]

    sizes = {
        "uncoupled": (1_000,) if quick else (1_000, 10_000, 100_000, 1_000_000),
        "coupled": (1_000,) if quick else (1_000, 10_000, 100_000),
    }
    for kind, components in (("uncoupled", (1, 1)), ("coupled", (2, 50))):
        for n in sizes[kind]:
            market = random_market(n, components, seed=5)
            inputs = kernel_inputs(market)

            def floor(x: dict[str, Any] = inputs) -> Any:
                return closed_form_kernel(x)

            params = {"segments": n}
            yield Case(
                f"equilibrium.{kind}.auto",
                params,
                lambda m=market: solve(m),
                "closed form",
                floor,
                details=_solve_parts,
            )
            if n <= 10_000 and not (quick and kind == "uncoupled"):
                yield Case(
                    f"equilibrium.{kind}.cvxpy",
                    params,
                    lambda m=market: solve(m, method="cvxpy"),
                    "closed form",
                    floor,
                    split=cvxpy_split,
                    repeat=1 if n > 1_000 else None,
                )
            if n == 1_000 and not quick:
                yield Case(
                    f"equilibrium.{kind}.loop",
                    params,
                    lambda m=market: loop_seconds(m, 100),
                    "closed form",
                    floor,
                    run_scale=n / 100,
                    repeat=1,
                    warmup=False,
                )


def _solve_parts(result: Any) -> dict[str, float]:
    """A solve's own timings that are seconds (not counts), in the order it ran them."""
    return {k: v for k, v in result.timings.items() if not k.endswith("segments")}


def whatif(quick: bool) -> Iterator[Case]:
    """A warm-started re-solve after demand +10 % in one category in ten, and in every
    category, against a cold solve of the same scenario market."""
    from bench_equilibrium import scenario

    from pricing.market.equilibrium import solve
    from pricing.market.synthetic import random_market

    for n in (1_000,) if quick else (10_000, 100_000):
        market = random_market(n, (2, 50), seed=5)
        base = solve(market)
        for label, every in (("tenth", 10), ("all", 1)):
            shifted = scenario(market, every)
            yield Case(
                "whatif",
                {"segments": n, "categories_changed": label},
                lambda s=shifted, b=base: solve(s, baseline=b),
                "cold solve",
                lambda s=shifted: solve(s),
            )


def connected(quick: bool) -> Iterator[Case]:
    """One connected market of 10^4 segments against the same segments cut into
    components of 10, 10^5 connected segments and 10^5 in components of 2–50 against the
    closed form, and a warm-started what-if on the connected 10^5 against a cold solve
    (bench_connected.py)."""
    from bench_connected import cases as connected_cases

    yield from connected_cases(quick)


PLAN_PARTS = ("valuation", "cp_build", "cp_solve", "total")


def interventions(quick: bool) -> Iterator[Case]:
    """Intervention plans (re-solved lever values, CP-SAT, a verified joint solve),
    against the naive first round: one full-market solve per lever option (timed on the
    first 10 options, scaled to all)."""
    from bench_interventions import cases as markets
    from bench_interventions import naive_round

    from pricing.decisions.interventions import plan_interventions

    def cp_split(plan: Any) -> tuple[float, float]:
        return plan.timings["cp_build"], plan.timings["cp_solve"]

    chosen = ("sample",) if quick else ("sample", "uncoupled", "tiers")
    for name, (market, catalogue, config) in markets(200).items():
        if name not in chosen:
            continue
        options = int(catalogue["max_units"].sum())
        shown = min(10, int((catalogue["max_units"] > 0).sum()))
        yield Case(
            "interventions",
            {"market": name, "segments": len(market), "levers": len(catalogue)},
            lambda m=market, c=catalogue, s=config: plan_interventions(m, c, s),
            "one solve per option",
            lambda m=market, c=catalogue: naive_round(m, c, 10),
            split=cp_split,
            repeat=1 if name == "tiers" else None,
            warmup=name != "tiers",
            details=lambda plan: {
                k: v
                for k, v in plan.timings.items()
                if k in ("valuation", "cp_build", "cp_solve", "total")
            },
            baseline_scale=options / shown,
        )


def run(quick: bool) -> Iterator[Case]:
    """``pricing run --json`` end to end as a fresh process (interpreter and imports
    included), against the DuckDB read-and-group floor of the same data. The plan runs
    at 10^4 and 10^6 job rows; at 10^7 it is left out (planning that market is the
    interventions stage's subject at a smaller size)."""
    from bench_load import floor
    from bench_run import market_dir, no_plan_config, one_run

    for rows, plan in ((10_000, False),) if quick else ((1_000_000, True), (10_000_000, False)):
        data = market_dir(rows)
        config = None if plan else no_plan_config(data)
        yield Case(
            "run",
            {"job_rows": rows, "plan": plan},
            lambda d=data, c=config: one_run(d, c),
            "DuckDB read-and-group floor",
            lambda d=data: floor(d, "parquet"),
            peak_mb=lambda result: float(result["peak_mb"]),
            repeat=None if quick else 1,
            warmup=False,
            details=lambda result: dict(result["steps"]),
        )


def cluster(quick: bool) -> Iterator[Case]:
    """``pricing run --workers 2`` against the same run in this process (bench_cluster)."""
    from bench_cluster import cases

    yield from cases(quick)


STAGES: dict[str, Callable[[bool], Iterator[Case]]] = {
    "load": load,
    "estimate": estimate,
    "equilibrium": equilibrium,
    "whatif": whatif,
    "connected": connected,
    "interventions": interventions,
    "run": run,
    "cluster": cluster,
}


def cases(quick: bool, only: str | None = None) -> Iterator[Case]:
    """The suite's cases in order; ``only`` keeps a stage (``equilibrium``) or the cases
    whose name starts with it (``equilibrium.coupled``)."""
    for stage, make in STAGES.items():
        if only is not None and not (stage.startswith(only) or only.startswith(stage)):
            continue
        for case in make(quick):
            if only is None or case.name.startswith(only) or stage == only:
                yield case
