"""What the store's hardening tests share: a tiny simulated market, stub stores, the CLI
as a real subprocess, and ways to make a disk full or read-only.

A full disk is a real tmpfs of a few kilobytes when this process may mount (root, and
``mount -t tmpfs`` works); otherwise the CLI runs under :mod:`faults`, which makes every
Parquet write under a folder fail with ENOSPC. A read-only store is a read-only bind
mount when root may mount (chmod does not stop root), else the folder made read-only
with chmod (which stops everyone else).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from conftest import stub_manifest

from pricing.market.simulate import SimulationSpec, simulate_market
from pricing.store.store import RunStore

CLI = [sys.executable, "-c", "from pricing.cli import main; main()"]
FAULTS = [sys.executable, str(Path(__file__).with_name("faults.py"))]
#: the tiny market's as-of dates (Sundays): its last complete week and two before
TINY_DATES = ("2024-07-14", "2024-07-21", "2024-07-28")
LAST_TINY = TINY_DATES[-1]


def tiny_market(directory: Path, segments: int = 3) -> Path:
    """A simulated market of 30 weeks, by default of 3 segments (one category), with
    quick settings (20 band draws, no intervention budget): a whole `pricing run` on it
    takes a few seconds."""
    spec = SimulationSpec(
        segments=segments, weeks=30, seed=1, start=dt.date(2024, 1, 1), jobs_per_week=10
    )
    market = simulate_market(spec)
    market.write(directory)
    toml = (directory / "pricing.toml").read_text()
    toml = toml.replace("draws = 200", "draws = 20")
    toml = "\n".join(
        "budget = 0.0" if line.startswith("budget =") else line for line in toml.splitlines()
    )
    (directory / "pricing.toml").write_text(toml + "\n")
    return directory


def cli(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``pricing ARGS`` as a subprocess, its output captured."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ)
    )


def stub_tables(value: float) -> dict[str, pd.DataFrame]:
    """The tables of a stub run of two segments, with the columns readers query."""
    keys = {"category": ["a", "b"], "tier": ["x", "x"]}
    rates = [value, value + 1]
    guidance = {
        name: rates
        for name in (
            "freelancer_rate", "freelancer_rate_low", "freelancer_rate_high", "client_rate",
            "client_rate_low", "client_rate_high", "observed_rate",
        )
    }  # fmt: skip
    return {
        "curves": pd.DataFrame({**keys, "side": ["demand", "supply"], "elasticity": [-1.0, 1.0]}),
        "equilibrium": pd.DataFrame(
            {**keys, "rate": rates, "hours": [5.0, 6.0], "shortage_hours": 0.0, "status": "solved"}
        ),
        "guidance": pd.DataFrame(
            {
                **keys,
                **guidance,
                "gap_frac": [1.0, 2.0],
                "market_state": "balanced",
                "capped": False,
            }
        ),
        "market": pd.DataFrame({**keys, "observed_rate": rates}),
        "edges": pd.DataFrame({"pool": [0], "segment": [1], "friction": [1.0]}),
    }


def stub_store(
    root: Path, dates: tuple[str, ...] = ("2025-12-14", "2025-12-21", "2025-12-28")
) -> RunStore:
    """A store of stub runs (tables of two segments), one per date."""
    store = RunStore(root)
    for i, day in enumerate(dates):
        as_of = dt.date.fromisoformat(day)
        store.write_run(as_of, stub_tables(10.0 + i), stub_manifest(as_of))
    return store


def truncate(file: Path, keep: float = 0.5) -> None:
    """Cut ``file`` to ``keep`` of its bytes, as a crash of a copy would."""
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def store_files(root: Path) -> list[str]:
    """Every file and folder under ``root`` (the lock files aside)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.name not in (".lock", ".readers")
    )


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/pricing-mount-probe-{uuid.uuid4().hex[:8]}")
    probe.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
        )
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


MOUNT = can_mount()


@contextlib.contextmanager
def full_disk(folder: Path, size: str = "48k") -> Iterator[list[str]]:
    """``folder`` on a disk that fills after ``size``; yields the command prefix that
    runs the CLI there (the plain CLI on a real tmpfs, else the CLI under faults.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    if MOUNT:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True
        )
        try:
            yield CLI
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)
    else:
        yield [*FAULTS, "enospc", str(folder), "--"]


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` (and what is in it) read-only while the block runs."""
    if MOUNT:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for path, mode in modes.items():
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
