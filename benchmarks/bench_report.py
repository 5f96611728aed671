"""Benchmark: the HTML report of a stored run, rendered and opened in headless Chromium.

Markets: the shipped sample (36 segments, with its intervention plan) and simulated
markets of 1,000 and 10,000 segments (``pricing simulate --jobs-per-week 2``, skill
families of 12 categories), each run once by the nightly run without a budget and stored
under benchmarks/.data/report_N/. Then, in one process, per market:

- ``read``: **the baseline measured in the same run**, opening the stored run and reading
  the tables the report uses (what any report of the run must at least do);
- ``render``: :func:`pricing.report.report.run_report` (figures, tables, template), after one
  warm-up render that pays matplotlib's import;
- the page's size, its figures and its table rows;
- ``load``: Chromium opening the file until its load event (figures decoded), against
  ``blank``, an empty HTML file opened in the same browser (the browser's own floor);
- ``screenshot``: a full-page screenshot.

Medians over ``--repeat``; results are appended to ``results/report.json``.

    .venv/bin/python benchmarks/bench_report.py --segments 36,1000,10000 --repeat 5 --markdown
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from pricing.config import load_config
from pricing.inputs import SAMPLE_DIR
from pricing.market.simulate import SimulationSpec, simulate_market
from pricing.report.report import run_report
from pricing.runs.pipeline import run_batch
from pricing.runs.run import Run, load_run

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_load import append_record, machine, timed  # noqa: E402  (a script folder)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
READ = ("curves", "equilibrium", "guidance", "market", "interventions")


def stored_run(segments: int) -> Run:
    """The stored nightly run of the sample (36) or of a simulated market (cached)."""
    folder = HERE / ".data" / f"report_{segments}"
    store = folder / "store"
    if not (store / "runs").is_dir():
        if segments == 36:
            data, config = SAMPLE_DIR, load_config(SAMPLE_DIR / "pricing.toml")
        else:
            data = folder / "data"
            spec = SimulationSpec(segments=segments, jobs_per_week=2.0, seed=1)
            simulate_market(spec).write(data, overwrite=True)
            config = load_config(data / "pricing.toml")
            # planning 10^4 levers is bench_interventions.py's subject, not this one's
            config = config.model_copy(
                update={"interventions": config.interventions.model_copy(update={"budget": 0})}
            )
        started = time.perf_counter()
        run_batch(data, config, store)
        print(f"stored the {segments:,}-segment run in {time.perf_counter() - started:.0f} s")
    return load_run("latest", store)


def read(run: Run) -> None:
    fresh = Run.open(run.path, run.store)
    for name in READ:
        fresh.table(name)


def measure(segments: int, repeat: int, browser: Any, scratch: Path) -> dict[str, Any]:
    run = stored_run(segments)
    read_s, _ = timed(lambda: read(run), repeat)
    run_report(run)  # warm-up: matplotlib's import and font cache
    render_s, report = timed(lambda: run_report(Run.open(run.path, run.store)), repeat)
    path = report.write(scratch / f"report_{segments}.html")
    blank = scratch / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")

    def load(file: Path) -> float:
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(file.as_uri(), wait_until="load")
        page.evaluate("Promise.all([...document.images].map((i) => i.decode()))")
        seconds = time.perf_counter() - started
        page.close()
        return seconds

    load_s = [load(path) for _ in range(repeat)]
    blank_s = [load(blank) for _ in range(repeat)]
    page = browser.new_page()
    page.goto(path.as_uri(), wait_until="load")
    started = time.perf_counter()
    page.screenshot(path=str(scratch / f"report_{segments}.png"), full_page=True)
    screenshot_s = time.perf_counter() - started
    rows = page.locator("tbody tr").count()
    height = page.evaluate("document.documentElement.scrollHeight")
    page.close()
    med = statistics.median
    return {
        "segments": len(run.guidance),
        "bytes": path.stat().st_size,
        "figures": report.images,
        "table_rows": rows,
        "page_height_px": height,
        "read_s": med(read_s),
        "render_s": med(render_s),
        "render_spread_s": [min(render_s), max(render_s)],
        "render_over_read": med(render_s) / med(read_s),
        "load_s": med(load_s),
        "blank_s": med(blank_s),
        "load_over_blank": med(load_s) / med(blank_s),
        "screenshot_s": screenshot_s,
    }


def run(sizes: list[int], repeat: int, chromium: str) -> dict[str, Any]:
    records = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        scratch = Path(tmp)
        context = p.chromium.launch_persistent_context(
            scratch / "profile",
            executable_path=chromium,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        for n in sizes:
            records.append(measure(n, repeat, context, scratch))
            print(json.dumps(records[-1]), file=sys.stderr)
        context.close()
    return {
        "benchmark": "report",
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeat": repeat,
        "records": records,
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; {m['date']}, "
        f"commit {m['commit']}; medians of {result['repeat']}",
        "",
        "| segments | page KiB | figures | table rows | read s | render s | render / read "
        "| Chromium load s | blank s | load / blank | screenshot s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        lines.append(
            f"| {r['segments']:,} | {r['bytes'] / 1024:,.0f} | {r['figures']} | "
            f"{r['table_rows']:,} | {r['read_s']:.3f} | {r['render_s']:.2f} | "
            f"{r['render_over_read']:.0f}× | {r['load_s']:.3f} | {r['blank_s']:.3f} | "
            f"{r['load_over_blank']:.1f}× | {r['screenshot_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", default="36,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    result = run([int(s) for s in args.segments.split(",")], args.repeat, args.chromium)
    append_record(HERE / "results" / "report.json", result)
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
