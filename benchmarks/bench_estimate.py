r"""Benchmark: batched 2SLS elasticities for 1,000 to 100,000 groups of 104 weeks.

For each number of groups G the script simulates (with numpy, seeded; setup, not timed)
one demand curve per group

    log q_gt = a_g + ε_g log p_gt + 0.5 z_d,gt + u_gt
    log p_gt = c_g + 0.5 z_s,gt + 0.2 z_d,gt + 0.6 u_gt + v_gt     (log p endogenous)

as columns ``segment``, ``hours`` (q), ``rate`` (p), ``fx_index`` (z_s, the instrument) and
``marketing`` (z_d, a control), then measures:

- ``ours``: :func:`pricing.estimation.iv.estimate_curve` with the instrument, the control and
  ``by=["segment"]`` (HC1 covariance) — median and min–max of ``--repeat`` runs;
- ``peak``: the tracemalloc peak of one more call (a separate, untimed run, because tracing
  slows allocation; numpy and pandas report their buffers to tracemalloc);
- ``linearmodels``: the baseline, ``IV2SLS(...).fit(cov_type="robust", debiased=True)``
  looped over the first ``--baseline-groups`` groups, each group's arrays sliced from the
  frame by ``groupby`` inside the loop as a user without a batched estimator would do,
  timed the same way and scaled linearly to G.

It reports ``ratio = linearmodels scaled / ours`` and, as a sanity check (not a test), the
largest relative difference between the two estimates of the elasticity (and of its
standard error, the same HC1 formula) on the baseline groups. A record (machine, versions,
git commit, date) is appended to ``benchmarks/results/estimate.json``; ``--markdown``
prints the table for RESULTS.md.

    .venv/bin/python benchmarks/bench_estimate.py --groups 1e3 1e4 1e5 --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import linearmodels
import numpy as np
import pandas as pd
from linearmodels.iv import IV2SLS

from pricing.estimation.iv import estimate_curve

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_load import append_record, machine, timed  # noqa: E402  (a script folder, not a package)

WEEKS = 104
SEED = 11


def simulate(groups: int, weeks: int = WEEKS, seed: int = SEED) -> pd.DataFrame:
    """``groups`` × ``weeks`` rows of the demand system in the module docstring."""
    rng = np.random.default_rng(seed)
    rows = groups * weeks
    segment = np.repeat(np.arange(groups, dtype=np.int64), weeks)
    a = rng.normal(5.0, 1.0, groups)[segment]
    eps = rng.uniform(-2.0, -0.3, groups)[segment]
    c = rng.normal(3.5, 0.5, groups)[segment]
    z_s, z_d = rng.normal(size=rows), rng.normal(size=rows)
    u, v = rng.normal(0.0, 0.3, rows), rng.normal(0.0, 0.2, rows)
    log_p = c + 0.5 * z_s + 0.2 * z_d + 0.6 * u + v
    log_q = a + eps * log_p + 0.5 * z_d + u
    return pd.DataFrame(
        {
            "segment": segment,
            "hours": np.exp(log_q),
            "rate": np.exp(log_p),
            "fx_index": z_s,
            "marketing": z_d,
        }
    )


def ours(frame: pd.DataFrame) -> pd.DataFrame:
    fit = estimate_curve(
        frame, "hours", "rate", instruments=["fx_index"], controls=["marketing"], by=["segment"]
    )
    return fit.to_frame()


def peak_mb(frame: pd.DataFrame) -> float:
    tracemalloc.start()
    try:
        ours(frame)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def linearmodels_loop(frame: pd.DataFrame) -> pd.DataFrame:
    """One IV2SLS fit per group, its arrays built from a groupby slice inside the loop."""
    rows = []
    for segment, g in frame.groupby("segment"):
        dep = np.log(g["hours"])
        exog = g[["marketing"]].assign(const=1.0)
        endog = np.log(g["rate"])
        res = IV2SLS(dep, exog, endog, g["fx_index"]).fit(cov_type="robust", debiased=True)
        rows.append((segment, res.params["rate"], res.std_errors["rate"]))
    return pd.DataFrame(rows, columns=["segment", "elasticity", "std_error"])


def max_rel_diff(a: pd.Series, b: pd.Series) -> float:
    return float((np.abs(a - b) / np.abs(b)).max())


def dirty() -> bool:
    """Uncommitted changes to the package: the recorded commit is then not the whole story."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "pricing"],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        ).stdout
    except OSError:
        return False
    return bool(status.strip())


