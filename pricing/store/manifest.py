"""The manifests of stored runs, scenarios and backtests: typed, written and read here
only.

A run folder's ``manifest.json`` says what the run read (data, configuration, input
fingerprints), what it found (counts, statuses, the plan's headline) and how it ran
(versions, machine, where the parts ran, step timings including the store's own, peak
memory). A scenario folder's says which scenario was solved against which build of which
run, and how it came out. A backtest folder's says which origins were scored on which
data, and whether the engine beat the naive baselines. All are pydantic models at this
file boundary: frozen, with status enums, and :func:`read_manifest`,
:func:`read_scenario_manifest` and :func:`read_backtest_manifest` turn a file that does
not parse into a :class:`~pricing.errors.StoreError` naming it.

Manifests written before the statuses were typed recorded a failed plan as
``"failed: <reason>"``; they are read as :attr:`PlanStatus.FAILED` with that reason.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from pricing.errors import StoreError
from pricing.statuses import PlanStatus, RunStatus

if TYPE_CHECKING:
    from pricing.decisions.interventions import InterventionPlan

MANIFEST = "manifest.json"


class _Record(BaseModel):
    # extra keys are ignored so that a manifest of a later version still reads
    model_config = ConfigDict(frozen=True, extra="ignore")


_R = TypeVar("_R", bound=_Record)


class InputFile(_Record):
    file: str
    bytes: int
    sha256: str


class InputTable(_Record):
    rows: int
    files: tuple[InputFile, ...]


class Weeks(_Record):
    first: dt.date
    count: int


class Counts(_Record):
    """Segments estimated (both curves usable), flagged (a curve carries a flag) and
    failed (no usable curve, or not cleared)."""

    segments: int
    estimated: int
    flagged: int
    failed: int


class Components(_Record):
    total: int
    failed: int
    max_residual: float


class GuidanceCounts(_Record):
    market_state: dict[str, int]
    failed_draws: int
    capped: int


class Statuses(_Record):
    equilibrium: dict[str, int]  # segments per equilibrium status
    components: Components
    guidance: GuidanceCounts
    interventions: PlanStatus
    plan_error: str | None = None  # why planning raised (interventions = failed)

    @model_validator(mode="before")
    @classmethod
    def _legacy_failure(cls, data: Any) -> Any:
        text = data.get("interventions") if isinstance(data, dict) else None
        if isinstance(text, str) and text.startswith("failed: "):
            return {**data, "interventions": "failed", "plan_error": text.removeprefix("failed: ")}
        return data


class PlanSummary(_Record):
    """The plan's headline numbers (manifests and JSON output)."""

    objective: str
    budget: float
    spend: float
    units: int
    base_value: float
    predicted_gain: float
    verified_gain: float
    marginal_value_per_usd: float
    explanation: str
    # what `pricing plan` prints besides (older manifests: unknown)
    budget_step: float | None = None
    value_rounding: float | None = None
    cost_rounding: float | None = None
    rounds: int | None = None

    @classmethod
    def of(cls, plan: InterventionPlan | None) -> PlanSummary | None:
        """The headline of ``plan`` (None without a plan)."""
        return None if plan is None else cls(**plan.headline())


class Manifest(_Record):
    """The manifest of a stored run. ``build``, ``path`` and ``tables`` (rows per table
    written) are set by the store at the commit; ``timings_s`` holds every step's
    seconds, the store's included."""

    run_id: str
    as_of: dt.date
    created: str
    status: RunStatus
    degraded: tuple[str, ...]
    data_dir: str
    config_source: str | None
    config: dict[str, Any]
    inputs: dict[str, InputTable]
    rows_after_as_of: dict[str, int]
    weeks: Weeks
    counts: Counts
    statuses: Statuses
    plan: PlanSummary | None
    previous_run: str | None
    tables: dict[str, int]
    versions: dict[str, str]
    machine: dict[str, Any]
    compute: dict[str, Any] | None = None  # where the parts ran (older runs: unknown)
    timings_s: dict[str, float]
    peak_memory_mb: float
    build: str = ""
    path: str = ""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)


class ScenarioManifest(_Record):
    """The manifest of a scenario solved against a stored run (build ``baseline_build``)."""

    scenario: str
    description: str
    baseline: str
    baseline_build: str
    created: str
    status: RunStatus
    inverse: dict[str, Any] | None
    plan: PlanSummary | None
    timings_s: dict[str, float]
    versions: dict[str, str]
    compute: dict[str, Any] | None = None
    tables: dict[str, int] = {}  # rows per table, set by the store (older results: unknown)
    build: str = ""
    path: str = ""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)


class Provenance(_Record):
    """What a stored backtest read and with what, recorded as a run records it: the data
    folder, the settings, the input files' fingerprints, the rows left out after the
    as-of week, the panel's weeks, the versions and the machine."""

    data_dir: str
    config_source: str | None
    config: dict[str, Any]
    inputs: dict[str, InputTable]
    rows_after_as_of: dict[str, int]
    weeks: Weeks
    versions: dict[str, str]
    machine: dict[str, Any]
    compute: dict[str, Any] | None = None


class BacktestManifest(_Record):
    """The manifest of a stored backtest (:mod:`pricing.runs.backtest`): its as-of week,
    origins and horizon, the origins asked for (``weeks``), what it read
    (``provenance``), its headline (pooled scores, the scores against the truth when
    there was one) and verdict, and how long it took. ``build``, ``path`` and
    ``tables``: set by the store at the commit, as for a run."""

    as_of: dt.date
    created: str
    origins: tuple[dt.date, ...]
    horizon: int
    weeks: int
    beats_baselines: bool
    headline: dict[str, Any]
    truth_source: str | None
    provenance: Provenance
    timings_s: dict[str, float]
    peak_memory_mb: float
    tables: dict[str, int] = {}
    build: str = ""
    path: str = ""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)


def read_manifest(path: Path) -> Manifest:
    """The manifest of the run folder ``path``."""
    return _read(Manifest, path)


def read_scenario_manifest(path: Path) -> ScenarioManifest:
    """The manifest of the scenario folder ``path``."""
    return _read(ScenarioManifest, path)


def read_backtest_manifest(path: Path) -> BacktestManifest:
    """The manifest of the backtest folder ``path``."""
    return _read(BacktestManifest, path)


def _read(model: type[_R], path: Path) -> _R:
    """The manifest of ``path`` as ``model``; a :class:`StoreError` naming the file and
    what is wrong when it is missing, unreadable or invalid."""
    file = path / MANIFEST
    try:
        return model.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise StoreError(f"{file} is not a valid manifest: {exc}") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{file} cannot be read: {exc}") from None
