"""The batched estimator against linearmodels, group by group, and its failure handling.

Tolerance: coefficients and standard errors agree with linearmodels to 1e-8 relative.
Both solve the same least-squares problems in double precision (we by batched QR, it by
pinv/lstsq), so they differ by rounding amplified by the condition number of the design,
about 1e-12 here; 1e-8 leaves room for that and still catches any formula difference
(a degrees-of-freedom slip changes a standard error by ~1e-2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from linearmodels.iv import IV2SLS

from pricing.errors import EstimationError
from pricing.estimation.iv import estimate_curve

RTOL = 1e-8
LM_COV = {
    "HC1": ("robust", True),
    "unadjusted": ("unadjusted", False),
    "cluster": ("clustered", True),
    "HAC": ("kernel", True),
}


def random_panel(groups: int, seed: int) -> pd.DataFrame:
    """Unbalanced groups, an endogenous price, two instruments and two controls."""
    rng = np.random.default_rng(seed)
    frames = []
    for g in range(groups):
        n = int(rng.integers(25, 60))
        z1, z2, c1, c2 = rng.normal(size=(4, n))
        u = rng.normal(scale=0.3, size=n)
        log_p = 3 + 0.5 * z1 - 0.3 * z2 + 0.2 * c1 + 0.5 * u + rng.normal(scale=0.2, size=n)
        log_q = 5 - rng.uniform(0.5, 2) * log_p + 0.4 * c1 - 0.2 * c2 + u * (1 + 0.5 * np.abs(z1))
        frames.append(
            pd.DataFrame(
                {
                    "segment": f"s{g:02d}",
                    "tier": ["entry", "expert"][g % 2],
                    "q": np.exp(log_q),
                    "p": np.exp(log_p),
                    "z1": z1,
                    "z2": z2,
                    "c1": c1,
                    "c2": c2,
                    "month": rng.integers(0, 4, n),
                    "cluster": np.arange(n) // 5,
                    "t": np.arange(n),
                }
            )
        )
    # shuffled rows: the estimator must not rely on the frame's order
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)


def oracle(
    group: pd.DataFrame, instruments: list[str], controls: list[str], cov: str, fe: str | None
):
    exog = group[controls].copy()
    if fe is None:
        exog.insert(0, "const", 1.0)
    else:
        exog = pd.concat([exog, pd.get_dummies(group[fe], prefix=fe, dtype=float)], axis=1)
    dep = np.log(group["q"])
    endog = np.log(group["p"]).rename("log_p")
    model = (
        IV2SLS(dep, exog, endog, group[instruments])
        if instruments
        else IV2SLS(dep, pd.concat([exog, endog], axis=1), None, None)
    )
    cov_type, debiased = LM_COV[cov]
    kwargs: dict[str, object] = {}
    if cov == "cluster":
        kwargs["clusters"] = group["cluster"]
    if cov == "HAC":  # the plug-in bandwidth ⌈4 (n/100)^(2/9)⌉, stated explicitly
        kwargs = {
            "kernel": "bartlett",
            "bandwidth": int(np.ceil(4 * (len(group) / 100) ** (2 / 9))),
        }
    return model.fit(cov_type=cov_type, debiased=debiased, **kwargs)


@pytest.mark.parametrize("cov", ["HC1", "unadjusted", "cluster", "HAC"])
@pytest.mark.parametrize("instruments", [["z1", "z2"], ["z1"], []], ids=["2iv", "1iv", "ols"])
@pytest.mark.parametrize("fe", [None, "month"])
def test_matches_linearmodels_per_group(cov: str, instruments: list[str], fe: str | None) -> None:
    frame = random_panel(12, seed=len(instruments) * 10 + (fe is not None))
    if cov == "HAC":  # HAC reads each group's rows in frame order as consecutive periods
        frame = frame.sort_values(["segment", "t"])
    controls = ["c1", "c2"]
    fit = estimate_curve(
        frame,
        "q",
        "p",
        instruments=instruments,
        controls=controls,
        by=["segment", "tier"],
        fixed_effects=fe,
        cov=cov,  # type: ignore[arg-type]
        clusters="cluster" if cov == "cluster" else None,
    ).to_frame()
    assert len(fit) == 12
    for _, row in fit.iterrows():
        group = frame[(frame["segment"] == row["segment"]) & (frame["tier"] == row["tier"])]
        expected = oracle(group, instruments, controls, cov, fe)
        assert row["elasticity"] == pytest.approx(expected.params["log_p"], rel=RTOL)
        assert row["std_error"] == pytest.approx(expected.std_errors["log_p"], rel=RTOL)
        assert row["n"] == len(group)
        assert row["method"] == ("2SLS" if instruments else "OLS")


@pytest.mark.parametrize("cov", ["HC1", "unadjusted"])
def test_first_stage_f_is_the_wald_test_of_the_instruments(cov: str) -> None:
    frame = random_panel(5, seed=3)
    fit = estimate_curve(frame, "q", "p", ["z1", "z2"], ["c1"], by=["segment"], cov=cov)
    for _, row in fit.to_frame().iterrows():
        group = frame[frame["segment"] == row["segment"]]
        exog = group[["c1", "z1", "z2"]].assign(const=1.0)
        cov_type, _ = LM_COV[cov]
        # the df-corrected first-stage covariance, whichever default the main fit uses
        first = IV2SLS(np.log(group["p"]), exog, None, None).fit(cov_type=cov_type, debiased=True)
        b = first.params[["z1", "z2"]].to_numpy()
        V = first.cov.loc[["z1", "z2"], ["z1", "z2"]].to_numpy()
        assert row["first_stage_f"] == pytest.approx(b @ np.linalg.solve(V, b) / 2, rel=RTOL)
    if cov == "unadjusted":  # the classic F: ((RSS_r − RSS_u) / q) / (RSS_u / (n − k_z))
        group = frame[frame["segment"] == "s00"]
        p = np.log(group["p"]).to_numpy()
        full = np.column_stack([np.ones(len(group)), group[["c1", "z1", "z2"]]])

        def rss(a: np.ndarray) -> float:
            e = p - a @ np.linalg.lstsq(a, p, rcond=None)[0]
            return float(e @ e)

        f = ((rss(full[:, :2]) - rss(full)) / 2) / (rss(full) / (len(group) - 4))
        assert fit.to_frame().iloc[0]["first_stage_f"] == pytest.approx(f, rel=RTOL)


@pytest.mark.parametrize("cov", ["HC1", "unadjusted", "cluster", "HAC"])
def test_intervals_are_linearmodels_own(cov: str) -> None:
    """A debiased covariance (HC1, cluster, HAC: n/(n−k)) gives t(n−k) intervals, the
    unadjusted one normal intervals, as linearmodels' ``conf_int`` (1e-8, as above)."""
    frame = random_panel(1, seed=5).sort_values("t")
    fit = estimate_curve(
        frame,
        "q",
        "p",
        ["z1"],
        ["c1"],
        cov=cov,  # type: ignore[arg-type]
        clusters="cluster" if cov == "cluster" else None,
        level=0.9,
    )
    row = fit.to_frame().iloc[0]
    expected = oracle(frame, ["z1"], ["c1"], cov, None).conf_int(0.9).loc["log_p"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (expected["lower"], expected["upper"]), rel=RTOL
    )
    assert np.isnan(row["dof"]) == (cov == "unadjusted")


