r"""A synthetic marketplace whose true curves are known: the engine's recovery test bed.

:func:`simulate_market` draws per-segment demand and supply curves, runs a sticky-rate
market for ``weeks`` weeks and returns what the platform would have logged (jobs, weekly
freelancer supply, shifters, adjacency, intervention catalogue) in the input data contract
of DESIGN.md §2, together with the ``truth`` behind it; :meth:`SimulatedMarket.write` saves
them as a data directory the engine reads.

Model
-----
Segments s = 0..S-1 are (category, tier) pairs, or with ``regional`` (category, tier,
region) triples. With R = len(regions) regions per tier in a regional market and R = 1
otherwise, segment s is category ⌊s/3R⌋, tier ⌊s/R⌋ mod 3 (entry, intermediate, expert)
and region s mod R, so there are C = ⌈S/3R⌉ categories and the last one has fewer tiers
(or regions) when S is not a multiple of 3R. Weeks t = 0..T-1 start on Mondays. Rates
are in $/h, quantities in hours/week, elasticities are signed (ε_s < 0 < η_s)::

    log D_st(p) = a_s + ε_s log p + γd_s zd_t + u_st          hours demanded at rate p
    log S_st(p) = b_s + η_s log p + γs_s zs_t + v_st          hours supplied at rate p

Observed shifters, common to all segments, written as-is (mean 0, stationary variance 1)::

    zd_t = client_marketing_index_t,  zs_t = fx_index_t
    z_t = 0.8 z_{t-1} + √(1 − 0.8²) e_t,   z_0 = e_0,   e_t ~ N(0, 1)

zd moves only demand and zs only supply, so zs instruments the demand curve and zd the
supply curve (see :attr:`SimulatedMarket.config`). Loadings γd_s, γs_s ~ U(0.20, 0.45)
make the first stage strong on a typical segment of 104 weeks (median F ≈ 50 with the
instrument alone, ≈ 120 with the curve's own shifter as a control; see below).

Unobserved shocks, AR(1) with stationary standard deviations σu_s, σv_s ~ U(0.10, 0.20) and
ρ_s ~ U(0.5, 0.7)::

    u_st = ρ_s u_{s,t-1} + σu_s √(1 − ρ_s²) ξ_st,   u_s0 = σu_s ξ_s0     (v_st alike)

True clearing rates p*_t: the equilibrium of that week's true curves in which
freelancers may work along the adjacency (below) at its friction, as the engine models
it (DESIGN.md §4: demand met by the pools' flows, pools' supply at their wage). A segment
that no edge touches clears where its own curves cross, D_st(p*) = S_st(p*)::

    log p*_st = (a_s − b_s + γd_s zd_t − γs_s zs_t + u_st − v_st) / (η_s − ε_s)

and a coupled one where its component clears (solved by the engine's verified solver,
:func:`pricing.market.equilibrium.solve`, for every week at once).

Observed rates are sticky, λ_s ~ U(0.3, 0.7), ν_st ~ N(0, 0.02²)::

    log p_s0 = log p*_s0,   log p_st = log p_{s,t-1} + λ_s (log p*_st − log p_{s,t-1}) + ν_st

so the observed market is not in equilibrium: QD_st = D_st(p_st) ≠ QS_st = S_st(p_st).
Because p_st responds to u and v, OLS of log QD on log p is biased (upwards, towards zero
for demand; downwards for supply); 2SLS with zs is not. Two properties matter to an
estimator: each curve's own shifter belongs in its equation (γd zd in demand), so leaving
it in the error keeps 2SLS consistent but, with persistent shifters, spreads the estimates
about three times wider; and u, v and the shifters are autocorrelated, so
heteroskedasticity-robust (not HAC) standard errors understate the uncertainty.

Elasticities are hierarchical: category means ε̄_c ~ N(−1.2, 0.4²), η̄_c ~ N(0.9, 0.35²),
segment values ε_s = ε̄_c + N(0, 0.15²), η_s = η̄_c + N(0, 0.15²); all clipped to
[−2.5, −0.3] and [0.2, 2.0]. Levels are set through a reference point (r_s, Q_s) where the
curves cross when shifters and shocks are zero::

    r_s = tier rate (25, 45, 80 $/h) × category factor e^{N(0, 0.25²)} × region factor g_r
          × e^{N(0, 0.05²)}
    Q_s = jobs_s × h̄_s,   h̄_s ~ U(10, 40) mean hours per job
    jobs_s = jobs_per_week × e^{N(0, 0.3²) − 0.3²/2}   (thin segments: U(1, 3))
    a_s = log Q_s − ε_s log r_s,   b_s = log Q_s − η_s log r_s

Exactly round(thin_share × S) segments, chosen at random, are thin. The region factor is
g_r = 1 unless ``regional``; then g_r = e^{N(0, 0.3²)} per region (from the seventh stream,
below), so regions' rates differ (two regions' typically by a third: median |log gap|
0.3 × √2 × 0.674 ≈ 0.29) and remote work from a cheaper region can pay.

Logged data
-----------
jobs: each day d of week t, segment s posts Poisson(QD_st / (7 h̄_s)) jobs, so a week
posts Poisson(QD_st / h̄_s) and job ids increase with posting day. Per job::

    hours       = h̄_s e^{0.7 N − 0.7²/2}          (mean h̄_s)
    hired       ~ Bernoulli(0.9 × min(1, QS_st / QD_st))      the short side rations hires
    hired_rate  = p_st e^{N(0, 0.1²)}              null when not hired
    budget_rate = p_st e^{N(log 1.05, 0.15²)}
    region      uniform over spec.regions; in a regional market the segment's region

supply: segment s has a persistent pool of K_s = max(1, ⌈Q_s / (0.8 k_s)⌉) freelancers,
k_s ~ U(10, 30) hours per active freelancer. Freelancer i is listed in a week with
probability π_i ~ U(0.6, 1) (the first of each pool always, so no segment-week is empty).
A listed freelancer offers weight w_it = c_i e^{N(0, 0.3²)}, c_i = e^{N(0, 0.5²)}, or zero
with probability 0.05 (never the first of the pool), and the weights are scaled so that
available hours sum to QS_st in every segment-week (up to float rounding). ask_rate =
p_st e^{m_i + N(0, 0.05²)} with a persistent premium m_i ~ N(0, 0.14²). A freelancer's
region is uniform over spec.regions; in a regional market it is the pool's region.

shifters: ``week``, ``client_marketing_index`` = zd_t, ``fx_index`` = zs_t.

adjacency: categories form skill families of FAMILY_SIZE = 12 consecutive indices, family
k = {12k, …, 12k + 11} ∩ {0, …, C−1} (the last may be smaller), and freelancers move only
within a family, as between the related skills of a real marketplace; this also keeps every
coupled component to at most 12 segments, however large C. Each category c of a family of
F_c ≥ 2 categories has one outgoing edge, or two with probability 1/2 when F_c ≥ 3, to
distinct other categories of its family; a family of one has no edges. friction =
U(0.05, 0.20) × the category's intermediate reference rate (45 $/h × category factor),
rounded to cents. A category edge joins each tier's (and region's) pool to the same tier's
(and region's) segment of the other category.

Connected markets, on request (all 0 by default, and then nothing below is drawn: the
streams they use are a sixth and a seventh child of the seed, so the tables above stay as
they were):

- ``cross_family_edges`` R: category c gets Poisson(R) more edges, each to a category
  drawn uniformly outside its family (repeats of an edge dropped), friction as a family
  edge's. With R ≈ 1 the families form one giant component, as in a random graph.
- ``tier_moves`` m: each pool (c, t) below the expert tier (in a regional market
  (c, t, r)) also serves (c, t + 1) (in region r) with probability m, at friction
  U(0.7, 1.1) × (r_{c,t+1} − r_{c,t}), rounded to cents (some
  moves pay at the reference point, some do not); the adjacency table then names the
  tiers of these rows (``from_tier``/``to_tier``, contract v1.1) and leaves the category
  edges' tiers blank.
- ``remote_work`` m (regional markets only): each pool (c, t, r) also serves the segment
  (c, t, r') of every other region r' with probability m, at friction U(0.05, 0.20) × the
  pool's reference rate r_s, rounded to cents: remote work from a cheaper region pays
  where the regions' gap exceeds the friction, from a dearer one it does not.

In a regional market the rows of tier moves and remote work name their tiers and regions
(``from_tier``/``to_tier``, ``from_region``/``to_region``; a tier move stays in its
region) and the category edges leave both blank. The true clearing rates below are the
coupled equilibrium of every edge written.

The adjacency moves the history through the clearing rates the sticky
rates chase; the hours logged are each segment's own: demand D_st(p_st) of its clients,
supply S_st(p_st) of its pool at the segment's rate.

interventions (one row per lever; GMV_c = Σ_{s∈c} Q_s r_s is the category's reference
weekly gross merchandise value)::

    kind          effect_per_unit                               max_units  cost_per_unit ($)
    recruit       0.02: supply level B_s of every segment of    10         0.02 GMV_c × 8
                  the category × (1 + 0.02 per unit)                       × U(0.6, 1.4)
    reskill       friction/4 $/h off the edge category →        4          U(1000, 5000)
                  to_category (its first adjacency edge)
    fee_discount  0.005: freelancer fee f_f lowered by 0.005    10         0.005 GMV_c × 13
                  (half a percentage point) per unit                       × U(0.8, 1.2)

``intervention_id`` is ``"<kind>:<category>"``, for reskill ``"reskill:<from>-><to>"``;
``to_category`` is null except for reskill. Costs are rounded to whole dollars (≥ 1).

pricing.toml names the instruments (fx_index for demand, client_marketing_index for
supply), the segment keys (``region`` among them in a regional market), fees of 5 %
(clients) and 10 % (freelancers) — the history has no fees, so they only set how the
fitted curves are read (``pricing.market.market``) and leave fee-discount levers room to
act — and an intervention budget of a tenth of the catalogue's full cost.

truth (one row per segment, in segment order; the segment keys ``category``, ``tier`` and,
in a regional market, ``region``) holds every parameter above —
``demand_elasticity`` ε_s, ``supply_elasticity`` η_s, ``category_demand_elasticity`` ε̄_c,
``category_supply_elasticity`` η̄_c, ``log_demand_level`` a_s, ``log_supply_level`` b_s,
``demand_shifter_loading`` γd_s, ``supply_shifter_loading`` γs_s, ``stickiness`` λ_s,
``shock_rho`` ρ_s, ``demand_shock_sd`` σu_s, ``supply_shock_sd`` σv_s, ``thin``,
``reference_rate`` r_s, ``reference_hours`` Q_s, ``mean_job_hours`` h̄_s,
``freelancer_pool_size`` K_s — and the state of the last week t = T−1: ``last_week``,
``demand_shock_last_week`` u_sT−1, ``supply_shock_last_week`` v_sT−1,
``observed_rate_last_week`` p_sT−1 (the latent sticky rate; the hired rates scatter around
it), ``clearing_rate_last_week`` p*_sT−1, ``demand_hours_at_clearing`` D_sT−1(p*) =
S_sT−1(p*), ``demand_hours_last_week`` QD_sT−1 and ``supply_hours_last_week`` QS_sT−1 (the
latter equals that week's sum of available_hours), and the week after the last one,
``next_week`` and ``clearing_rate_next_week`` p*_sT (the target of a one-week-ahead
forecast; it is simulated but not logged).

truth_weekly (one row per segment and week, the T logged weeks and the next one with
``logged`` false): ``thin``, ``observed_rate`` p_st, ``clearing_rate`` p*_st,
``demand_hours_at_observed`` D_st(p_st), ``supply_hours_at_observed`` S_st(p_st),
``demand_shock`` u_st and ``supply_shock`` v_st: what a backtest scores every origin
against.

Everything is drawn from ``numpy.random.default_rng(spec.seed)`` (independent child
streams for parameters, paths, jobs, supply, the catalogue, connections and regions), so
a spec always gives
identical tables. Generation is vectorized over
segments, jobs and freelancers; only the AR(1)/sticky recursions loop over weeks.
"""

