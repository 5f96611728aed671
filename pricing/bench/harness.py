r"""The benchmark harness behind ``pricing bench``: time a case against its baseline in the
same run, keep a history, render it, and flag regressions.

A :class:`Case` is a seeded, already set-up piece of work (``run``) and the baseline it
is judged against (``baseline_run``), both zero-argument callables. :func:`measure`

1. calls ``run`` and ``baseline_run`` once as a warm-up (imports, caches, first-touch
   allocations), unless the case starts a fresh process or takes minutes;
2. times ``repeat`` calls of ``run`` and of ``baseline_run``, interleaved so that a burst
   of load on a shared machine hits both;
3. calls ``run`` once more under :mod:`tracemalloc` for its peak traced memory (numpy and
   pandas report their buffers to it; tracing slows allocation, so it is not timed), or
   takes ``peak_mb`` from the case when the work runs in a child process;
   a side timed on a part of its work (a naive loop over the first segments) is scaled
   to the whole by ``run_scale`` / ``baseline_scale``;
4. reports the median and the min–max of each, and

       ratio_to_baseline = median(run) / median(baseline_run),

   the number to watch on a noisy machine: both sides see the same load. A case whose
   work has a compile phase (cvxpy's canonicalization, building the CP-SAT model) reports
   it apart from the solve through ``split``.

A run of the suite is one history entry (machine, CPU count, versions, git commit, date
and the records), appended to a JSON list. :func:`compare` matches each record with the
same name and parameters in the latest earlier entry from a machine with the same CPU
and flags it when its ratio grew by more than ``margin`` (a relative margin: 0.25 flags a
ratio 25 % worse).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Ratios may grow this much (relative) before a comparison flags them.
DEFAULT_MARGIN = 0.25
RESULTS_BEGIN = "<!-- bench:latest -->"
RESULTS_END = "<!-- /bench:latest -->"
#: the README's performance table, made from RESULTS.md's latest block
README_BEGIN = "<!-- bench:readme -->"
README_END = "<!-- /bench:readme -->"


@dataclass(frozen=True)
class Case:
    """One benchmark: work set up and ready, and the baseline to judge it against."""

    name: str  # stage.variant, e.g. "equilibrium.uncoupled"
    params: dict[str, Any]
    run: Callable[[], Any]
    baseline: str  # what the baseline is, e.g. "closed-form kernel"
    baseline_run: Callable[[], Any]
    split: Callable[[Any], tuple[float, float]] | None = None  # result → (compile, solve)
    peak_mb: Callable[[Any], float] | None = None  # result → peak (child processes)
    repeat: int | None = None  # fewer repetitions for minutes-long work
    warmup: bool = True  # False for work that starts a fresh process or takes minutes
    details: Callable[[Any], dict[str, float]] | None = None  # result → where time went
    baseline_details: Callable[[Any], dict[str, float]] | None = None  # the same, baseline
    # a slow side timed on a part of the work and scaled to all of it (a naive loop)
    run_scale: float = 1.0
    baseline_scale: float = 1.0

    @property
    def stage(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Record:
    """What one case measured (seconds; memory in MiB)."""

    name: str
    stage: str
    params: dict[str, Any]
    repeats: int
    median_s: float
    spread_s: tuple[float, float]  # min, max
    peak_mb: float
    compile_s: float | None
    solve_s: float | None
    baseline: str
    baseline_median_s: float
    baseline_spread_s: tuple[float, float]
    ratio_to_baseline: float
    details: dict[str, float] = field(default_factory=dict)  # seconds by part of the work
    baseline_details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        data = dict(data)
        data["spread_s"] = tuple(data["spread_s"])
        data["baseline_spread_s"] = tuple(data["baseline_spread_s"])
        return cls(**data)


def _traced_peak_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure(case: Case, repeat: int) -> Record:
    """Time ``case`` against its baseline (module docstring)."""
    repeat = case.repeat or repeat
    if case.warmup:
        case.run()
        case.baseline_run()
    times: list[float] = []
    base: list[float] = []
    result: Any = None
    base_result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = case.run()
        times.append((time.perf_counter() - start) * case.run_scale)
        start = time.perf_counter()
        base_result = case.baseline_run()
        base.append((time.perf_counter() - start) * case.baseline_scale)
    compile_s, solve_s = case.split(result) if case.split else (None, None)
    peak = case.peak_mb(result) if case.peak_mb else _traced_peak_mb(case.run)
    median, base_median = statistics.median(times), statistics.median(base)
    return Record(
        name=case.name,
        stage=case.stage,
        params=case.params,
        repeats=repeat,
        median_s=median,
        spread_s=(min(times), max(times)),
        peak_mb=round(peak, 1),
        compile_s=compile_s,
        solve_s=solve_s,
        baseline=case.baseline,
        baseline_median_s=base_median,
        baseline_spread_s=(min(base), max(base)),
        ratio_to_baseline=median / base_median if base_median > 0 else float("inf"),
        details=case.details(result) if case.details else {},
        baseline_details=case.baseline_details(base_result) if case.baseline_details else {},
    )


# ------------------------------------------------------------------- history
def machine(checkout: Path | None) -> dict[str, Any]:
    """The machine, versions and commit a history entry was measured on; the commit
    (and whether ``pricing/`` has uncommitted changes) of the source ``checkout``, none
    for an installed package (its version says what ran)."""
    from importlib.metadata import version

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        if checkout is None:
            return ""
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=checkout)
        except OSError:
            return ""
        return done.stdout.strip()

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {
            p: version(p) for p in ("pricing", "numpy", "pandas", "scipy", "cvxpy", "duckdb")
        },
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "pricing")),
    }


@dataclass(frozen=True)
class Entry:
    """One run of the suite."""

    machine: dict[str, Any]
    quick: bool
    records: list[Record] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "quick": self.quick,
            "records": [r.to_dict() for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(data["machine"], data["quick"], [Record.from_dict(r) for r in data["records"]])


def read_history(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    return [Entry.from_dict(e) for e in json.loads(path.read_text())]


def append_history(path: Path, entry: Entry) -> None:
    """Append ``entry`` to the JSON list at ``path``, atomically."""
    from pricing.inputs.io import atomic_file

    history = json.loads(path.read_text()) if path.exists() else []
    history.append(entry.to_dict())
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(history, indent=1) + "\n")


@dataclass(frozen=True)
class Regression:
    name: str
    params: dict[str, Any]
    previous_ratio: float
    ratio: float
    previous_commit: str

    @property
    def worse_by(self) -> float:
        return self.ratio / self.previous_ratio - 1

    def __str__(self) -> str:
        return (
            f"{self.name} {_params(self.params)}: ratio {self.ratio:.3g} vs "
            f"{self.previous_ratio:.3g} at {self.previous_commit} (+{self.worse_by:.0%})"
        )


def compare(
    entry: Entry, history: Sequence[Entry], margin: float = DEFAULT_MARGIN
) -> list[Regression]:
    """Records of ``entry`` whose ratio grew by more than ``margin`` against the latest
    earlier entry from the same kind of machine that measured the same case."""
    out = []
    for record in entry.records:
        for earlier in reversed(history):
            if earlier.machine.get("cpu") != entry.machine.get("cpu"):
                continue
            match = [
                r for r in earlier.records if r.name == record.name and r.params == record.params
            ]
            if not match:
                continue
            previous = match[0].ratio_to_baseline
            if record.ratio_to_baseline > previous * (1 + margin):
                out.append(
                    Regression(
                        record.name,
                        record.params,
                        previous,
                        record.ratio_to_baseline,
                        str(earlier.machine.get("commit", "")),
                    )
                )
            break
    return out


# ------------------------------------------------------------------ rendering
def _params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}"
        for k, v in params.items()
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def markdown(entry: Entry) -> str:
    """The entry as a Markdown table, grouped by stage in suite order."""
    m = entry.machine
    built = (
        f"commit {m['commit']}{' (uncommitted changes)' if m.get('dirty') else ''}"
        if m["commit"]
        else f"pricing {m['versions']['pricing']} (installed, no checkout)"
    )
    head = (
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}, {built}, "
        f"{m['date']}{'; --quick' if entry.quick else ''}"
    )
    lines = [
        head,
        "",
        "| benchmark | parameters | median s | min–max s | compile / solve s | peak MiB "
        "| baseline | baseline s | ratio |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in entry.records:
        split = (
            f"{_seconds(r.compile_s)} / {_seconds(r.solve_s)}" if r.compile_s is not None else "–"
        )
        lines.append(
            f"| {r.name} | {_params(r.params)} | {_seconds(r.median_s)} | "
            f"{_seconds(r.spread_s[0])}–{_seconds(r.spread_s[1])} | {split} | "
            f"{r.peak_mb:,.0f} | {r.baseline} | {_seconds(r.baseline_median_s)} | "
            f"{r.ratio_to_baseline:.3g}× |"
        )
    parts = [r for r in entry.records if r.details]
    if parts:
        lines += ["", "Where the time goes (seconds, last timed repetition):", ""]
        for r in parts:
            steps = ", ".join(f"{k} {_seconds(v)}" for k, v in r.details.items())
            lines.append(f"- {r.name} ({_params(r.params)}): {steps}")
            if r.baseline_details:
                steps = ", ".join(f"{k} {_seconds(v)}" for k, v in r.baseline_details.items())
                lines.append(f"  - baseline: {steps}")
    return "\n".join(lines)


def update_results(path: Path, entry: Entry) -> None:
    """Replace the table between the ``bench:latest`` markers of ``path`` (RESULTS.md)
    with ``entry``'s, atomically; the markers are added at the top when missing."""
    text = path.read_text() if path.exists() else ""
    body = markdown(entry)
    if _between(text, RESULTS_BEGIN, RESULTS_END) is None:
        text = f"{RESULTS_BEGIN}\n{body}\n{RESULTS_END}\n\n{text}"
    _write(path, _replaced(text, RESULTS_BEGIN, RESULTS_END, body))