def test_no_groups_means_one_fit_and_intervals() -> None:
    frame = random_panel(1, seed=5)
    fit = estimate_curve(frame, "q", "p", ["z1"], level=0.9)
    row = fit.to_frame().iloc[0]
    expected = oracle(frame, ["z1"], [], "HC1", None)
    assert row["elasticity"] == pytest.approx(expected.params["log_p"], rel=RTOL)
    assert row["dof"] == len(frame) - 2  # HC1 is debiased: t(n − k)
    assert fit.conf_int(0.95).iloc[0]["upper"] > row["ci_high"]
    assert "2SLS" in fit.summary() and "<table" in fit._repr_html_()


def test_weak_instrument_flagged() -> None:
    rng = np.random.default_rng(0)
    n = 104
    frame = pd.DataFrame(
        {"q": np.exp(rng.normal(size=n)), "p": np.exp(rng.normal(size=n)), "z": rng.normal(size=n)}
    )
    row = estimate_curve(frame, "q", "p", ["z"]).to_frame().iloc[0]
    assert row["first_stage_f"] < 10 and row["flags"] == "weak_instrument"


def test_failures_raise_naming_the_group() -> None:
    frame = random_panel(3, seed=1)
    frame.loc[frame["segment"] == "s01", "q"] = 0.0
    with pytest.raises(EstimationError, match=r"segment=s01: non_positive_quantity \(\d+ rows\)"):
        estimate_curve(frame, "q", "p", ["z1"], by=["segment"])


