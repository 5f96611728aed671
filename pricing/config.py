"""Run configuration: a TOML file in, frozen typed settings out.

A data directory may carry a ``pricing.toml``::

    [data]
    segment_keys = ["category", "tier"]        # add "region" to split by client region

    [estimation]
    demand_instruments = ["fx_index"]          # supply shifters move the demand curve's price
    supply_instruments = ["client_marketing_index"]
    controls = []

A what-if :class:`Scenario` is a TOML file too (:func:`load_scenario`; the format is in
the class docstring, examples in data/scenarios/).

Unknown sections or keys are errors (with the closest valid name suggested), so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pricing.errors import ConfigError, suggest

#: Columns that may form a segment key, in the order they are shown.
SEGMENT_KEY_COLUMNS = ("category", "tier", "region")

# Bounds on numbers given in settings, scenarios and data (README "Bounds on numbers").
# Each keeps a value where the arithmetic stays exact enough and the result means
# something; past it a value is a mistake, rejected with the bound in the message.
#: highest rate (USD per hour) of a floor, cap, target or data row: no marketplace
#: publishes more, and rates times hours stay far inside a double
MAX_RATE = 1e5
#: most money (USD) of a budget, cap or catalogue cost: in cents it stays an exact
#: integer for CP-SAT (< 2^53) with room for sums
MAX_MONEY = 1e12
#: a what-if multiplies hours demanded or offered by at most this much, or divides them
#: by it: beyond, the market is no longer the one the curves were fitted on
MAX_MULTIPLIER = 1e3
#: largest |elasticity| a scenario may set, and the smallest (drawn elasticities of the
#: guidance bands are clipped to it, so that their signs stay valid): published
#: labour-market elasticities lie well inside
MAX_ABS_ELASTICITY = 100.0
MIN_ABS_ELASTICITY = 1e-3
#: most band draws: the Monte Carlo error of a 90 % quantile is below 1 % of the band's
#: width from about 2,000 draws on; more only cost memory (segments × draws)
MAX_DRAWS = 10_000

#: the names a shifter column may have (the data contract's and the configuration's)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
COLUMN_NAME_RULE = "a letter or _, then up to 62 letters, digits or _ (e.g. fx_index)"


def column_name_ok(name: str) -> bool:
    """Whether ``name`` may name a shifter column (:data:`COLUMN_NAME_RULE`)."""
    return _IDENTIFIER.fullmatch(name) is not None


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_Model = TypeVar("_Model", bound=BaseModel)


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
    """How the segment curves are estimated (see :mod:`pricing.estimation.curves`).

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

    @field_validator("demand_instruments", "supply_instruments", "controls")
    @classmethod
    def _column_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in names if not _IDENTIFIER.fullmatch(n)]
        if bad:
            raise ValueError(f"shifter column names {bad} are not {COLUMN_NAME_RULE}")
        return names

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
    floor: float | None = Field(default=None, gt=0, le=MAX_RATE, allow_inf_nan=False)
    cap: float | None = Field(default=None, gt=0, le=MAX_RATE, allow_inf_nan=False)

    @model_validator(mode="after")
    def _floor_below_cap(self) -> RateBound:
        if self.floor is None and self.cap is None:
            raise ValueError("a bound needs a floor, a cap or both")
        if self.floor is not None and self.cap is not None and self.floor >= self.cap:
            raise ValueError(f"floor {self.floor} must be below cap {self.cap}")
        return self