from __future__ import annotations

import datetime
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pricing.config import (
    DataConfig,
    EstimationConfig,
    InterventionsConfig,
    MarketConfig,
    RunConfig,
)
from pricing.display import Display
from pricing.inputs.contract import INTERVENTION_KINDS, TIERS, arrow_schema
from pricing.inputs.io import atomic_directory
from pricing.market.equilibrium import solve
from pricing.market.market import Market

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEMAND_SHIFTER = "client_marketing_index"
SUPPLY_SHIFTER = "fx_index"

#: The first categories get readable names; the rest are ``cat_012``, ``cat_013``, ...
READABLE_CATEGORIES = (
    "web_development",
    "mobile_development",
    "data_science",
    "design",
    "writing",
    "translation",
    "video_editing",
    "marketing",
    "accounting",
    "customer_support",
    "legal",
    "engineering",
)

JOBS_SCHEMA = arrow_schema("jobs", region=True)
SUPPLY_SCHEMA = arrow_schema("supply", region=True)
SHIFTERS_SCHEMA = (
    arrow_schema("shifters")
    .append(pa.field(DEMAND_SHIFTER, pa.float64()))
    .append(pa.field(SUPPLY_SHIFTER, pa.float64()))
)
ADJACENCY_SCHEMA = arrow_schema("adjacency")
TIERED_ADJACENCY_SCHEMA = arrow_schema("adjacency", optional=("from_tier", "to_tier"))
REGIONAL_ADJACENCY_SCHEMA = arrow_schema(
    "adjacency", optional=("from_tier", "to_tier", "from_region", "to_region")
)
INTERVENTIONS_SCHEMA = arrow_schema("interventions", optional=("to_category",))
TRUTH_SCHEMA = pa.schema(
    [
        ("category", pa.string()),
        ("tier", pa.string()),
        ("thin", pa.bool_()),
        ("demand_elasticity", pa.float64()),
        ("supply_elasticity", pa.float64()),
        ("category_demand_elasticity", pa.float64()),
        ("category_supply_elasticity", pa.float64()),
        ("log_demand_level", pa.float64()),
        ("log_supply_level", pa.float64()),
        ("demand_shifter_loading", pa.float64()),
        ("supply_shifter_loading", pa.float64()),
        ("stickiness", pa.float64()),
        ("shock_rho", pa.float64()),
        ("demand_shock_sd", pa.float64()),
        ("supply_shock_sd", pa.float64()),
        ("reference_rate", pa.float64()),
        ("reference_hours", pa.float64()),
        ("mean_job_hours", pa.float64()),
        ("freelancer_pool_size", pa.int64()),
        ("last_week", pa.date32()),
        ("demand_shock_last_week", pa.float64()),
        ("supply_shock_last_week", pa.float64()),
        ("observed_rate_last_week", pa.float64()),
        ("clearing_rate_last_week", pa.float64()),
        ("demand_hours_at_clearing", pa.float64()),
        ("demand_hours_last_week", pa.float64()),
        ("supply_hours_last_week", pa.float64()),
        ("next_week", pa.date32()),
        ("clearing_rate_next_week", pa.float64()),
    ]
)
TRUTH_WEEKLY_SCHEMA = pa.schema(
    [
        ("category", pa.string()),
        ("tier", pa.string()),
        ("week", pa.date32()),
        ("thin", pa.bool_()),
        ("logged", pa.bool_()),
        ("observed_rate", pa.float64()),
        ("clearing_rate", pa.float64()),
        ("demand_hours_at_observed", pa.float64()),
        ("supply_hours_at_observed", pa.float64()),
        ("demand_shock", pa.float64()),
        ("supply_shock", pa.float64()),
    ]
)

