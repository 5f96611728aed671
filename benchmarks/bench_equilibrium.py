r"""Benchmark: market clearing for 1,000 to 1,000,000 segments, uncoupled and coupled.

Markets come from :func:`pricing.market.synthetic.random_market` (seeded; setup, not timed):
elasticities over the whole supported ranges, rates and volumes over orders of
magnitude, and for the coupled case components of 2–50 segments joined by a random
spanning tree plus about one extra edge per segment, frictions up to 20 % of the rate.
For each size it times, in the same run:

- ``floor``: the closed-form numpy kernel on the same segments — log p* and the cleared
  hours, nothing else; the physical floor of any clearing method (an uncoupled market
  cannot be cleared with less work, and a coupled one needs at least this per segment);
- ``auto``: :func:`pricing.solve` — closed form or the batched interior point, then
  verification and the result object (what a user gets);
- ``cvxpy``: ``solve(method="cvxpy")``: one vectorized convex program (Clarabel at the
  tolerances the engine uses, 1e-11), with cvxpy's compile time and the solver's time
  reported apart; skipped above ``--cvxpy-max`` segments;
- ``loop``: the naive approach — one cvxpy problem per segment (uncoupled) or per
  component (coupled), timed on the first ``--loop-segments`` segments and scaled;
- ``whatif`` (coupled only): re-solving, with the base result passed as ``baseline``,
  after a scenario that raises demand 10 % in one category in ten (only the components
  it touches are solved again) and in every category (all are).

It reports medians (min–max) of ``--repeat`` runs (one run for cvxpy and the loop above
10,000 segments: they take tens of seconds), ratios to the floor and to cvxpy, and the
largest relative difference between the ``auto`` and ``cvxpy`` rates. A record (machine,
versions, git commit, date) is appended to ``benchmarks/results/equilibrium.json``;
``--markdown`` prints the table for RESULTS.md.

    .venv/bin/python benchmarks/bench_equilibrium.py --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import clarabel
import cvxpy
import numpy as np
import pandas as pd

from pricing.market.equilibrium import _coupled_problem, solve
from pricing.market.market import Market
from pricing.market.synthetic import random_market
from pricing.market.welfare import solve_welfare

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_estimate import dirty  # noqa: E402  (a script folder, not a package)
from bench_load import append_record, machine, timed  # noqa: E402

SEED = 5
COMPONENTS = (2, 50)


def closed_form_kernel(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """log p* = (l_D − l_S + ε log(1+f_c) − η log(1−f_f)) / (η − ε), q* = D(p*)."""
    eps, eta = arrays["eps"], arrays["eta"]
    log_p = (arrays["ld"] - arrays["ls"] + eps * arrays["lfc"] - eta * arrays["lff"]) / (eta - eps)
    return np.exp(log_p), np.exp(arrays["ld"] + eps * (log_p + arrays["lfc"]))


def kernel_inputs(market: Market) -> dict[str, np.ndarray]:
    return {
        "eps": market.array("demand_elasticity").copy(),
        "eta": market.array("supply_elasticity").copy(),
        "ld": market.array("log_demand_level").copy(),
        "ls": market.array("log_supply_level").copy(),
        "lfc": np.log1p(market.array("client_fee")),
        "lff": np.log1p(-market.array("freelancer_fee")),
    }


def loop_seconds(market: Market, max_segments: int) -> tuple[float, int]:
    """One cvxpy problem per component (a segment when uncoupled), over the first
    components up to ``max_segments`` segments; returns (seconds, segments done)."""
    comp = market.component
    p_star = market.uncoupled_rate()
    h_star = market.demand_hours(p_star)
    done = 0
    start = time.perf_counter()
    for c in range(int(comp.max()) + 1):
        chosen = comp == c
        problem, _, _ = _coupled_problem(market, chosen, p_star, h_star)
        solve_welfare(problem)
        done += int(chosen.sum())
        if done >= max_segments:
            break
    return time.perf_counter() - start, done


def scenario(market: Market, every: int) -> Market:
    """Demand up 10 % in every ``every``-th category (1: all of them)."""
    segments = market.segments.copy()
    codes = pd.factorize(segments["category"])[0]
    segments.loc[codes % every == 0, "log_demand_level"] += np.log(1.1)
    return Market(segments, market.edges, market.segment_keys)


def stats(times: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(times), 5),
        "min_s": round(min(times), 5),
        "max_s": round(max(times), 5),
    }


def run_case(kind: str, n: int, repeat: int, cvxpy_max: int, loop_segments: int) -> dict[str, Any]:
    sizes = (1, 1) if kind == "uncoupled" else COMPONENTS
    market = random_market(n, sizes, seed=SEED)
    inputs = kernel_inputs(market)
    heavy_repeat = repeat if n <= 10_000 else 1
    record: dict[str, Any] = {"kind": kind, "segments": len(market), "edges": len(market.edges)}

    floor_times, _ = timed(lambda: closed_form_kernel(inputs), max(repeat, 5))
    solve(market)  # warm-up: imports, first-touch allocations
    auto_times, auto = timed(lambda: solve(market), repeat)
    record["floor"] = stats(floor_times)
    record["auto"] = stats(auto_times) | {"ok": auto.ok, "timings": auto.timings}
    record["auto_over_floor"] = round(record["auto"]["median_s"] / record["floor"]["median_s"], 1)

    if len(market) <= cvxpy_max:
        cv_times, reference = timed(lambda: solve(market, method="cvxpy"), heavy_repeat)
        compile_s = reference.timings.get("clarabel_compile", float("nan"))
        solve_s = reference.timings.get("clarabel_solve", float("nan"))
        solved = np.isfinite(reference.rate) & np.isfinite(auto.rate)
        diff = np.abs(auto.rate[solved] / reference.rate[solved] - 1.0)
        record["cvxpy"] = stats(cv_times) | {
            "compile_s": round(compile_s, 4),
            "solver_s": round(solve_s, 4),
            "ok": reference.ok,
            "statuses": pd.Series(reference.status).value_counts().to_dict(),
        }
        record["cvxpy_over_auto"] = round(
            record["cvxpy"]["median_s"] / record["auto"]["median_s"], 1
        )
        record["rate_max_rel_diff"] = float(diff.max()) if diff.size else None

    if loop_segments:
        loop_s, done = loop_seconds(market, min(loop_segments, len(market)))
        scaled = loop_s * len(market) / done
        record["loop"] = {
            "segments_timed": done,
            "seconds": round(loop_s, 3),
            "scaled_s": round(scaled, 2),
        }
        record["loop_over_auto"] = round(scaled / record["auto"]["median_s"], 1)

    if kind == "coupled":
        # a scenario on one category in ten re-solves only the components it touches
        # (the rest are taken from the baseline); one on every category re-solves all
        for label, every in (("whatif_tenth", 10), ("whatif_all", 1)):
            shifted = scenario(market, every)
            whatif_times, after = timed(lambda s=shifted: solve(s, baseline=auto), repeat)
            record[label] = stats(whatif_times) | {
                "ok": after.ok,
                "reused_segments": after.timings.get("reused_segments", 0.0),
            }
    print(json.dumps(record, default=str), flush=True)
    return record


def run(
    uncoupled: list[int], coupled: list[int], repeat: int, cvxpy_max: int, loop_segments: int
) -> dict[str, Any]:
    records = [run_case("uncoupled", n, repeat, cvxpy_max, loop_segments) for n in uncoupled]
    records += [run_case("coupled", n, repeat, cvxpy_max, loop_segments) for n in coupled]
    info = machine() | {
        "numpy": np.__version__,
        "cvxpy": cvxpy.__version__,
        "clarabel": clarabel.__version__,
        "pricing_dirty": dirty(),
    }
    return {"machine": info, "repeat": repeat, "records": records}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    commit = m["commit"] + (" + uncommitted changes" if m["pricing_dirty"] else "")
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}, numpy {m['numpy']}, "
        f"cvxpy {m['cvxpy']}, Clarabel {m['clarabel']}; {m['date']}, commit {commit}",
        "",
        "| market | segments | floor s | auto s (min–max) | auto / floor | cvxpy s "
        "(compile + solver) | cvxpy / auto | loop s (scaled) | loop / auto | what-if s "
        "| max rel. diff auto vs cvxpy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(r: dict[str, Any], key: str, fmt: str) -> str:
        return format(r[key], fmt) if r.get(key) is not None else "–"

    for r in result["records"]:
        a = r["auto"]
        cv = r.get("cvxpy")
        cv_cell = (
            f"{cv['median_s']:.2f} ({cv['compile_s']:.2f} + {cv['solver_s']:.2f})" if cv else "–"
        )
        loop = r.get("loop")
        whatif = (
            f"{r['whatif_tenth']['median_s']:.3f} / {r['whatif_all']['median_s']:.3f}"
            if "whatif_all" in r
            else "–"
        )
        lines.append(
            f"| {r['kind']} | {r['segments']:,} | {r['floor']['median_s']:.4f} "
            f"| {a['median_s']:.4f} ({a['min_s']:.4f}–{a['max_s']:.4f}) "
            f"| {r['auto_over_floor']:.1f}× | {cv_cell} | {cell(r, 'cvxpy_over_auto', '.1f')}× "
            f"| {loop['scaled_s'] if loop else '–'} | {cell(r, 'loop_over_auto', ',.0f')}× "
            f"| {whatif} | {cell(r, 'rate_max_rel_diff', '.1e')} |"
        )
    lines += [
        "",
        f"Medians of {result['repeat']} runs (cvxpy once above 10,000 segments); the loop is "
        "timed on its first components and scaled linearly to all segments.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uncoupled", nargs="*", type=float, default=[1e3, 1e4, 1e5, 1e6])
    parser.add_argument("--coupled", nargs="*", type=float, default=[1e3, 1e4, 1e5])
    parser.add_argument("--quick", action="store_true", help="1,000 segments of each kind.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cvxpy-max", type=float, default=1e5)
    parser.add_argument("--loop-segments", type=int, default=200)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "equilibrium.json")
    args = parser.parse_args()
    uncoupled = [1000] if args.quick else [int(n) for n in args.uncoupled]
    coupled = [1000] if args.quick else [int(n) for n in args.coupled]
    result = run(uncoupled, coupled, args.repeat, int(args.cvxpy_max), args.loop_segments)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
