"""A stored run and what it can do: re-solve its market, answer what-ifs, render its report.

Counterfactuals are methods of the fitted result (as pyblp's): a notebook and the CLI call
the same :meth:`Run.whatif`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from pricing.cluster import LOCAL, Executor
from pricing.config import Scenario, load_scenario
from pricing.decisions.flows import Flows, flows_table
from pricing.decisions.scenario import WhatIf, whatif
from pricing.errors import OutputError, os_reason
from pricing.inputs.io import atomic_directory, write_frame
from pricing.market.equilibrium import EquilibriumResult, equilibrium_table, solve
from pricing.report.report import Report, run_report, scenario_report
from pricing.runs.provenance import versions
from pricing.store.manifest import PlanSummary, ScenarioManifest
from pricing.store.store import DEFAULT_STORE, RunStore
from pricing.store.stored import StoredRun


@dataclass(frozen=True, eq=False)
class Run(StoredRun):
    """A run read back from the store (:class:`StoredRun`), with its baseline solve, its
    what-ifs and its report. ``baseline`` re-solves the stored market (the same
    deterministic solve the run made), as the warm start and reference of what-ifs."""

    #: where the baseline's and what-ifs' coupled components are cleared
    executor: Executor = field(default=LOCAL, repr=False)

    @cached_property
    def baseline(self) -> EquilibriumResult:
        return solve(self.market, executor=self.executor)

    @cached_property
    def flows(self) -> Flows:
        """Where each pool's hours go at the run's equilibrium: the stored ``flows``
        table, or for a run stored before it was kept, the baseline's flows."""
        frame = self.table("flows")
        if frame is None:
            return Flows.of(self.baseline)
        return Flows(frame, self.config.segment_keys)

    def whatif(
        self,
        scenario: Scenario | str | Path,
        save: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> WhatIf:
        """The scenario (a :class:`Scenario` or a TOML path) solved against this run,
        without re-estimating; ``save`` commits it to the store, tagged with its name."""
        chosen = load_scenario(scenario) if isinstance(scenario, (str, Path)) else scenario
        result = whatif(
            self.market,
            self.baseline,
            chosen,
            self.config,
            self.catalogue,
            progress=progress,
            executor=self.executor,
        )
        if save:
            save_whatif(self, result)
        return result

    def report(self, scenario: str | None = None, rows: int = 200) -> Report:
        """The HTML report of this run, or of the stored scenario ``scenario`` solved
        against it (``Report.write(path)`` saves it; notebooks show it inline)."""
        if scenario is None:
            return run_report(self, rows=rows)
        return scenario_report(self, scenario, rows=rows)


def load_run(
    run_id: str = "latest",
    store: RunStore | str | Path = DEFAULT_STORE,
    executor: Executor = LOCAL,
) -> Run:
    """A stored run: ``latest`` or its as-of date (YYYY-MM-DD); its what-ifs solve
    through ``executor``. The store is held for reading before the run is looked up, so
    a re-run of its date meanwhile cannot remove it (:meth:`RunStore.hold`)."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    hold = store.hold()
    return Run.open(store.resolve(run_id), store, hold, executor=executor)


def whatif_tables(result: WhatIf) -> dict[str, pd.DataFrame]:
    """A what-if's tables, as the store keeps them and ``whatif --out`` writes them:
    ``segments``, ``totals``, ``equilibrium``, ``flows`` and, with a plan, its tables."""
    tables = {
        "segments": result.to_frame(),
        "totals": result.totals,
        "equilibrium": equilibrium_table(result.result),
        "flows": flows_table(result.result),
    }
    if result.plan is not None:
        tables.update(result.plan.tables())
    return tables


def save_whatif(run: Run, result: WhatIf, on_commit: Callable[[Path], None] | None = None) -> Path:
    """Commit a what-if result to the run's store, tagged with its scenario's name and
    where it was solved (the run's executor); returns the folder it is stored in
    (``on_commit``: :meth:`RunStore.write_run`)."""
    tables = whatif_tables(result)
    manifest = ScenarioManifest(
        scenario=result.scenario.name,
        description=result.scenario.description,
        baseline=run.run_id,
        baseline_build=run.manifest.build,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        status=result.status,
        inverse=None if result.inverse is None else result.inverse.to_dict(),
        plan=PlanSummary.of(result.plan),
        timings_s=result.timings,
        versions=versions(),
        compute=run.executor.describe(),
    )
    return run.store.write_scenario(
        run.as_of,
        result.scenario.name,
        tables,
        manifest,
        files={"scenario.toml": result.scenario.to_toml()},
        on_commit=on_commit,
    )


#: the file that lists an export's scenarios, and marks a folder an export wrote
EXPORT_MARK = "export.json"


def export_whatifs(results: list[WhatIf], run: StoredRun, out: Path, fmt: str) -> dict[str, Any]:
    """Write every what-if's tables (:func:`whatif_tables`) as ``out``/NAME/TABLE.``fmt``
    (csv, parquet or json; :func:`pricing.inputs.io.write_frame`) with its resolved
    scenario.toml, and ``out``/export.json naming the baseline, the format and each
    scenario's status and tables with their rows; returns that listing with the path.
    One atomic step: the folder appears complete or not at all, replacing an existing
    ``out`` (the caller decides whether one may be replaced). A failure to write is an
    :class:`OutputError` (exit 6) and leaves nothing behind."""
    listing: dict[str, Any] = {"baseline": run.run_id, "format": fmt, "scenarios": {}}
    try:
        with atomic_directory(out, overwrite=True) as tmp:
            for result in results:
                name = result.scenario.name
                folder = tmp / name
                folder.mkdir()
                tables = whatif_tables(result)
                for table, frame in tables.items():
                    write_frame(frame, folder / f"{table}.{fmt}", fmt)
                (folder / "scenario.toml").write_text(result.scenario.to_toml(), encoding="utf-8")
                listing["scenarios"][name] = {
                    "status": result.status,
                    "tables": {t: len(f) for t, f in tables.items()},
                }
            text = json.dumps(listing, indent=2) + "\n"
            (tmp / EXPORT_MARK).write_text(text, encoding="utf-8")
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {out}: {os_reason(exc)}; nothing was written") from None
    return {"path": str(out), **listing}