def test_failures_flagged_and_others_estimated() -> None:
    frame = random_panel(5, seed=2)
    frame.loc[frame["segment"] == "s00", "p"] = -1.0
    frame.loc[frame.index[frame["segment"] == "s01"][:1], "z1"] = np.nan
    frame.loc[frame["segment"] == "s02", "z2"] = frame.loc[frame["segment"] == "s02", "z1"] * 2
    frame = frame[(frame["segment"] != "s03") | (frame["c1"] > 1.5)]  # only a few rows left
    fit = estimate_curve(frame, "q", "p", ["z1", "z2"], ["c1"], by=["segment"], on_error="flag")
    flags = fit.to_frame().set_index("segment")["flags"]
    assert flags["s00"].startswith("non_positive_price")
    assert flags["s01"].startswith("missing_value in z1 (1 rows)")
    assert flags["s02"].startswith("rank_deficient")
    assert flags["s03"].startswith("too_few_observations")
    assert flags["s04"] == ""
    estimates = fit.to_frame().set_index("segment")["elasticity"]
    assert estimates[["s00", "s01", "s02", "s03"]].isna().all()
    ok = frame[frame["segment"] == "s04"]
    assert estimates["s04"] == pytest.approx(
        oracle(ok, ["z1", "z2"], ["c1"], "HC1", None).params["log_p"], rel=RTOL
    )


def test_bad_arguments() -> None:
    frame = random_panel(1, seed=0)
    with pytest.raises(ValueError, match="columns not in the frame"):
        estimate_curve(frame, "q", "price", ["z1"])
    with pytest.raises(ValueError, match="cov must be"):
        estimate_curve(frame, "q", "p", cov="HC3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clusters"):
        estimate_curve(frame, "q", "p", cov="cluster")
    with pytest.raises(ValueError, match="both instrument and control"):
        estimate_curve(frame, "q", "p", ["z1"], ["z1"])


def ewc_oracle(group: pd.DataFrame, instruments: list[str], controls: list[str], terms: int):
    """Equal-weighted cosine (Lazarus, Lewis, Stock and Watson 2018), written out for one
    group straight from its definition: Ω̂ = (1/B) Σ_j Λ_j Λ_j', Λ_j = √(2/n) Σ_t
    cos(πj(t − ½)/n) x̂_t û_t, V = A⁻¹ (n Ω̂) A⁻¹, t_B critical values."""
    from scipy import stats

    n = len(group)
    W = np.column_stack([np.ones(n), group[controls]])
    X = np.column_stack([W, np.log(group["p"])])
    Z = np.column_stack([W, group[instruments]])
    y = np.log(group["q"]).to_numpy()
    Xhat = Z @ np.linalg.lstsq(Z, X, rcond=None)[0]
    A = Xhat.T @ Xhat
    beta = np.linalg.solve(A, Xhat.T @ y)
    scores = Xhat * (y - X @ beta)[:, None]
    t = np.arange(1, n + 1)
    lam = np.array(
        [np.sqrt(2 / n) * np.cos(np.pi * j * (t - 0.5) / n) @ scores for j in range(1, terms + 1)]
    )
    A_inv = np.linalg.inv(A)
    V = A_inv @ (n * lam.T @ lam / terms) @ A_inv
    se = float(np.sqrt(V[-1, -1]))
    c = stats.t.ppf(0.95, terms)
    return float(beta[-1]), se, (beta[-1] - c * se, beta[-1] + c * se)