def readme_table(results: str) -> str:
    """The README's table of performance numbers, made from the latest block of
    RESULTS.md (the text ``results``): the machine line, then one row per benchmark with
    its median, peak memory, baseline and ratio; the spread, compile/solve split and
    where the time goes stay in RESULTS.md."""
    block = _between(results, RESULTS_BEGIN, RESULTS_END)
    if block is None:
        raise ValueError(f"RESULTS.md has no {RESULTS_BEGIN} … {RESULTS_END} block")
    lines = block.strip().splitlines()
    rows = [line for line in lines if line.startswith("| ")][1:]  # after the header
    out = [
        lines[0].replace("Machine:", "Measured by `pricing bench` on", 1) + ".",
        "",
        "| benchmark | parameters | median s | peak MiB | baseline (its median s) | ratio |",
        "|---|---|---:|---:|---|---:|",
    ]
    for row in rows:
        name, params, median, _, _, peak, baseline, base_s, ratio = _cells(row)
        out.append(f"| {name} | {params} | {median} | {peak} | {baseline} ({base_s}) | {ratio} |")
    return "\n".join(out)


def update_readme(readme: Path, results: Path) -> bool:
    """Replace the table between the ``bench:readme`` markers of ``readme`` with
    :func:`readme_table` of ``results``, atomically; False (nothing written) when
    ``readme`` has no such markers."""
    text = readme.read_text() if readme.exists() else ""
    if _between(text, README_BEGIN, README_END) is None:
        return False
    _write(readme, _replaced(text, README_BEGIN, README_END, readme_table(results.read_text())))
    return True


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split(" | ")]


def _between(text: str, begin: str, end: str) -> str | None:
    """The text between the markers ``begin`` and ``end``, None without both."""
    if begin not in text or end not in text:
        return None
    return text[text.index(begin) + len(begin) : text.index(end)]


def _replaced(text: str, begin: str, end: str, body: str) -> str:
    start, stop = text.index(begin), text.index(end) + len(end)
    return f"{text[:start]}{begin}\n{body}\n{end}{text[stop:]}"


def _write(path: Path, text: str) -> None:
    from pricing.inputs.io import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(text)