# Model constants, named as in the module docstring.
_TIER_RATE_USD = np.array([25.0, 45.0, 80.0])
_DEMAND_ELASTICITY_RANGE = (-2.5, -0.3)
_SUPPLY_ELASTICITY_RANGE = (0.2, 2.0)
_SHIFTER_RHO = 0.8
_RATE_NOISE_SD = 0.02
_MATCH_RATE = 0.9
_JOB_HOURS_LOG_SD = 0.7
_HIRED_RATE_LOG_SD = 0.1
_BUDGET_LOG_MEAN = math.log(1.05)
_BUDGET_LOG_SD = 0.15
_MEAN_PARTICIPATION = 0.8
_ZERO_HOURS_SHARE = 0.05
_DAYS_PER_WEEK = 7
_REGION_RATE_LOG_SD = 0.3
_REMOTE_FRICTION_SHARE = (0.05, 0.20)
#: Adjacency stays within skill families of this many consecutive categories, so coupled
#: components stay far below the equilibrium solver's size limit however many categories.
FAMILY_SIZE = 12
#: most cross-family edges per category a spec may ask for (at 1 the categories form one
#: giant component already; more only adds cycles)
_MAX_CROSS_FAMILY_EDGES = 10.0
#: Tables the data contract lets a market leave out; written only when they have rows.
_OPTIONAL_TABLES = ("adjacency", "interventions")
_EPOCH = datetime.date(1970, 1, 1)
# Parquet dictionary-encodes only these repeated labels: trying a dictionary on unique ids
# and continuous measurements first and falling back costs ~20% of the write time.
_REPEATED_COLUMNS = frozenset(
    {"category", "tier", "region", "posted_at", "week", "from_category", "to_category", "kind"}
)