@pytest.mark.parametrize("bandwidth", [None, 4])
def test_ewc_matches_its_definition(bandwidth: int | None) -> None:
    frame = random_panel(6, seed=9).sort_values(["segment", "t"])
    fit = estimate_curve(
        frame,
        "q",
        "p",
        ["z1", "z2"],
        ["c1"],
        by=["segment"],
        cov="EWC",
        bandwidth=bandwidth,
        level=0.9,
    ).to_frame()
    for _, row in fit.iterrows():
        group = frame[frame["segment"] == row["segment"]]
        terms = bandwidth or round(0.4 * len(group) ** (2 / 3))
        est, se, (lo, hi) = ewc_oracle(group, ["z1", "z2"], ["c1"], terms)
        assert row["dof"] == terms
        assert row["elasticity"] == pytest.approx(est, rel=RTOL)
        assert row["std_error"] == pytest.approx(se, rel=RTOL)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=RTOL)


def test_categorical_keys_with_unused_levels() -> None:
    frame = random_panel(3, seed=4)
    frame["segment"] = pd.Categorical(frame["segment"], categories=["s00", "s01", "s02", "unused"])
    fit = estimate_curve(frame, "q", "p", ["z1"], by=["segment"]).to_frame()
    assert list(fit["segment"]) == ["s00", "s01", "s02"]
    group = frame[frame["segment"] == "s02"]
    expected = oracle(group, ["z1"], [], "HC1", None)
    assert fit.iloc[2]["elasticity"] == pytest.approx(expected.params["log_p"], rel=RTOL)


# ------------------------------------------------------------ issue 19 §7: edge cases
def test_as_many_rows_as_parameters_is_too_few() -> None:
    """OLS with n = k fits exactly: no residual variance, so no standard error (it was
    1e-16 and a zero-width interval). It fails, and with one more row it estimates."""
    frame = random_panel(1, seed=7).head(3)  # intercept, c1, log p: k = 3
    with pytest.raises(EstimationError, match=r"too_few_observations: 3 rows, 3 parameters"):
        estimate_curve(frame, "q", "p", controls=["c1"])
    row = estimate_curve(frame, "q", "p", controls=["c1"], on_error="flag").to_frame().iloc[0]
    assert np.isnan(row["std_error"]) and row["flags"].startswith("too_few_observations")
    four = random_panel(1, seed=7).head(4)
    ok = estimate_curve(four, "q", "p", controls=["c1"]).to_frame().iloc[0]
    assert ok["std_error"] > 1e-6 and ok["ci_high"] > ok["ci_low"]


def test_a_single_cluster_cannot_give_a_clustered_variance() -> None:
    """One cluster's scores sum to zero (the normal equations): SE was 1e-14, F 8e27."""
    frame = random_panel(2, seed=8).assign(cluster=0)
    frame.loc[frame["segment"] == "s01", "cluster"] = np.arange((frame["segment"] == "s01").sum())
    fit = estimate_curve(
        frame, "q", "p", ["z1"], by=["segment"], cov="cluster", clusters="cluster", on_error="flag"
    ).to_frame()
    flags = fit.set_index("segment")["flags"]
    assert flags["s00"].startswith("too_few_clusters: 1")
    assert np.isnan(fit.set_index("segment").loc["s00", "std_error"])
    assert flags["s01"] in ("", "weak_instrument")
    with pytest.raises(EstimationError, match="too_few_clusters"):
        estimate_curve(frame, "q", "p", ["z1"], by=["segment"], cov="cluster", clusters="cluster")


