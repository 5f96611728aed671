"""Shared fixtures: a small valid market that tests copy and break one rule at a time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from pricing.config import RunConfig, load_config
from pricing.market import equilibrium
from pricing.report.browser import FLAGS, chromium

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext


def pytest_configure(config: pytest.Config) -> None:
    """The Ctrl-C tests need SIGINT's default handling, here and in the CLI subprocesses
    they interrupt: a shell's background job starts with SIGINT ignored, and an ignored
    signal is inherited by every child (``make test &`` failed both tests that way)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


AS_OF = dt.date(2024, 2, 1)
WEEKS = [dt.date(2024, 1, 1), dt.date(2024, 1, 8), dt.date(2024, 1, 15)]
SEGMENTS = [("web", "entry"), ("web", "expert"), ("design", "entry"), ("design", "expert")]


def valid_tables() -> dict[str, pd.DataFrame]:
    """Two categories x two tiers x three weeks; every table of the contract, all valid."""
    jobs, supply = [], []
    n = 0
    for s, (category, tier) in enumerate(SEGMENTS):
        base = 20.0 + 10 * s
        for w, week in enumerate(WEEKS):
            for j in range(2):
                n += 1
                hired = (j + w) % 3 != 2
                jobs.append(
                    {
                        "job_id": f"J{n:03d}",
                        "posted_at": week + dt.timedelta(days=j * 2),
                        "category": category,
                        "tier": tier,
                        "region": "na" if j == 0 else "eu",
                        "hours": 5.0 + j * 5 + w,
                        "budget_rate": base + 1,
                        "hired": hired,
                        "hired_rate": base + w if hired else None,
                    }
                )
            for f in range(2):
                supply.append(
                    {
                        "freelancer_id": f"F{s}{f}",
                        "week": week,
                        "category": category,
                        "tier": tier,
                        "region": "eu",
                        "available_hours": 10.0 * (f + 1),
                        "ask_rate": base + f,
                    }
                )
    shifters = pd.DataFrame(
        {"week": WEEKS, "fx_index": [1.0, 1.1, 0.9], "client_marketing_index": [100.0, 101.0, 99.0]}
    )
    adjacency = pd.DataFrame(
        {
            "from_category": ["web", "design"],
            "to_category": ["design", "web"],
            "friction": [2.0, 3.5],
        }
    )
    interventions = pd.DataFrame(
        {
            "intervention_id": ["I1", "I2", "I3"],
            "category": ["web", "web", "design"],
            "kind": ["recruit", "reskill", "fee_discount"],
            "cost_per_unit": [500.0, 800.0, 1000.0],
            "max_units": [10, 5, 4],
            "effect_per_unit": [0.02, 1.0, 0.005],
            "to_category": [None, "design", None],
        }
    )
    return {
        "jobs": pd.DataFrame(jobs),
        "supply": pd.DataFrame(supply),
        "shifters": shifters,
        "adjacency": adjacency,
        "interventions": interventions,
    }


def write_tables(directory: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    """Write each frame as ``<name>.<fmt>``; CSV dates as YYYY-MM-DD, booleans as true/false."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "parquet":
            frame.to_parquet(directory / f"{name}.parquet", index=False)
        else:
            out = frame.copy()
            for column in out.columns:
                if out[column].dtype == bool:
                    out[column] = out[column].map({True: "true", False: "false"})
            out.to_csv(directory / f"{name}.csv", index=False)
    return directory


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return valid_tables()


@pytest.fixture
def make_dir(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000))

    def make(tables: dict[str, pd.DataFrame], fmt: str = "csv", config: str | None = None) -> Path:
        directory = write_tables(tmp_path / f"data{next(counter)}", tables, fmt)
        if config is not None:
            (directory / "pricing.toml").write_text(config)
        return directory

    return make


# ----------------------------------------------------------------- markets and runs
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def segment(
    category: str,
    tier: str = "t0",
    rate: float = 40.0,
    hours: float = 1_000.0,
    eps: float = -1.0,
    eta: float = 1.0,
    client_fee: float = 0.05,
    freelancer_fee: float = 0.1,
    observed: float | None = None,
) -> dict[str, Any]:
    """A segment whose curves cross at the listed ``rate`` and ``hours`` when alone."""
    return {
        "category": category,
        "tier": tier,
        "demand_elasticity": eps,
        "log_demand_level": np.log(hours) - eps * np.log(rate * (1 + client_fee)),
        "supply_elasticity": eta,
        "log_supply_level": np.log(hours) - eta * np.log(rate * (1 - freelancer_fee)),
        "observed_rate": rate if observed is None else observed,
        "client_fee": client_fee,
        "freelancer_fee": freelancer_fee,
    }


def quick_config() -> RunConfig:
    """The sample's settings without an intervention budget and with 40 guidance draws:
    what the run tests check does not depend on either."""
    config = load_config(SAMPLE / "pricing.toml")
    return config.model_copy(
        update={
            "interventions": config.interventions.model_copy(update={"budget": 0.0}),
            "guidance": config.guidance.model_copy(update={"draws": 40}),
        }
    )


@pytest.fixture
def fail_component_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nightly run's solves leave component 0 failed (a stand-in for a solver failure)."""
    from pricing.runs import pipeline

    real = equilibrium.solve

    def solve(market, **kwargs):  # type: ignore[no-untyped-def]
        result = real(market, **kwargs)
        fail = market.component == 0
        code = np.where(fail, equilibrium.STATUSES.index("failed"), result.status_code)
        return dataclasses.replace(
            result, status_code=code.astype(np.int8), rate=np.where(fail, np.nan, result.rate)
        )

    monkeypatch.setattr(pipeline, "solve", solve)


def stub_manifest(as_of: dt.date) -> Any:
    """A valid run manifest with placeholder contents, for tests of the store's mechanics
    (what it stores does not matter there)."""
    from pricing.store.manifest import Components, Counts, GuidanceCounts, Manifest, Statuses

    return Manifest(
        run_id=as_of.isoformat(),
        as_of=as_of,
        created="2026-01-01T00:00:00+00:00",
        status="ok",
        degraded=(),
        data_dir="data",
        config_source=None,
        config={},
        inputs={},
        rows_after_as_of={},
        weeks={"first": as_of, "count": 1},
        counts=Counts(segments=2, estimated=2, flagged=0, failed=0),
        statuses=Statuses(
            equilibrium={"solved": 2},
            components=Components(total=2, failed=0, max_residual=0.0),
            guidance=GuidanceCounts(market_state={}, failed_draws=0, capped=0),
            interventions="not_configured",
        ),
        plan=None,
        previous_run=None,
        tables={},
        versions={},
        machine={},
        timings_s={},
        peak_memory_mb=0.0,
    )


def stub_scenario_manifest(name: str, baseline: dt.date) -> Any:
    """A valid scenario manifest with placeholder contents (see :func:`stub_manifest`)."""
    from pricing.store.manifest import ScenarioManifest

    return ScenarioManifest(
        scenario=name,
        description="",
        baseline=baseline.isoformat(),
        baseline_build="",
        created="2026-01-01T00:00:00+00:00",
        status="ok",
        inverse=None,
        plan=None,
        timings_s={},
        versions={},
    )


#: the browser tests' window, CSS px: nothing may overflow it horizontally
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh, empty profile (:mod:`pricing.report.browser`)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    if executable is None:
        pytest.fail(
            "Chromium is not installed: `make test` installs Debian's chromium package "
            "(apt-get install chromium), or set PRICING_CHROMIUM to a Chromium binary"
        )
    profile = tmp_path_factory.mktemp("profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        yield context
        context.close()