@dataclass(frozen=True)
class SimulationSpec:
    """Size and randomness of a simulated market; invalid values raise ``ValueError``."""

    segments: int = 60
    weeks: int = 104
    seed: int = 0
    start: datetime.date = datetime.date(2024, 1, 1)
    jobs_per_week: float = 40.0
    thin_share: float = 0.15
    regions: tuple[str, ...] = ("na", "eu", "apac")
    cross_family_edges: float = 0.0
    tier_moves: float = 0.0
    regional: bool = False
    remote_work: float = 0.0

    def __post_init__(self) -> None:
        if self.segments < 1:
            raise ValueError(f"segments must be at least 1, got {self.segments}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        if self.weeks < 8:
            raise ValueError(
                f"weeks must be at least 8 (curves need a history to estimate), got {self.weeks}"
            )
        if not self.jobs_per_week > 0:
            raise ValueError(f"jobs_per_week must be positive, got {self.jobs_per_week}")
        if not 0 <= self.thin_share < 1:
            raise ValueError(f"thin_share must be in [0, 1), got {self.thin_share}")
        if isinstance(self.start, datetime.datetime) or not isinstance(self.start, datetime.date):
            raise ValueError(f"start must be a datetime.date, got {self.start!r}")
        if self.start.weekday() != 0:
            raise ValueError(
                f"start must be a Monday (weeks start on Mondays), got {self.start} "
                f"({self.start:%A})"
            )
        if not self.regions or any(not r for r in self.regions):
            raise ValueError(f"regions must be non-empty names, got {self.regions!r}")
        if len(set(self.regions)) != len(self.regions):
            raise ValueError(f"regions repeat a name: {self.regions!r}")
        if not 0 <= self.cross_family_edges <= _MAX_CROSS_FAMILY_EDGES:
            raise ValueError(
                f"cross_family_edges must be in [0, {_MAX_CROSS_FAMILY_EDGES}] edges per "
                f"category, got {self.cross_family_edges}"
            )
        if not 0 <= self.tier_moves <= 1:
            raise ValueError(f"tier_moves must be a share in [0, 1], got {self.tier_moves}")
        if not isinstance(self.regional, bool):
            raise ValueError(f"regional must be True or False, got {self.regional!r}")
        if not 0 <= self.remote_work <= 1:
            raise ValueError(f"remote_work must be a share in [0, 1], got {self.remote_work}")
        if self.remote_work and not (self.regional and len(self.regions) >= 2):
            raise ValueError(
                f"remote_work needs a regional market of at least two regions to serve "
                f"(regional=True, --regional on the command line); got "
                f"regional={self.regional}, regions={self.regions!r}"
            )

    @property
    def connected(self) -> bool:
        """Whether adjacency reaches beyond the skill families (cross-family edges, tier
        moves or remote work), the options that make connected markets."""
        return self.cross_family_edges > 0 or self.tier_moves > 0 or self.remote_work > 0

    @property
    def segment_regions(self) -> int:
        """Regions each category and tier splits into: R = len(regions) in a regional
        market, else 1 (regions are then labels, not segments)."""
        return len(self.regions) if self.regional else 1

    @property
    def segment_keys(self) -> tuple[str, ...]:
        """The keys of a segment: category, tier and, in a regional market, region."""
        return ("category", "tier", "region") if self.regional else ("category", "tier")

    @property
    def categories(self) -> int:
        """Number of categories, ⌈segments / 3R⌉."""
        return -(-self.segments // (len(TIERS) * self.segment_regions))


@dataclass(frozen=True)
class SimulatedMarket(Display):
    """The tables of a simulated market, its ground truth and the run configuration."""

    spec: SimulationSpec
    jobs: pa.Table
    supply: pa.Table
    shifters: pa.Table
    adjacency: pa.Table
    interventions: pa.Table
    truth: pa.Table
    truth_weekly: pa.Table
    config: RunConfig

    @property
    def tables(self) -> dict[str, pa.Table]:
        """Every table by its file name stem, in a fixed order."""
        return {
            "jobs": self.jobs,
            "supply": self.supply,
            "shifters": self.shifters,
            "adjacency": self.adjacency,
            "interventions": self.interventions,
            "truth": self.truth,
            "truth_weekly": self.truth_weekly,
        }

    def write(self, out_dir: Path, overwrite: bool = False, files: int = 1) -> Path:
        """Write ``<table>.parquet`` for every table and ``pricing.toml`` into ``out_dir``.

        With ``files`` > 1, jobs and supply are partitioned datasets instead: folders
        ``jobs/`` and ``supply/`` of ``files`` Parquet files each, consecutive slices of
        the rows of about equal size (what a cluster run reads in parallel).

        An empty optional table (no adjacency in a one-category market) is left out, as
        the data contract asks of a table that is not used. The directory appears
        complete or not at all; an existing ``out_dir`` raises ``FileExistsError``
        unless ``overwrite`` is true.
        """
        if files < 1:
            raise ValueError(f"files must be at least 1, not {files}")
        out_dir = Path(out_dir)
        # Parquet encoding releases the GIL: the files are written side by side.
        with atomic_directory(out_dir, overwrite=overwrite) as tmp, ThreadPoolExecutor() as pool:
            written = []
            for name, table in self.tables.items():
                if not table.num_rows and name in _OPTIONAL_TABLES:
                    continue
                dictionary = [c for c in table.column_names if c in _REPEATED_COLUMNS]
                if files == 1 or name not in ("jobs", "supply"):
                    parts = {tmp / f"{name}.parquet": table}
                else:
                    (tmp / name).mkdir()
                    step = -(-table.num_rows // files)
                    parts = {
                        tmp / name / f"part-{i:04d}.parquet": table.slice(i * step, step)
                        for i in range(files)
                    }
                for path, part in parts.items():
                    written.append(
                        pool.submit(pq.write_table, part, path, use_dictionary=dictionary)
                    )
            (tmp / "pricing.toml").write_text(self.config.to_toml(), encoding="utf-8")
            for future in written:
                future.result()
        return out_dir

    def to_frame(self) -> pd.DataFrame:
        """The ground truth, one row per segment."""
        frame: pd.DataFrame = self.truth.to_pandas()
        return frame

    def summary(self, max_rows: int = 0) -> str:
        """Size, date range and rows; then ``max_rows`` segments of the truth."""
        spec = self.spec
        thin = int(pc.sum(self.truth["thin"]).as_py() or 0)
        hired = int(pc.sum(self.jobs["hired"]).as_py() or 0)
        hired_share = hired / self.jobs.num_rows if self.jobs.num_rows else 0.0
        freelancers = int(pc.sum(self.truth["freelancer_pool_size"]).as_py())
        last = spec.start + datetime.timedelta(weeks=spec.weeks - 1)
        regions = f" x {len(spec.regions)} regions" if spec.regional else ""
        text = (
            f"Simulated market (seed {spec.seed}): {spec.segments} segments in "
            f"{spec.categories} categories{regions} ({thin} thin), {spec.weeks} weeks "
            f"{spec.start} to {last}\n"
            f"  jobs:   {self.jobs.num_rows:,} rows ({hired_share:.1%} hired)\n"
            f"  supply: {self.supply.num_rows:,} rows from pools of {freelancers:,} freelancers"
        )
        if max_rows:
            text += "\n" + self.to_frame().head(max_rows).to_string(index=False)
        return text


@dataclass(frozen=True)
class _Segments:
    """Per-segment parameters (arrays of length S) and per-category ones (length C)."""

    category: IntArray
    tier: IntArray
    region: IntArray  # position in spec.regions; 0 everywhere unless regional
    thin: BoolArray
    eps: FloatArray
    eta: FloatArray
    category_eps: FloatArray
    category_eta: FloatArray
    category_rate_factor: FloatArray
    a: FloatArray
    b: FloatArray
    gamma_d: FloatArray
    gamma_s: FloatArray
    stickiness: FloatArray
    rho: FloatArray
    sigma_u: FloatArray
    sigma_v: FloatArray
    reference_rate: FloatArray
    reference_hours: FloatArray
    job_hours: FloatArray
    pool_size: IntArray


@dataclass(frozen=True)
class _Paths:
    """Weekly series: shifters of length T + 1, the rest (T + 1, S) arrays; week T is the
    week after the logged history (its truth is the forecast's target)."""

    zd: FloatArray
    zs: FloatArray
    u: FloatArray
    v: FloatArray
    log_p_star: FloatArray
    p: FloatArray
    qd: FloatArray
    qs: FloatArray

    def logged(self, weeks: int) -> _Paths:
        """The first ``weeks`` weeks: what the platform logs."""
        return _Paths(*(getattr(self, f.name)[:weeks] for f in fields(self)))


def simulate_market(spec: SimulationSpec) -> SimulatedMarket:
    """Simulate the market described in the module docstring."""
    # the sixth (connections) and seventh (regions) streams are drawn from only when asked
    # for: the first five are the same as ever, so a spec without them gives the same tables
    streams = np.random.default_rng(spec.seed).spawn(7)
    param_rng, path_rng, job_rng, supply_rng, catalogue_rng, connect_rng, region_rng = streams
    region_factor = np.ones(1)
    if spec.regional:
        region_factor = np.exp(region_rng.normal(0.0, _REGION_RATE_LOG_SD, len(spec.regions)))
    seg = _draw_segments(spec, param_rng, region_factor)
    adjacency_from, adjacency_to, friction = _draw_adjacency(seg, catalogue_rng)
    named = _Edges.none()
    if spec.connected:
        adjacency_from, adjacency_to, friction = _cross_family(
            spec, seg, adjacency_from, adjacency_to, friction, connect_rng
        )
        named = _draw_tier_moves(spec, seg, connect_rng).add(
            _draw_remote_work(spec, seg, region_rng)
        )
    edges = _segment_edges(spec, adjacency_from, adjacency_to, friction).add(named)
    every = _simulate_paths(spec, seg, edges, path_rng)
    paths = every.logged(spec.weeks)
    categories = _category_names(spec.categories)
    regions = pa.array(spec.regions, pa.string())
    # each segment's keys (spec.segment_keys), the columns that name it in every table
    keys = {
        "category": categories.take(pa.array(seg.category)),
        "tier": pa.array(TIERS).take(pa.array(seg.tier)),
    }
    if spec.regional:
        keys["region"] = regions.take(pa.array(seg.region))
    # The two big tables draw from their own streams and numpy/pyarrow release the GIL
    # in their bulk operations, so building them side by side saves time on a multi-core
    # machine without changing a byte of the result.
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = pool.submit(_jobs_table, spec, seg, paths, keys, regions, job_rng)
        supply = pool.submit(_supply_table, spec, seg, paths, keys, regions, supply_rng)
        catalogue = _interventions_table(
            seg, categories, adjacency_from, adjacency_to, friction, catalogue_rng
        )
        return SimulatedMarket(
            spec=spec,
            jobs=jobs.result(),
            supply=supply.result(),
            shifters=pa.Table.from_arrays(
                [_dates(spec, np.arange(spec.weeks) * _DAYS_PER_WEEK), paths.zd, paths.zs],
                schema=SHIFTERS_SCHEMA,
            ),
            adjacency=_adjacency_table(
                spec, categories, keys, adjacency_from, adjacency_to, friction, named
            ),
            interventions=catalogue,
            truth=_truth_table(spec, seg, every, keys),
            truth_weekly=_weekly_truth(spec, seg, every, keys),
            config=RunConfig(
                data=DataConfig(segment_keys=spec.segment_keys),
                estimation=EstimationConfig(
                    demand_instruments=(SUPPLY_SHIFTER,), supply_instruments=(DEMAND_SHIFTER,)
                ),
                market=MarketConfig(client_fee=CLIENT_FEE, freelancer_fee=FREELANCER_FEE),
                interventions=InterventionsConfig(budget=_budget(catalogue)),
            ),
        )


def _draw_segments(
    spec: SimulationSpec, rng: np.random.Generator, region_factor: FloatArray
) -> _Segments:
    """The segments' parameters; ``region_factor`` g_r per region (ones unless regional)."""
    n, n_cat, n_region = spec.segments, spec.categories, spec.segment_regions
    index = np.arange(n, dtype=np.int64)
    category = index // (len(TIERS) * n_region)
    tier, region = index // n_region % len(TIERS), index % n_region

    category_eps = np.clip(rng.normal(-1.2, 0.4, n_cat), *_DEMAND_ELASTICITY_RANGE)
    category_eta = np.clip(rng.normal(0.9, 0.35, n_cat), *_SUPPLY_ELASTICITY_RANGE)
    eps = np.clip(category_eps[category] + rng.normal(0.0, 0.15, n), *_DEMAND_ELASTICITY_RANGE)
    eta = np.clip(category_eta[category] + rng.normal(0.0, 0.15, n), *_SUPPLY_ELASTICITY_RANGE)

    category_rate_factor = np.exp(rng.normal(0.0, 0.25, n_cat))
    reference_rate = (
        _TIER_RATE_USD[tier]
        * category_rate_factor[category]
        * region_factor[region]
        * np.exp(rng.normal(0.0, 0.05, n))
    )
    thin = np.zeros(n, dtype=np.bool_)
    thin[rng.permutation(n)[: round(spec.thin_share * n)]] = True
    typical_jobs = spec.jobs_per_week * np.exp(rng.normal(0.0, 0.3, n) - 0.3**2 / 2)
    jobs_per_week = np.where(thin, rng.uniform(1.0, 3.0, n), typical_jobs)
    job_hours = rng.uniform(10.0, 40.0, n)
    reference_hours = jobs_per_week * job_hours
    hours_per_freelancer = rng.uniform(10.0, 30.0, n)
    pool_size = np.maximum(
        1, np.ceil(reference_hours / (_MEAN_PARTICIPATION * hours_per_freelancer))
    ).astype(np.int64)

    return _Segments(
        category=category,
        tier=tier,
        region=region,
        thin=thin,
        eps=eps,
        eta=eta,
        category_eps=category_eps,
        category_eta=category_eta,
        category_rate_factor=category_rate_factor,
        a=np.log(reference_hours) - eps * np.log(reference_rate),
        b=np.log(reference_hours) - eta * np.log(reference_rate),
        gamma_d=rng.uniform(0.20, 0.45, n),
        gamma_s=rng.uniform(0.20, 0.45, n),
        stickiness=rng.uniform(0.3, 0.7, n),
        rho=rng.uniform(0.5, 0.7, n),
        sigma_u=rng.uniform(0.10, 0.20, n),
        sigma_v=rng.uniform(0.10, 0.20, n),
        reference_rate=reference_rate,
        reference_hours=reference_hours,
        job_hours=job_hours,
        pool_size=pool_size,
    )


def _simulate_paths(
    spec: SimulationSpec, seg: _Segments, edges: _Edges, rng: np.random.Generator
) -> _Paths:
    """Shifters, shocks, the coupled clearing rates and the sticky rates of weeks
    0..T (the logged T weeks and the next one)."""
    n_weeks, n = spec.weeks + 1, spec.segments
    shifter_innovation = rng.standard_normal((n_weeks, 2))
    shock_innovation = rng.standard_normal((2, n_weeks, n))
    rate_noise = rng.normal(0.0, _RATE_NOISE_SD, (n_weeks, n))

    z = np.empty((n_weeks, 2))
    u = np.empty((n_weeks, n))
    v = np.empty((n_weeks, n))
    z[0] = shifter_innovation[0]
    u[0] = seg.sigma_u * shock_innovation[0, 0]
    v[0] = seg.sigma_v * shock_innovation[1, 0]
    shifter_scale = math.sqrt(1.0 - _SHIFTER_RHO**2)
    shock_scale = np.sqrt(1.0 - seg.rho**2)
    for t in range(1, n_weeks):
        z[t] = _SHIFTER_RHO * z[t - 1] + shifter_scale * shifter_innovation[t]
        u[t] = seg.rho * u[t - 1] + seg.sigma_u * shock_scale * shock_innovation[0, t]
        v[t] = seg.rho * v[t - 1] + seg.sigma_v * shock_scale * shock_innovation[1, t]
    zd, zs = z[:, 0].copy(), z[:, 1].copy()

    demand_shift = seg.a + np.outer(zd, seg.gamma_d) + u  # log D at p = 1
    supply_shift = seg.b + np.outer(zs, seg.gamma_s) + v  # log S at p = 1
    log_p_star = _clearing(seg, edges, demand_shift, supply_shift)

    log_p = np.empty((n_weeks, n))
    log_p[0] = log_p_star[0]
    for t in range(1, n_weeks):
        log_p[t] = log_p[t - 1] + seg.stickiness * (log_p_star[t] - log_p[t - 1]) + rate_noise[t]
    return _Paths(
        zd=zd,
        zs=zs,
        u=u,
        v=v,
        log_p_star=log_p_star,
        p=np.exp(log_p),
        qd=np.exp(demand_shift + seg.eps * log_p),
        qs=np.exp(supply_shift + seg.eta * log_p),
    )


@dataclass(frozen=True)
class _Edges:
    """Segment edges (positions) of the adjacency: pool → segment at a friction."""

    pool: IntArray
    segment: IntArray
    friction: FloatArray

    @classmethod
    def none(cls) -> _Edges:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))

    def add(self, other: _Edges) -> _Edges:
        """These edges, then ``other``'s."""
        return _Edges(
            np.concatenate([self.pool, other.pool]),
            np.concatenate([self.segment, other.segment]),
            np.concatenate([self.friction, other.friction]),
        )


def _segment_edges(
    spec: SimulationSpec, edge_from: IntArray, edge_to: IntArray, friction: FloatArray
) -> _Edges:
    """Category edges as segment edges: pool (from, tier, region) → segment (to, same
    tier, same region), where both segments exist. A category's segments are the 3R
    consecutive positions from c × 3R, in the same (tier, region) order for every c."""
    per_category = len(TIERS) * spec.segment_regions
    slot = np.arange(per_category)
    pool = (edge_from[:, None] * per_category + slot).ravel()
    segment = (edge_to[:, None] * per_category + slot).ravel()
    cost = np.repeat(friction, per_category)
    keep = (pool < spec.segments) & (segment < spec.segments)
    return _Edges(pool[keep], segment[keep], cost[keep])


def _clearing(
    seg: _Segments, edges: _Edges, demand_shift: FloatArray, supply_shift: FloatArray
) -> FloatArray:
    """log p*_st: each week's clearing rates of the true curves, with freelancers free to
    work along the adjacency at its friction (the coupled equilibrium of DESIGN.md §4;
    alone, a segment clears where its own curves cross). Solved for every week at once
    by the engine's verified solver; a week it cannot clear is an error, not a truth."""
    n_weeks, n = demand_shift.shape
    week = np.repeat(np.arange(n_weeks), n)
    segment = np.tile(np.arange(n), n_weeks)
    offset = (np.arange(n_weeks) * n)[:, None]
    market = Market(
        pd.DataFrame(
            {
                "week": week,
                "segment": segment,
                "demand_elasticity": seg.eps[segment],
                "log_demand_level": demand_shift.ravel(),
                "supply_elasticity": seg.eta[segment],
                "log_supply_level": supply_shift.ravel(),
            }
        ),
        pd.DataFrame(
            {
                "pool": (offset + edges.pool).ravel(),
                "segment": (offset + edges.segment).ravel(),
                "friction": np.tile(edges.friction, n_weeks),
            }
        ),
        ("week", "segment"),
    )
    result = solve(market)
    if not result.ok:
        raise RuntimeError(
            "the simulated market's true clearing rates could not be verified:\n"
            + result.summary(max_rows=0)
        )
    log_rate: FloatArray = np.log(result.rate).reshape(n_weeks, n)
    return log_rate


def _jobs_table(
    spec: SimulationSpec,
    seg: _Segments,
    paths: _Paths,
    keys: dict[str, pa.Array],
    regions: pa.Array,
    rng: np.random.Generator,
) -> pa.Table:
    n_weeks, n = spec.weeks, spec.segments
    # Daily Poisson counts sum to the weekly Poisson(QD/h̄); drawing them per day (cells in
    # week, day, segment order) makes job ids chronological without sorting.
    expected_per_day = paths.qd / seg.job_hours / _DAYS_PER_WEEK
    counts = rng.poisson(
        np.broadcast_to(expected_per_day[:, None, :], (n_weeks, _DAYS_PER_WEEK, n))
    )
    counts = counts.ravel()
    week, day, segment = (
        a.ravel() for a in np.indices((n_weeks, _DAYS_PER_WEEK, n), dtype=np.int64)
    )
    # Jobs look up their cell's week, day and segment: gathers from the small per-cell
    # arrays are several times faster than repeating each of them or dividing a job index.
    job_cell = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    job_segment = segment[job_cell]
    job_week_segment = (week * n + segment)[job_cell]
    job_day = (week * _DAYS_PER_WEEK + day).astype(np.int32)[job_cell]
    n_jobs = job_segment.size

    rate = paths.p.ravel()[job_week_segment]
    fill = _MATCH_RATE * np.minimum(1.0, paths.qs / paths.qd)
    hired = rng.random(n_jobs) < fill.ravel()[job_week_segment]
    hours = seg.job_hours[job_segment] * np.exp(
        _JOB_HOURS_LOG_SD * rng.standard_normal(n_jobs) - _JOB_HOURS_LOG_SD**2 / 2
    )
    hired_rate = rate * np.exp(_HIRED_RATE_LOG_SD * rng.standard_normal(n_jobs))
    budget_rate = rate * np.exp(rng.normal(_BUDGET_LOG_MEAN, _BUDGET_LOG_SD, n_jobs))
    # in a regional market the segment's clients are of its region
    region = seg.region[job_segment] if spec.regional else rng.integers(0, len(regions), n_jobs)

    job_segment_index = pa.array(job_segment)
    return pa.Table.from_arrays(
        [
            _sequential_ids("J", n_jobs, min_width=9),
            _dates(spec, job_day),
            keys["category"].take(job_segment_index),
            keys["tier"].take(job_segment_index),
            regions.take(pa.array(region)),
            hours,
            budget_rate,
            hired,
            pa.array(hired_rate, mask=~hired),
        ],
        schema=JOBS_SCHEMA,
    )


def _supply_table(
    spec: SimulationSpec,
    seg: _Segments,
    paths: _Paths,
    keys: dict[str, pa.Array],
    regions: pa.Array,
    rng: np.random.Generator,
) -> pa.Table:
    n_weeks, n = spec.weeks, spec.segments
    n_freelancers = int(seg.pool_size.sum())
    freelancer_segment = np.repeat(np.arange(n, dtype=np.int64), seg.pool_size)
    anchor = np.zeros(n_freelancers, dtype=np.bool_)
    anchor[np.cumsum(seg.pool_size) - seg.pool_size] = True
    participation = np.where(anchor, 1.0, rng.uniform(0.6, 1.0, n_freelancers))
    capacity = np.exp(rng.normal(0.0, 0.5, n_freelancers))
    ask_premium = rng.normal(0.0, 0.14, n_freelancers)
    # in a regional market the pool's freelancers are of its region
    freelancer_region = (
        seg.region[freelancer_segment]
        if spec.regional
        else rng.integers(0, len(regions), n_freelancers)
    )

    listed = rng.random((n_weeks, n_freelancers)) < participation
    row_week, row_freelancer = np.nonzero(listed)  # week-major, like a weekly snapshot log
    n_rows = row_week.size
    zero = (rng.random(n_rows) < _ZERO_HOURS_SHARE) & ~anchor[row_freelancer]
    weight = capacity[row_freelancer] * np.exp(rng.normal(0.0, 0.3, n_rows)) * ~zero
    week_segment = row_week * n + freelancer_segment[row_freelancer]
    weight_total = np.bincount(week_segment, weights=weight, minlength=n_weeks * n)
    available_hours = paths.qs.ravel()[week_segment] * weight / weight_total[week_segment]
    ask_rate = paths.p.ravel()[week_segment] * np.exp(
        ask_premium[row_freelancer] + rng.normal(0.0, 0.05, n_rows)
    )

    row_segment_index = pa.array(freelancer_segment[row_freelancer])
    return pa.Table.from_arrays(
        [
            _sequential_ids("F", n_freelancers, min_width=6).take(pa.array(row_freelancer)),
            _dates(spec, (row_week * _DAYS_PER_WEEK).astype(np.int32)),
            keys["category"].take(row_segment_index),
            keys["tier"].take(row_segment_index),
            regions.take(pa.array(freelancer_region[row_freelancer])),
            available_hours,
            ask_rate,
        ],
        schema=SUPPLY_SCHEMA,
    )


def _draw_adjacency(
    seg: _Segments, rng: np.random.Generator
) -> tuple[IntArray, IntArray, FloatArray]:
    """Edges (from, to, friction $/h), sorted by from then to; none in a one-category family."""
    n_cat = seg.category_rate_factor.size
    category = np.arange(n_cat, dtype=np.int64)
    family_start = category - category % FAMILY_SIZE
    family_size = np.minimum(FAMILY_SIZE, n_cat - family_start)
    linked = family_size >= 2
    if not linked.any():
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    source, start, size = category[linked], family_start[linked], family_size[linked]
    # Offsets in 1..f-1 reach every other category of the family; the second offset skips
    # the first so the two edges never coincide. With one family every bound equals C and
    # numpy draws the same stream as for the scalar bound C, which keeps the edges of
    # markets of up to FAMILY_SIZE categories, the committed sample among them, unchanged.
    first_offset = rng.integers(1, size)
    second_offset = rng.integers(1, np.maximum(size - 1, 2))
    second_offset += second_offset >= first_offset
    has_second = (rng.random(source.size) < 0.5) & (size >= 3)
    position = source - start
    edge_from = np.concatenate([source, source[has_second]])
    edge_to = np.concatenate(
        [
            start + (position + first_offset) % size,
            (start + (position + second_offset) % size)[has_second],
        ]
    )
    intermediate_rate = _TIER_RATE_USD[1] * seg.category_rate_factor[edge_from]
    friction = np.round(rng.uniform(0.05, 0.20, edge_from.size) * intermediate_rate, 2)
    order = np.lexsort((edge_to, edge_from))
    return edge_from[order], edge_to[order], friction[order]


def _cross_family(
    spec: SimulationSpec,
    seg: _Segments,
    edge_from: IntArray,
    edge_to: IntArray,
    friction: FloatArray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, FloatArray]:
    """The family edges and Poisson(``cross_family_edges``) more per category, each to a
    category of another family drawn uniformly (repeats dropped), friction as a family
    edge's; sorted by from then to."""
    n_cat = seg.category_rate_factor.size
    if n_cat <= FAMILY_SIZE:  # one family: no other family to reach
        return edge_from, edge_to, friction
    count = rng.poisson(spec.cross_family_edges, n_cat)
    source = np.repeat(np.arange(n_cat, dtype=np.int64), count)
    # uniform over the categories outside the source's family [start, start + size)
    start = source - source % FAMILY_SIZE
    size = np.minimum(FAMILY_SIZE, n_cat - start)
    pick = (rng.random(source.size) * (n_cat - size)).astype(np.int64)
    target = np.where(pick < start, pick, pick + size)
    cost = np.round(
        rng.uniform(0.05, 0.20, source.size) * _TIER_RATE_USD[1] * seg.category_rate_factor[source],
        2,
    )
    every_from = np.concatenate([edge_from, source])
    every_to = np.concatenate([edge_to, target])
    _, first = np.unique(every_from * n_cat + every_to, return_index=True)
    every_cost = np.concatenate([friction, cost])
    order = first[np.lexsort((every_to[first], every_from[first]))]
    return every_from[order], every_to[order], every_cost[order]


def _draw_tier_moves(spec: SimulationSpec, seg: _Segments, rng: np.random.Generator) -> _Edges:
    """Each pool below the expert tier serves the next tier up of its category (in its
    region) with probability ``tier_moves``, at a friction of U(0.7, 1.1) × the gap
    between the two tiers' reference rates: some moves pay, some do not."""
    n, up = spec.segments, spec.segment_regions  # the next tier is R positions on
    pool = np.flatnonzero(seg.tier < len(TIERS) - 1)
    pool = pool[(pool + up < n) & (rng.random(pool.size) < spec.tier_moves)]
    gap = seg.reference_rate[pool + up] - seg.reference_rate[pool]
    cost = np.round(rng.uniform(0.7, 1.1, pool.size) * np.maximum(gap, 0.0), 2)
    return _Edges(pool, pool + up, cost)


def _draw_remote_work(spec: SimulationSpec, seg: _Segments, rng: np.random.Generator) -> _Edges:
    """Each pool (c, t, r) serves (c, t, r') of every other region r' with probability
    ``remote_work``, at a friction of U(0.05, 0.20) × the pool's reference rate; sorted
    by pool, then region. None outside a regional market (R = 1: no other region)."""
    n, n_region = spec.segments, spec.segment_regions
    pool = np.repeat(np.arange(n, dtype=np.int64), n_region)
    region = np.tile(np.arange(n_region, dtype=np.int64), n)
    segment = pool - seg.region[pool] + region  # same category and tier, region r'
    candidate = (region != seg.region[pool]) & (segment < n)
    pool, segment = pool[candidate], segment[candidate]
    chosen = rng.random(pool.size) < spec.remote_work
    pool, segment = pool[chosen], segment[chosen]
    share = rng.uniform(*_REMOTE_FRICTION_SHARE, pool.size)
    return _Edges(pool, segment, np.round(share * seg.reference_rate[pool], 2))


def _adjacency_table(
    spec: SimulationSpec,
    categories: pa.Array,
    keys: dict[str, pa.Array],
    edge_from: IntArray,
    edge_to: IntArray,
    friction: FloatArray,
    named: _Edges,
) -> pa.Table:
    """The category edges (each tier and region within its own), then with
    ``tier_moves`` or ``remote_work`` the segment edges those draw (``named``) as rows
    that name their tiers and, in a regional market, regions (contract v1.1; the category
    edges' left blank)."""
    if not (spec.tier_moves or spec.remote_work):
        return pa.Table.from_arrays(
            [categories.take(edge_from), categories.take(edge_to), friction],
            schema=ADJACENCY_SCHEMA,
        )
    blank = pa.nulls(edge_from.size, pa.string())
    ends = (pa.array(named.pool), pa.array(named.segment))
    columns = [
        pa.concat_arrays([categories.take(edge_from), keys["category"].take(ends[0])]),
        pa.concat_arrays([categories.take(edge_to), keys["category"].take(ends[1])]),
        np.concatenate([friction, named.friction]),
    ]
    for key in spec.segment_keys[1:]:  # from_<key>, to_<key>, as in the schema
        columns += [pa.concat_arrays([blank, keys[key].take(end)]) for end in ends]
    schema = REGIONAL_ADJACENCY_SCHEMA if spec.regional else TIERED_ADJACENCY_SCHEMA
    return pa.Table.from_arrays(columns, schema=schema)


#: fees the written configuration says were in force (they do not move the history)
CLIENT_FEE, FREELANCER_FEE = 0.05, 0.10


def _budget(catalogue: pa.Table) -> float:
    """A tenth of what the whole catalogue costs, in whole thousands of dollars."""
    full = pc.sum(pc.multiply(catalogue["cost_per_unit"], catalogue["max_units"])).as_py()
    return float(max(1000.0, round(0.1 * full / 1000.0) * 1000.0))


def _interventions_table(
    seg: _Segments,
    categories: pa.Array,
    edge_from: IntArray,
    edge_to: IntArray,
    friction: FloatArray,
    rng: np.random.Generator,
) -> pa.Table:
    n_cat = len(categories)
    source = np.arange(n_cat, dtype=np.int64)
    weekly_gmv = np.bincount(
        seg.category, weights=seg.reference_hours * seg.reference_rate, minlength=n_cat
    )
    # each category's reskill lever cheapens its first edge (edges are sorted by source)
    first_edge = np.unique(edge_from, return_index=True)[1]
    reskill_from = edge_from[first_edge]
    n_reskill = reskill_from.size

    category = np.concatenate([source, reskill_from, source])
    kind = np.repeat(np.arange(3, dtype=np.int64), [n_cat, n_reskill, n_cat])
    to_category = np.concatenate([np.full(n_cat, -1), edge_to[first_edge], np.full(n_cat, -1)])
    cost = np.concatenate(
        [
            0.02 * weekly_gmv * 8 * rng.uniform(0.6, 1.4, n_cat),
            rng.uniform(1000.0, 5000.0, n_reskill),
            0.005 * weekly_gmv * 13 * rng.uniform(0.8, 1.2, n_cat),
        ]
    )
    max_units = np.concatenate(
        [np.full(n_cat, 10), np.full(n_reskill, 4), np.full(n_cat, 10)]
    ).astype(np.int64)
    effect = np.concatenate([np.full(n_cat, 0.02), friction[first_edge] / 4, np.full(n_cat, 0.005)])

    order = np.lexsort((kind, category))
    category_name = categories.take(pa.array(category[order]))
    kind_name = pa.array(INTERVENTION_KINDS).take(pa.array(kind[order]))
    target = to_category[order]
    target_name = categories.take(pa.array(np.where(target >= 0, target, 0), mask=target < 0))
    base_id = pc.binary_join_element_wise(kind_name, category_name, ":")
    reskill_id = pc.binary_join_element_wise(base_id, target_name, "->")  # null unless reskill
    return pa.Table.from_arrays(
        [
            pc.coalesce(reskill_id, base_id),
            category_name,
            kind_name,
            np.maximum(1.0, np.round(cost[order])),
            max_units[order],
            effect[order],
            target_name,
        ],
        schema=INTERVENTIONS_SCHEMA,
    )


def _truth_table(
    spec: SimulationSpec, seg: _Segments, paths: _Paths, keys: dict[str, pa.Array]
) -> pa.Table:
    last, following = spec.weeks - 1, spec.weeks
    p_star = np.exp(paths.log_p_star[last])
    demand_at_clearing = np.exp(
        seg.a + seg.eps * paths.log_p_star[last] + seg.gamma_d * paths.zd[last] + paths.u[last]
    )
    last_week = _dates(spec, np.full(spec.segments, last * _DAYS_PER_WEEK, dtype=np.int32))
    return pa.Table.from_arrays(
        [
            *keys.values(),
            seg.thin,
            seg.eps,
            seg.eta,
            seg.category_eps[seg.category],
            seg.category_eta[seg.category],
            seg.a,
            seg.b,
            seg.gamma_d,
            seg.gamma_s,
            seg.stickiness,
            seg.rho,
            seg.sigma_u,
            seg.sigma_v,
            seg.reference_rate,
            seg.reference_hours,
            seg.job_hours,
            seg.pool_size,
            last_week,
            paths.u[last],
            paths.v[last],
            paths.p[last],
            p_star,
            demand_at_clearing,
            paths.qd[last],
            paths.qs[last],
            _dates(spec, np.full(spec.segments, following * _DAYS_PER_WEEK, dtype=np.int32)),
            np.exp(paths.log_p_star[following]),
        ],
        schema=_keyed(TRUTH_SCHEMA, spec),
    )


def _weekly_truth(
    spec: SimulationSpec, seg: _Segments, paths: _Paths, keys: dict[str, pa.Array]
) -> pa.Table:
    """Per segment and week, the logged weeks and the next one (``logged`` false): whether
    the segment is thin, the latent sticky rate, the clearing rate, the hours the true
    curves give at the sticky rate, and the shocks."""
    n_weeks, n = paths.p.shape
    week = np.repeat(np.arange(n_weeks, dtype=np.int32), n)
    segment = pa.array(np.tile(np.arange(n), n_weeks))
    return pa.Table.from_arrays(
        [
            *(key.take(segment) for key in keys.values()),
            _dates(spec, week * _DAYS_PER_WEEK),
            np.tile(seg.thin, n_weeks),
            week < spec.weeks,
            paths.p.ravel(),
            np.exp(paths.log_p_star).ravel(),
            paths.qd.ravel(),
            paths.qs.ravel(),
            paths.u.ravel(),
            paths.v.ravel(),
        ],
        schema=_keyed(TRUTH_WEEKLY_SCHEMA, spec),
    )


def _keyed(schema: pa.Schema, spec: SimulationSpec) -> pa.Schema:
    """A truth schema with ``region`` after ``tier`` in a regional market."""
    if not spec.regional:
        return schema
    return schema.insert(schema.get_field_index("tier") + 1, pa.field("region", pa.string()))


def _category_names(n_categories: int) -> pa.Array:
    readable = pa.array(READABLE_CATEGORIES[:n_categories], pa.string())
    numbered = _sequential_ids("cat_", n_categories, min_width=3)[len(readable) :]
    return pa.concat_arrays([readable, numbered])


def _dates(spec: SimulationSpec, day_offsets: npt.NDArray[np.integer]) -> pa.Array:
    """date32 array of ``spec.start`` plus ``day_offsets`` days."""
    first_day = (spec.start - _EPOCH).days
    return pa.array((day_offsets + first_day).astype(np.int32), type=pa.date32())


# ASCII digits of 0000..9999, one row per number.
_DIGITS_4 = (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1]) % 10 + ord("0")).astype(
    np.uint8
)