Fee = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class MarketConfig(_Section):
    """Fees and rate bounds of the market (see :mod:`pricing.market.market`).

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
    """How rate guidance is derived from the equilibrium (see :mod:`pricing.decisions.guidance`)."""

    band_level: float = Field(default=0.90, gt=0, lt=1)  # probability of the rate bands
    draws: int = Field(default=128, ge=20, le=MAX_DRAWS)  # curve draws behind the bands
    seed: int = Field(default=0, ge=0)  # of the curve draws: the same inputs give the same bands
    balanced_pct: float = Field(default=5.0, gt=0, allow_inf_nan=False)  # |gap| ≤ this
    thin_data_flags: tuple[str, ...] = ("thin_data",)  # curve flags that mean thin_data
    max_change_pct: float = Field(default=10.0, gt=0, allow_inf_nan=False)  # vs previous run
    # a clearing rate more than this many times today's observed rate, or less than its
    # inverse, is withheld as implausible (pricing.decisions.guidance, "Plausibility")
    plausible_ratio: float = Field(default=10.0, gt=1, le=1e6, allow_inf_nan=False)


Share = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # may exceed 1
Money = Annotated[float, Field(ge=0, le=MAX_MONEY, allow_inf_nan=False)]


class InterventionsConfig(_Section):
    """The intervention plan's budget, objective and constraints (see
    :mod:`pricing.decisions.interventions`). A budget of 0 plans nothing."""

    budget: Money = 0.0  # USD
    objective: Literal["hours", "gmv", "surplus"] = "hours"
    spend_caps: dict[str, Money] = {}  # category → most USD spent on its levers
    min_fill: dict[str, Share] = {}  # category → least fill (equilibrium hours / demand today)
    budget_step: float | None = Field(default=None, gt=0, le=MAX_MONEY, allow_inf_nan=False)
    # joint unit combinations per exact group (each is an equilibrium solve)
    enumerate_limit: int = Field(default=64, ge=1, le=100_000)
    max_rounds: int = Field(default=6, ge=1, le=100)  # re-anchoring rounds of the separable model
    time_limit_seconds: float = Field(default=20.0, gt=0, le=86_400, allow_inf_nan=False)


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


# --------------------------------------------------------------------------- scenarios
class _Selector(_Section):
    """Selects segments by key: a selector left out matches every value."""

    category: str | None = None
    tier: str | None = None
    region: str | None = None

    @field_validator("category", "tier", "region")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("a selector must be a non-empty string (leave it out to select all)")
        return value

    @property
    def selectors(self) -> dict[str, str]:
        """The keys this entry selects on, with their values."""
        return {k: v for k in SEGMENT_KEY_COLUMNS if (v := getattr(self, k)) is not None}


class LevelShift(_Selector):
    """``[[demand]]`` / ``[[supply]]``: hours demanded (offered) at every rate × multiplier."""

    multiplier: float = Field(ge=1 / MAX_MULTIPLIER, le=MAX_MULTIPLIER, allow_inf_nan=False)


class ElasticityOverride(_Selector):
    """``[[elasticity]]``: a new elasticity, the curve rotated around today's observed rate."""

    side: Literal["demand", "supply"]
    value: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _signed(self) -> ElasticityOverride:
        if self.side == "demand" and self.value >= 0:
            raise ValueError(f"a demand elasticity must be negative, not {self.value}")
        if self.side == "supply" and self.value <= 0:
            raise ValueError(f"a supply elasticity must be positive, not {self.value}")
        if not MIN_ABS_ELASTICITY <= abs(self.value) <= MAX_ABS_ELASTICITY:
            raise ValueError(
                f"|elasticity| must lie in [{MIN_ABS_ELASTICITY:g}, {MAX_ABS_ELASTICITY:g}], "
                f"not {abs(self.value):g}"
            )
        return self


class FeeChange(_Selector):
    """``[[fees]]``: the client and/or freelancer fee of the selected segments."""

    client_fee: Fee | None = None
    freelancer_fee: Fee | None = None

    @model_validator(mode="after")
    def _some_fee(self) -> FeeChange:
        if self.client_fee is None and self.freelancer_fee is None:
            raise ValueError("a fees entry needs client_fee, freelancer_fee or both")
        return self


class BoundChange(_Selector):
    """``[[bounds]]``: set a rate floor and/or cap (listed USD/h), or ``remove`` both."""

    floor: float | None = Field(default=None, gt=0, le=MAX_RATE, allow_inf_nan=False)
    cap: float | None = Field(default=None, gt=0, le=MAX_RATE, allow_inf_nan=False)
    remove: bool = False

    @model_validator(mode="after")
    def _one_action(self) -> BoundChange:
        given = self.floor is not None or self.cap is not None
        if self.remove and given:
            raise ValueError("a bounds entry either sets floor/cap or has remove = true, not both")
        if not (self.remove or given):
            raise ValueError("a bounds entry needs floor, cap or remove = true")
        if self.floor is not None and self.cap is not None and self.floor >= self.cap:
            raise ValueError(f"floor {self.floor} must be below cap {self.cap}")
        return self


class AdjacencyChange(_Section):
    """``[[adjacency]]``: open or re-price (``friction``, USD/h) or ``remove`` the edges
    from one category's pools to another category, read as a row of the adjacency table
    (contract v1.1, :mod:`pricing.inputs.adjacency`): in every tier (and region), or
    from the pools of ``from_tier`` (``from_region``) — into the same tier (region), or
    into ``to_tier`` (``to_region``) when named."""

    from_category: str = Field(min_length=1)
    to_category: str = Field(min_length=1)
    from_tier: str | None = Field(default=None, min_length=1)
    to_tier: str | None = Field(default=None, min_length=1)
    from_region: str | None = Field(default=None, min_length=1)
    to_region: str | None = Field(default=None, min_length=1)
    friction: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    remove: bool = False

    @model_validator(mode="after")
    def _one_action(self) -> AdjacencyChange:
        if (self.friction is None) == (not self.remove):
            raise ValueError("an adjacency entry takes friction or remove = true (exactly one)")
        # a segment end named apart from the pool end leads elsewhere, even in one category
        across = any(
            to is not None and to != source
            for source, to in ((self.from_tier, self.to_tier), (self.from_region, self.to_region))
        )
        if self.from_category == self.to_category and not across:
            raise ValueError(
                f"an edge joins two segments, not '{self.from_category}' to itself: name "
                "another to_category, or a to_tier (to_region) other than the pool's"
            )
        return self

    def row(self) -> dict[str, Any]:
        """The entry as a row of the adjacency table (friction NaN when it removes)."""
        fields = self.model_dump(exclude={"remove"})
        fields["friction"] = float("nan") if self.remove else self.friction
        return fields