def test_a_first_stage_f_on_a_singular_covariance_is_nan_and_weak() -> None:
    """Two clusters leave the clustered covariance of two instruments rank 1: its Wald
    statistic is noise (it came out negative or ~1e27), so F is NaN and flagged weak;
    on many random panels F is never negative."""
    frame = random_panel(6, seed=9).assign(cluster=lambda f: f["t"] % 2)
    fit = estimate_curve(
        frame, "q", "p", ["z1", "z2"], by=["segment"], cov="cluster", clusters="cluster"
    ).to_frame()
    assert fit["first_stage_f"].isna().all()
    assert (fit["flags"] == "weak_instrument").all()
    for seed in range(5):
        some = random_panel(8, seed=seed).assign(cluster=lambda f: f["t"] % 3)
        f = estimate_curve(
            some, "q", "p", ["z1"], by=["segment"], cov="cluster", clusters="cluster"
        ).to_frame()["first_stage_f"]
        assert ((f >= 0) | f.isna()).all()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("q", np.inf, r"not_finite in q \(1 rows\)"),
        ("q", np.nan, r"missing_value in q \(1 rows\)"),
        ("p", -np.inf, r"not_finite in p \(1 rows\)"),
        ("p", np.nan, r"missing_value in p \(1 rows\)"),
        ("q", 0.0, r"non_positive_quantity \(1 rows\)"),
    ],
)
def test_bad_quantities_and_prices_raise_with_their_own_reason(
    column: str, value: float, reason: str
) -> None:
    """A +inf quantity gave a NaN elasticity, no flag and no error under "raise"; a NaN
    was labelled non_positive."""
    frame = random_panel(2, seed=10)
    frame.loc[frame.index[frame["segment"] == "s01"][0], column] = value
    with pytest.raises(EstimationError, match=f"segment=s01: {reason}"):
        estimate_curve(frame, "q", "p", ["z1"], by=["segment"])
    fit = estimate_curve(frame, "q", "p", ["z1"], by=["segment"], on_error="flag").to_frame()
    assert fit["elasticity"].notna().tolist() == [True, False]


@pytest.mark.parametrize("role", ["clusters", "fixed_effects"])
def test_missing_cluster_ids_and_levels_are_not_a_level_of_their_own(role: str) -> None:
    frame = random_panel(2, seed=11).astype({"cluster": "float64", "month": "float64"})
    column = "cluster" if role == "clusters" else "month"
    frame.loc[frame.index[frame["segment"] == "s00"][:2], column] = np.nan
    kwargs = (
        {"clusters": "cluster", "cov": "cluster"}
        if role == "clusters"
        else {"fixed_effects": "month"}
    )
    with pytest.raises(
        EstimationError, match=rf"segment=s00: missing_value in {column} \(2 rows\)"
    ):
        estimate_curve(frame, "q", "p", ["z1"], by=["segment"], **kwargs)  # type: ignore[arg-type]


def test_a_bandwidth_longer_than_the_sample_is_cut_to_it() -> None:
    """bandwidth = 10^9 would loop 10^9 lags; a group has at most n − 1."""
    frame = random_panel(1, seed=12).sort_values("t")
    long = estimate_curve(frame, "q", "p", ["z1"], cov="HAC", bandwidth=10**9).to_frame()
    cut = estimate_curve(frame, "q", "p", ["z1"], cov="HAC", bandwidth=len(frame) - 1).to_frame()
    # the same sums in the same order: equal up to rounding, 1e-12 is far above it
    assert long["std_error"].iloc[0] == pytest.approx(cut["std_error"].iloc[0], rel=1e-12)