def _sequential_ids(prefix: str, n: int, min_width: int) -> pa.Array:
    """``prefix`` + zero-padded 0..n-1, e.g. ``J000000000``; built as one byte buffer.

    Formatting 10⁷ ids per row in Python or through pyarrow's int→string cast plus padding
    takes seconds; writing the ASCII bytes of a fixed-width layout takes a fraction of one.
    """
    width = max(min_width, len(str(max(n - 1, 0))))
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    row = head.size + width
    if (n + 1) * row > np.iinfo(np.int32).max:
        raise ValueError(
            f"{n:,} ids of {row} characters exceed one 2 GiB string column; simulate fewer rows"
        )
    buffer = np.empty((n, row), dtype=np.uint8)
    buffer[:, : head.size] = head
    buffer[:, head.size :] = _digit_matrix(n, width)
    offsets = np.arange(0, (n + 1) * row, row, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buffer))


def _digit_matrix(n: int, width: int) -> npt.NDArray[np.uint8]:
    """(n, width) ASCII digits of 0..n-1: the last four cycle through 0000..9999 within
    blocks of 10⁴ and the leading ones are the (recursively built) digits of the block."""
    blocks = -(-n // 10_000)
    low = min(width, 4)
    out = np.empty((blocks, 10_000, width), dtype=np.uint8)
    out[:, :, width - low :] = _DIGITS_4[:, 4 - low :]
    if width > 4:
        out[:, :, : width - 4] = _digit_matrix(blocks, width - 4)[:, None, :]
    return out.reshape(-1, width)[:n]