def run(groups_list: list[int], repeat: int, baseline_groups: int) -> dict[str, Any]:
    records = []
    for groups in groups_list:
        start = time.perf_counter()
        frame = simulate(groups)
        setup_s = time.perf_counter() - start
        our_times, fitted = timed(lambda f=frame: ours(f), repeat)
        peak = peak_mb(frame)

        subset_n = min(baseline_groups, groups)
        subset = frame[frame["segment"] < subset_n]
        base_times, reference = timed(lambda s=subset: linearmodels_loop(s), repeat)
        mine = fitted.set_index("segment").loc[reference["segment"]].reset_index()

        our_median = statistics.median(our_times)
        scaled = statistics.median(base_times) * groups / subset_n
        record = {
            "groups": groups,
            "rows": len(frame),
            "weeks": WEEKS,
            "repeat": repeat,
            "setup_s": round(setup_s, 3),
            "ours_median_s": round(our_median, 4),
            "ours_min_s": round(min(our_times), 4),
            "ours_max_s": round(max(our_times), 4),
            "ours_per_group_us": round(our_median / groups * 1e6, 2),
            "ours_peak_mb": round(peak, 1),
            "baseline_groups": subset_n,
            "baseline_median_s": round(statistics.median(base_times), 4),
            "baseline_min_s": round(min(base_times), 4),
            "baseline_max_s": round(max(base_times), 4),
            "baseline_s_scaled": round(scaled, 2),
            "ratio": round(scaled / our_median, 1),
            "elasticity_max_rel_diff": max_rel_diff(mine["elasticity"], reference["elasticity"]),
            "std_error_max_rel_diff": max_rel_diff(mine["std_error"], reference["std_error"]),
        }
        records.append(record)
        print(json.dumps(record), flush=True)
        del frame, subset, fitted
    info = machine() | {
        "numpy": np.__version__,
        "linearmodels": linearmodels.__version__,
        "pricing_dirty": dirty(),
    }
    return {"machine": info, "records": records}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    commit = m["commit"] + (" + uncommitted changes" if m["pricing_dirty"] else "")
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}, numpy {m['numpy']}, "
        f"pandas {m['pandas']}, linearmodels {m['linearmodels']}; {m['date']}, commit {commit}",
        "",
        "| groups | rows | ours median s (min–max) | peak MB | per group µs "
        "| linearmodels scaled s | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        lines.append(
            f"| {r['groups']:,} | {r['rows']:,} "
            f"| {r['ours_median_s']:.3f} ({r['ours_min_s']:.3f}–{r['ours_max_s']:.3f}) "
            f"| {r['ours_peak_mb']:,.0f} | {r['ours_per_group_us']:.1f} "
            f"| {r['baseline_s_scaled']:,.1f} | {r['ratio']:,.0f}× |"
        )
    worst = max(r["elasticity_max_rel_diff"] for r in result["records"])
    lines += [
        "",
        f"Medians of {result['records'][0]['repeat']} runs; linearmodels timed on the first "
        f"{result['records'][0]['baseline_groups']:,} groups and scaled linearly; elasticities "
        f"agree with linearmodels to {worst:.1e} (max relative difference).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", nargs="+", type=float, default=[1e3, 1e4, 1e5])
    parser.add_argument("--quick", action="store_true", help="1,000 groups only.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--baseline-groups",
        type=int,
        default=200,
        help="Groups fitted one by one with linearmodels (then scaled to all groups).",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="Print a Markdown table at the end."
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "estimate.json")
    args = parser.parse_args()
    groups = [1000] if args.quick else [int(g) for g in args.groups]
    result = run(groups, args.repeat, args.baseline_groups)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
