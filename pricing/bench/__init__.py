"""The benchmark suite behind ``pricing bench``, shipped with the package.

:mod:`~pricing.bench.harness` times a case against its baseline and keeps the history;
:mod:`~pricing.bench.suite` says which stages run at which sizes; one module per stage
(``load``, ``estimate``, ``equilibrium``, ``whatif``, ``guidance``, ``interventions``,
``run``, ``report``, ``cluster``) holds its setups and baselines, and its docstring says
why that baseline is the right one; :mod:`~pricing.bench.paths` says where setups are
cached and results written (benchmarks/README.md).
"""
