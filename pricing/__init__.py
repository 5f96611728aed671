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
    trust = pricing.backtest("data/sample", weeks=12)      # engine vs naive baselines

Names are imported on first use, so ``import pricing`` (and ``pricing --help``) stays
fast: numpy, pandas and DuckDB load only when a function that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pricing._version import __version__

_EXPORTS = {
    "ConfigError": "pricing.errors",
    "DataError": "pricing.errors",
    "PricingError": "pricing.errors",
    "DataConfig": "pricing.config",
    "EstimationConfig": "pricing.config",
    "RunConfig": "pricing.config",
    "load_config": "pricing.config",
    "resolve_config": "pricing.config",
    "CurveFit": "pricing.estimation.iv",
    "CurveSet": "pricing.estimation.curves",
    "fit_curves": "pricing.estimation.curves",
    "EstimationError": "pricing.errors",
    "estimate_curve": "pricing.estimation.iv",
    "CheckedInputs": "pricing.inputs.validation",
    "Problem": "pricing.inputs.validation",
    "ValidationReport": "pricing.inputs.validation",
    "check_inputs": "pricing.inputs.validation",
    "Panel": "pricing.inputs.panel",
    "build_panel": "pricing.inputs.panel",
    "Market": "pricing.market.market",
    "MarketConfig": "pricing.config",
    "MarketError": "pricing.errors",
    "SolverError": "pricing.errors",
    "EquilibriumResult": "pricing.market.equilibrium",
    "solve": "pricing.market.equilibrium",
    "random_market": "pricing.market.synthetic",
    "random_catalogue": "pricing.market.synthetic",
    "GuidanceConfig": "pricing.config",
    "InterventionsConfig": "pricing.config",
    "Flows": "pricing.decisions.flows",
    "Guidance": "pricing.decisions.guidance",
    "rate_guidance": "pricing.decisions.guidance",
    "InterventionPlan": "pricing.decisions.interventions",
    "PlanCheck": "pricing.decisions.interventions",
    "plan_interventions": "pricing.decisions.interventions",
    "SimulatedMarket": "pricing.market.simulate",
    "SimulationSpec": "pricing.market.simulate",
    "simulate_market": "pricing.market.simulate",
    "Scenario": "pricing.config",
    "load_scenario": "pricing.config",
    "apply_scenario": "pricing.decisions.scenario",
    "whatif": "pricing.decisions.scenario",
    "WhatIf": "pricing.decisions.scenario",
    "InverseAnswer": "pricing.decisions.scenario",
    "Run": "pricing.runs.run",
    "load_run": "pricing.runs.run",
    "run_batch": "pricing.runs.pipeline",
    "fitted_market": "pricing.runs.pipeline",
    "run_whatifs": "pricing.runs.pipeline",
    "backtest": "pricing.runs.backtest",
    "BacktestResult": "pricing.runs.backtest",
    "Manifest": "pricing.store.manifest",
    "RunStore": "pricing.store.store",
    "StoreError": "pricing.errors",
    "RunError": "pricing.errors",
    "ClusterError": "pricing.errors",
    "executor": "pricing.cluster",
}

__all__ = [
    "BacktestResult",
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
    "Flows",
    "Guidance",
    "GuidanceConfig",
    "InterventionPlan",
    "InterventionsConfig",
    "InverseAnswer",
    "Manifest",
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
    "backtest",
    "build_panel",
    "check_inputs",
    "estimate_curve",
    "executor",
    "fit_curves",
    "fitted_market",
    "load_config",
    "load_run",
    "load_scenario",
    "plan_interventions",
    "random_catalogue",
    "random_market",
    "rate_guidance",
    "resolve_config",
    "run_batch",
    "run_whatifs",
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
    from pricing.decisions.flows import Flows
    from pricing.decisions.guidance import Guidance, rate_guidance
    from pricing.decisions.interventions import InterventionPlan, PlanCheck, plan_interventions
    from pricing.decisions.scenario import InverseAnswer, WhatIf, apply_scenario, whatif
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
    from pricing.estimation.curves import CurveSet, fit_curves
    from pricing.estimation.iv import CurveFit, estimate_curve
    from pricing.inputs.panel import Panel, build_panel
    from pricing.inputs.validation import CheckedInputs, Problem, ValidationReport, check_inputs
    from pricing.market.equilibrium import EquilibriumResult, solve
    from pricing.market.market import Market
    from pricing.market.simulate import SimulatedMarket, SimulationSpec, simulate_market
    from pricing.market.synthetic import random_catalogue, random_market
    from pricing.runs.backtest import BacktestResult, backtest
    from pricing.runs.pipeline import fitted_market, run_batch, run_whatifs
    from pricing.runs.run import Run, load_run
    from pricing.store.manifest import Manifest
    from pricing.store.store import RunStore


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pricing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
