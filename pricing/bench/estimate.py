r"""Stage ``estimate``: batched 2SLS elasticities of G segments × 104 weeks.

For G segments the stage simulates with numpy (seeded; setup, not timed) one demand curve
per segment,

    log q_gt = a_g + ε_g log p_gt + 0.5 z_d,gt + u_gt
    log p_gt = c_g + 0.5 z_s,gt + 0.2 z_d,gt + 0.6 u_gt + v_gt     (log p endogenous)

as columns ``segment``, ``hours`` (q), ``rate`` (p), ``fx_index`` (z_s, the instrument)
and ``marketing`` (z_d, a control), and times
:func:`pricing.estimation.iv.estimate_curve` with the instrument, the control and
``by=["segment"]`` (2SLS, HC1 covariance): one call for every segment.

The baseline, measured in the same run, is linearmodels'
``IV2SLS(dep, exog, endog, instr).fit(cov_type="robust", debiased=True)`` in a loop, each
segment's arrays sliced from the frame by ``groupby`` inside the loop: what a user
without a batched estimator writes, computing the same numbers (linearmodels' debiased
robust covariance is HC1). It is timed on the first :data:`BASELINE_SEGMENTS` segments
and scaled linearly to G: the loop's cost per segment does not depend on G, and the
subset is cut from the frame before the clock starts, so the loop's ``groupby`` covers
only those rows. A ratio far below 1 is the speed-up of solving all segments at once;
it should stay flat as G grows (both sides are linear in rows). That both sides agree
(elasticities to about 1e-13) is checked in ``tests/test_iv.py``, not here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.bench.harness import Case
from pricing.estimation.iv import estimate_curve

WEEKS = 104
SEED = 11
#: segments the linearmodels loop is timed on (then scaled to all)
BASELINE_SEGMENTS = 50


def simulate(segments: int, weeks: int = WEEKS, seed: int = SEED) -> pd.DataFrame:
    """``segments`` × ``weeks`` rows of the demand system in the module docstring."""
    rng = np.random.default_rng(seed)
    rows = segments * weeks
    segment = np.repeat(np.arange(segments, dtype=np.int64), weeks)
    a = rng.normal(5.0, 1.0, segments)[segment]
    eps = rng.uniform(-2.0, -0.3, segments)[segment]
    c = rng.normal(3.5, 0.5, segments)[segment]
    z_s, z_d = rng.normal(size=rows), rng.normal(size=rows)
    u, v = rng.normal(0.0, 0.3, rows), rng.normal(0.0, 0.2, rows)
    log_p = c + 0.5 * z_s + 0.2 * z_d + 0.6 * u + v
    log_q = a + eps * log_p + 0.5 * z_d + u
    return pd.DataFrame(
        {
            "segment": segment,
            "hours": np.exp(log_q),
            "rate": np.exp(log_p),
            "fx_index": z_s,
            "marketing": z_d,
        }
    )


def ours(frame: pd.DataFrame) -> pd.DataFrame:
    fit = estimate_curve(
        frame, "hours", "rate", instruments=["fx_index"], controls=["marketing"], by=["segment"]
    )
    return fit.to_frame()


def linearmodels_loop(frame: pd.DataFrame) -> pd.DataFrame:
    """One IV2SLS fit per segment, its arrays built from a groupby slice inside the loop."""
    from linearmodels.iv import IV2SLS

    rows = []
    for segment, g in frame.groupby("segment"):
        dep = np.log(g["hours"])
        exog = g[["marketing"]].assign(const=1.0)
        endog = np.log(g["rate"])
        res = IV2SLS(dep, exog, endog, g["fx_index"]).fit(cov_type="robust", debiased=True)
        rows.append((segment, res.params["rate"], res.std_errors["rate"]))
    return pd.DataFrame(rows, columns=["segment", "elasticity", "std_error"])


def case(segments: int) -> Case:
    """Estimate ``segments`` curves at once, against the linearmodels loop."""
    frame = simulate(segments)
    head = frame[frame["segment"] < BASELINE_SEGMENTS]
    return Case(
        "estimate",
        {"segments": segments, "weeks": WEEKS},
        lambda: ours(frame),
        "linearmodels IV2SLS loop",
        lambda: linearmodels_loop(head),
        baseline_scale=segments / BASELINE_SEGMENTS,
    )