class FeeTarget(_Selector):
    """``[solve_for.fee]``: the fee (``side``) at which one segment clears at ``rate``."""

    side: Literal["freelancer", "client"]
    rate: float = Field(gt=0, le=MAX_RATE, allow_inf_nan=False)  # target listed rate, USD/h
    range: tuple[float, float] = (0.0, 0.9)

    @field_validator("range")
    @classmethod
    def _increasing(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not (0 <= lo < hi < 1):
            raise ValueError(
                f"range must be [low, high] with 0 <= low < high < 1, not {list(value)}"
            )
        return value


class BudgetTarget(_Section):
    """``[solve_for.budget]``: the least budget whose plan fills ``category`` to ``fill``."""

    category: str = Field(min_length=1)
    fill: float = Field(gt=0, allow_inf_nan=False)  # equilibrium hours / demand today


class SolveFor(_Section):
    """An inverse scenario: exactly one of ``fee`` and ``budget``."""

    fee: FeeTarget | None = None
    budget: BudgetTarget | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SolveFor:
        if (self.fee is None) == (self.budget is None):
            raise ValueError(
                "solve_for takes exactly one of [solve_for.fee] and [solve_for.budget]"
            )
        return self


SCENARIO_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class Scenario(_Section):
    """A what-if: edits of the market (see :mod:`pricing.decisions.scenario` for their math).

    Every section is optional; within each list of tables a later entry overrides an
    earlier one on the segments (edges) they both select. A selector (``category``,
    ``tier``, ``region``) left out matches every value::

        name = "design-boom"        # default: the file name; [A-Za-z0-9_.-]+
        description = "Design demand up 20 %"

        [[demand]]                  # hours demanded at every rate × multiplier (> 0)
        category = "design"
        multiplier = 1.2
        [[supply]]                  # the same for hours offered
        tier = "entry"
        multiplier = 0.9
        [[elasticity]]              # rotate the curve around today's observed rate
        side = "demand"             # demand (value < 0) | supply (value > 0)
        category = "legal"
        value = -1.4
        [[fees]]                    # absolute fees in [0, 1): either or both
        category = "legal"
        client_fee = 0.03
        freelancer_fee = 0.08
        [[bounds]]                  # listed USD/h; or remove = true to clear both
        category = "legal"
        floor = 40.0
        cap = 150.0
        [[adjacency]]               # every tier (and region); or remove = true
        from_category = "design"
        to_category = "writing"
        friction = 2.5
        [[adjacency]]               # across tiers: experts taking intermediate work
        from_category = "legal"     # (from_region/to_region likewise)
        to_category = "legal"
        from_tier = "expert"
        to_tier = "intermediate"
        friction = 5.0

        [interventions]             # plan levers: the budget, and overrides of the run's
        budget = 50000              # other [interventions] keys

        [solve_for.fee]             # inverse: the fee that clears one segment at a rate
        side = "freelancer"         # freelancer | client
        category = "legal"
        tier = "expert"             # the selectors must pick exactly one segment
        rate = 60.0                 # target listed rate, USD/h
        range = [0.0, 0.5]          # fees searched (default [0, 0.9])
        # or [solve_for.budget]: the least budget whose plan reaches a fill
        # category = "legal"
        # fill = 0.95               # equilibrium hours / hours demanded at today's rates

    ``interventions`` overrides the run's keys given in the file; the budget is the
    scenario's own, 0 unless set (:meth:`interventions_settings`).
    """

    name: str = "scenario"
    description: str = ""
    demand: tuple[LevelShift, ...] = ()
    supply: tuple[LevelShift, ...] = ()
    elasticity: tuple[ElasticityOverride, ...] = ()
    fees: tuple[FeeChange, ...] = ()
    bounds: tuple[BoundChange, ...] = ()
    adjacency: tuple[AdjacencyChange, ...] = ()
    interventions: InterventionsConfig | None = None
    solve_for: SolveFor | None = None

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not SCENARIO_NAME.fullmatch(value) or value in (".", ".."):
            raise ValueError(
                f"'{value}' is not a valid scenario name: use letters, digits, '_', '.' and '-' "
                'only (it names the result\'s folder); set name = "..." in the file'
            )
        return value

    @model_validator(mode="after")
    def _one_budget(self) -> Scenario:
        given = self.interventions.model_fields_set if self.interventions else set()
        if self.solve_for and self.solve_for.budget and "budget" in given:
            raise ValueError(
                "solve_for.budget finds the budget: remove interventions.budget from the file"
            )
        return self

    def interventions_settings(self, run: InterventionsConfig) -> InterventionsConfig:
        """The run's intervention settings with this scenario's overrides; the budget is
        the scenario's own (0 when it sets none), so a scenario plans levers only when it
        asks to and its comparison with the baseline (which has none) stays like for like."""
        given = {"budget": 0.0}
        if self.interventions is not None:
            given |= self.interventions.model_dump(include=self.interventions.model_fields_set)
        return run.model_copy(update=given)

    def to_toml(self) -> str:
        """The scenario as TOML text that :func:`load_scenario` reads back to an equal one."""
        lines = [f"name = {_toml_value(self.name)}"]
        if self.description:
            lines.append(f"description = {_toml_value(self.description)}")
        for table in ("demand", "supply", "elasticity", "fees", "bounds", "adjacency"):
            for entry in getattr(self, table):
                # ``remove = false`` and absent selectors are the defaults
                lines += ["", f"[[{table}]]", *_toml_lines(entry.model_dump(exclude_defaults=True))]
        if self.interventions is not None:
            given = self.interventions.model_dump(include=self.interventions.model_fields_set)
            lines += ["", "[interventions]", *_toml_lines(given)]
        if self.solve_for is not None:
            for kind, target in self.solve_for.model_dump().items():
                if target is not None:
                    lines += ["", f"[solve_for.{kind}]", *_toml_lines(target)]
        return "\n".join(lines) + "\n"


def _toml_lines(values: dict[str, Any]) -> list[str]:
    # TOML has no null: an absent key means "default"
    return [f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None]


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(_TOML_ESCAPES.get(c, c) for c in value) + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


#: what a TOML basic string must escape: quote, backslash and control characters
_TOML_ESCAPES = {
    **{chr(i): f"\\u{i:04X}" for i in (*range(0x20), 0x7F)},
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def load_config(path: str | Path | None) -> RunConfig:
    """Read a TOML configuration file; ``None`` gives the built-in defaults.

    Raises :class:`ConfigError` listing every problem in the file.
    """
    if path is None:
        return RunConfig()
    path = Path(path)
    return parse_config(_read_toml(path, "config file"), source=str(path))


def _read_toml(path: Path, kind: str) -> dict[str, Any]:
    """The TOML file at ``path`` as nested dictionaries; a :class:`ConfigError` naming
    the ``kind`` of file when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{kind} {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{kind} {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{kind} {path} cannot be read: {exc.strerror}") from None


def parse_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a configuration given as nested dictionaries."""
    return _validate(RunConfig, raw, source)


def _validate(root: type[_Model], raw: dict[str, Any], source: str) -> _Model:
    """``raw`` validated as ``root``, or a :class:`ConfigError` listing every problem."""
    try:
        return root.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, root) for err in exc.errors()]
        raise ConfigError(
            f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        ) from None


