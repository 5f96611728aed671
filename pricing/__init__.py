"""pricing: equilibrium pricing and supply–demand optimization for services marketplaces.

The public API, in data-flow order (see DESIGN.md §1)::

    import pricing
    config = pricing.load_config("data/sample/pricing.toml")
    report = pricing.check_inputs("data/sample", config)   # every contract problem at once
    panel = pricing.build_panel(report.checked())          # segment x week panel
    curves = pricing.fit_curves(panel, config.estimation)  # demand and supply per segment
    market = pricing.Market.from_curves(curves, adjacency, config.market)
    result = pricing.solve(market)                         # clearing rates, verified
    sim = pricing.simulate_market(pricing.SimulationSpec(seed=1))  # known truth

Names are imported on first use, so ``import pricing`` (and ``pricing --help``) stays
fast: numpy, pandas and DuckDB load only when a function that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "pricing.errors",
    "DataError": "pricing.errors",
    "PricingError": "pricing.errors",
    "DataConfig": "pricing.config",
    "EstimationConfig": "pricing.config",
    "RunConfig": "pricing.config",
    "load_config": "pricing.config",
    "resolve_config": "pricing.config",
    "CurveFit": "pricing.iv",
    "CurveSet": "pricing.curves",
    "fit_curves": "pricing.curves",
    "EstimationError": "pricing.errors",
    "estimate_curve": "pricing.iv",
    "CheckedInputs": "pricing.schema",
    "Problem": "pricing.schema",
    "ValidationReport": "pricing.schema",
    "check_inputs": "pricing.schema",
    "Panel": "pricing.panel",
    "build_panel": "pricing.panel",
    "Market": "pricing.market",
    "MarketConfig": "pricing.config",
    "MarketError": "pricing.errors",
    "SolverError": "pricing.errors",
    "EquilibriumResult": "pricing.equilibrium",
    "solve": "pricing.equilibrium",
    "random_market": "pricing.synthetic",
    "random_catalogue": "pricing.synthetic",
    "GuidanceConfig": "pricing.config",
    "InterventionsConfig": "pricing.config",
    "Guidance": "pricing.guidance",
    "rate_guidance": "pricing.guidance",
    "InterventionPlan": "pricing.interventions",
    "PlanCheck": "pricing.interventions",
    "plan_interventions": "pricing.interventions",
    "SimulatedMarket": "pricing.simulate",
    "SimulationSpec": "pricing.simulate",
    "simulate_market": "pricing.simulate",
    "Scenario": "pricing.config",
    "load_scenario": "pricing.config",
    "apply_scenario": "pricing.scenario",
    "whatif": "pricing.scenario",
    "WhatIf": "pricing.scenario",
    "InverseAnswer": "pricing.scenario",
    "Run": "pricing.pipeline",
    "load_run": "pricing.pipeline",
    "run_batch": "pricing.pipeline",
    "RunStore": "pricing.store",
    "StoreError": "pricing.errors",
    "RunError": "pricing.errors",
    "ClusterError": "pricing.errors",
    "executor": "pricing.cluster",
}

__all__ = [
    "CheckedInputs",
    "ClusterError",
    "ConfigError",
    "CurveFit",
    "CurveSet",
    "DataConfig",
    "DataError",
    "EquilibriumResult",
    "EstimationConfig",
    "EstimationError",
    "Guidance",
    "GuidanceConfig",
    "InterventionPlan",
    "InterventionsConfig",
    "InverseAnswer",
    "Market",
    "MarketConfig",
    "MarketError",
    "Panel",
    "PlanCheck",
    "PricingError",
    "Problem",
    "Run",
    "RunConfig",
    "RunError",
    "RunStore",
    "Scenario",
    "SimulatedMarket",
    "SimulationSpec",
    "SolverError",
    "StoreError",
    "ValidationReport",
    "WhatIf",
    "__version__",
    "apply_scenario",
    "build_panel",
    "check_inputs",
    "estimate_curve",
    "executor",
    "fit_curves",
    "load_config",
    "load_run",
    "load_scenario",
    "plan_interventions",
    "random_catalogue",
    "random_market",
    "rate_guidance",
    "resolve_config",
    "run_batch",
    "simulate_market",
    "solve",
    "whatif",
]

if TYPE_CHECKING:
    from pricing.cluster import executor
    from pricing.config import (
        DataConfig,
        EstimationConfig,
        GuidanceConfig,
        InterventionsConfig,
        MarketConfig,
        RunConfig,
        Scenario,
        load_config,
        load_scenario,
        resolve_config,
    )
    from pricing.curves import CurveSet, fit_curves
    from pricing.equilibrium import EquilibriumResult, solve
    from pricing.errors import (
        ClusterError,
        ConfigError,
        DataError,
        EstimationError,
        MarketError,
        PricingError,
        RunError,
        SolverError,
        StoreError,
    )
    from pricing.guidance import Guidance, rate_guidance
    from pricing.interventions import InterventionPlan, PlanCheck, plan_interventions
    from pricing.iv import CurveFit, estimate_curve
    from pricing.market import Market
    from pricing.panel import Panel, build_panel
    from pricing.pipeline import Run, load_run, run_batch
    from pricing.scenario import InverseAnswer, WhatIf, apply_scenario, whatif
    from pricing.schema import CheckedInputs, Problem, ValidationReport, check_inputs
    from pricing.simulate import SimulatedMarket, SimulationSpec, simulate_market
    from pricing.store import RunStore
    from pricing.synthetic import random_catalogue, random_market


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pricing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
