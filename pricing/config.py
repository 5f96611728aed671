"""Run configuration: a TOML file in, frozen typed settings out.

A data directory may carry a ``pricing.toml``::

    [data]
    segment_keys = ["category", "tier"]        # add "region" to split by client region

    [estimation]
    demand_instruments = ["fx_index"]          # supply shifters move the demand curve's price
    supply_instruments = ["client_marketing_index"]
    controls = []

Unknown sections or keys are errors (with the closest valid name suggested), so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pricing.errors import ConfigError

#: Columns that may form a segment key, in the order they are shown.
SEGMENT_KEY_COLUMNS = ("category", "tier", "region")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Section):
    """How input rows are grouped into market segments."""

    segment_keys: tuple[str, ...] = ("category", "tier")

    @field_validator("segment_keys")
    @classmethod
    def _known_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [k for k in keys if k not in SEGMENT_KEY_COLUMNS]
        if unknown:
            raise ValueError(
                f"unknown segment key(s) {unknown}; allowed: {list(SEGMENT_KEY_COLUMNS)}"
            )
        if "category" not in keys:
            raise ValueError(
                "segment_keys must include 'category' (adjacency and levers are per category)"
            )
        if len(set(keys)) != len(keys):
            raise ValueError(f"segment_keys repeats a key: {list(keys)}")
        # a canonical order keeps segment labels and table layouts stable
        return tuple(k for k in SEGMENT_KEY_COLUMNS if k in keys)


class EstimationConfig(_Section):
    """How the segment curves are estimated (see :mod:`pricing.curves`).

    ``demand_instruments`` are supply shifters (they move the rate along the demand
    curve), ``supply_instruments`` demand shifters; each curve also takes its own shifters
    (the other curve's instruments) as controls. ``controls`` enter both curves.
    """

    demand_instruments: tuple[str, ...] = ()
    supply_instruments: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    seasonal_harmonics: int = Field(default=0, ge=0, le=6)  # sin/cos pairs of week of year
    # weekly shocks and shifters are persistent: EWC with Student-t intervals by default
    cov: Literal["HC1", "unadjusted", "HAC", "EWC"] = "EWC"
    bandwidth: int | None = Field(default=None, ge=1)  # HAC lags / EWC cosine terms; None: rule
    interval_level: float = Field(default=0.90, gt=0, lt=1)
    min_weeks: int = Field(default=26, ge=3)  # fewer usable weeks than this: thin_data
    reference_weeks: int = Field(default=4, ge=1)  # trailing window of the reference point
    shrinkage: bool = True

    @property
    def shifter_columns(self) -> tuple[str, ...]:
        """Every shifter column the configuration names, each once."""
        names = self.demand_instruments + self.supply_instruments + self.controls
        return tuple(dict.fromkeys(names))


class RateBound(_Section):
    """A rate floor and/or cap (listed USD per hour) on the segments it selects.

    A selector left out matches every value, so ``{category = "legal", floor = 40}``
    bounds every tier of ``legal``. When several entries select a segment, the highest
    floor and the lowest cap apply.
    """

    category: str | None = None
    tier: str | None = None
    region: str | None = None
    floor: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    cap: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _floor_below_cap(self) -> RateBound:
        if self.floor is None and self.cap is None:
            raise ValueError("a bound needs a floor, a cap or both")
        if self.floor is not None and self.cap is not None and self.floor >= self.cap:
            raise ValueError(f"floor {self.floor} must be below cap {self.cap}")
        return self


Fee = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class MarketConfig(_Section):
    """Fees and rate bounds of the market (see :mod:`pricing.market`).

    The client pays ``rate × (1 + client_fee)``, the freelancer receives ``rate ×
    (1 − freelancer_fee)``. The fees given here are taken to be the ones in force over
    the estimation window, so the fitted curves are read through them; changing them in a
    scenario moves the equilibrium.
    """

    client_fee: Fee = 0.0
    freelancer_fee: Fee = 0.0
    client_fee_by_category: dict[str, Fee] = {}
    freelancer_fee_by_category: dict[str, Fee] = {}
    bounds: tuple[RateBound, ...] = ()


class GuidanceConfig(_Section):
    """How rate guidance is derived from the equilibrium (see :mod:`pricing.guidance`)."""

    band_level: float = Field(default=0.90, gt=0, lt=1)  # probability of the rate bands
    draws: int = Field(default=200, ge=20)  # curve draws behind the bands
    seed: int = 0  # of the curve draws: the same inputs give the same bands
    balanced_pct: float = Field(default=5.0, gt=0, allow_inf_nan=False)  # |gap| ≤ this
    thin_data_flags: tuple[str, ...] = ("thin_data",)  # curve flags that mean thin_data
    max_change_pct: float = Field(default=10.0, gt=0, allow_inf_nan=False)  # vs previous run


Share = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # may exceed 1
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class InterventionsConfig(_Section):
    """The intervention plan's budget, objective and constraints (see
    :mod:`pricing.interventions`). A budget of 0 plans nothing."""

    budget: Money = 0.0  # USD
    objective: Literal["hours", "gmv", "surplus"] = "hours"
    spend_caps: dict[str, Money] = {}  # category → most USD spent on its levers
    min_fill: dict[str, Share] = {}  # category → least fill (equilibrium hours / demand today)
    budget_step: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # None: 5 %
    enumerate_limit: int = Field(default=64, ge=1)  # joint unit combinations per exact group
    max_rounds: int = Field(default=6, ge=1)  # re-anchoring rounds of the separable model
    time_limit_seconds: float = Field(default=20.0, gt=0, allow_inf_nan=False)  # per CP-SAT


class RunConfig(_Section):
    """All settings of a run; built-in defaults when no file is given."""

    data: DataConfig = DataConfig()
    estimation: EstimationConfig = EstimationConfig()
    market: MarketConfig = MarketConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    interventions: InterventionsConfig = InterventionsConfig()

    @property
    def segment_keys(self) -> tuple[str, ...]:
        return self.data.segment_keys

    def to_toml(self) -> str:
        """The configuration as TOML text that :func:`load_config` reads back unchanged."""
        lines: list[str] = []
        for section_name, section in self.model_dump().items():
            lines.append(f"[{section_name}]")
            for key, value in section.items():
                if value is not None:  # TOML has no null: an absent key means "default"
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def load_config(path: str | Path | None) -> RunConfig:
    """Read a TOML configuration file; ``None`` gives the built-in defaults.

    Raises :class:`ConfigError` listing every problem in the file.
    """
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a configuration given as nested dictionaries."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, raw) for err in exc.errors()]
        raise ConfigError(
            f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        ) from None


def _describe(err: Any, raw: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        *parents, name = err["loc"]
        model: type[BaseModel] = RunConfig
        for parent in parents:
            if isinstance(parent, str):  # an int is a position in a list of tables
                model = _model_of(model.model_fields[parent].annotation)
        hint = suggest(str(name), list(model.model_fields))
        return f"unknown setting '{loc}'" + (f"; did you mean '{hint}'?" if hint else "")
    return f"{loc}: {err['msg']}"


def _model_of(annotation: Any) -> type[BaseModel]:
    """The settings model inside a field's annotation (``X``, ``tuple[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    raise TypeError(f"no settings model in {annotation!r}")


def suggest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to a misspelled ``name``, if any is close enough."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def resolve_config(data_dir: str | Path, path: str | Path | None) -> tuple[RunConfig, Path | None]:
    """The configuration a command uses: ``path`` if given, else ``pricing.toml`` in the
    data directory if present, else the built-in defaults. Returns it with its source."""
    if path is None:
        default = Path(data_dir) / "pricing.toml"
        path = default if default.is_file() else None
    return load_config(path), (Path(path) if path is not None else None)