def _describe(err: Any, root: type[BaseModel]) -> str:
    """One validation error of a ``root`` model as ``key.path: message``; an unknown key
    with the closest valid name at its level."""
    loc = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        *parents, name = err["loc"]
        model: type[BaseModel] = root
        for parent in parents:
            if isinstance(parent, str):  # an int is a position in a list of tables
                model = _model_of(model.model_fields[parent].annotation)
        hint = suggest(str(name), list(model.model_fields))
        return f"unknown setting '{loc}'" + (f"; did you mean '{hint}'?" if hint else "")
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def _model_of(annotation: Any) -> type[BaseModel]:
    """The settings model inside a field's annotation (``X``, ``tuple[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    raise TypeError(f"no settings model in {annotation!r}")


def resolve_config(data_dir: str | Path, path: str | Path | None) -> tuple[RunConfig, Path | None]:
    """The configuration a command uses: ``path`` if given, else ``pricing.toml`` in the
    data directory if present, else the built-in defaults. Returns it with its source."""
    if path is None:
        default = Path(data_dir) / "pricing.toml"
        path = default if default.is_file() else None
    return load_config(path), (Path(path) if path is not None else None)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; its name defaults to the file name without ``.toml``.

    Raises :class:`ConfigError` listing every problem in the file.
    """
    path = Path(path)
    return parse_scenario(_read_toml(path, "scenario file"), str(path), path.stem)


def parse_scenario(raw: dict[str, Any], source: str, default_name: str) -> Scenario:
    """Validate a scenario given as nested dictionaries (``default_name`` when it has no
    ``name``)."""
    return _validate(Scenario, {"name": default_name, **raw}, source)
