"""Configuration files: defaults, round trip, and every problem reported with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricing.config import (
    DataConfig,
    EstimationConfig,
    RunConfig,
    load_config,
    parse_config,
    resolve_config,
)
from pricing.errors import ConfigError


def test_defaults() -> None:
    config = load_config(None)
    assert config.segment_keys == ("category", "tier")
    assert config.estimation.shifter_columns == ()


def test_round_trip(tmp_path: Path) -> None:
    config = RunConfig(
        data=DataConfig(segment_keys=("category", "tier", "region")),
        estimation=EstimationConfig(
            demand_instruments=("fx_index",),
            supply_instruments=("client_marketing_index",),
            controls=("fx_index", "holiday"),
        ),
    )
    path = tmp_path / "pricing.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config
    assert config.estimation.shifter_columns == ("fx_index", "client_marketing_index", "holiday")


def test_segment_keys_are_canonically_ordered() -> None:
    assert DataConfig(segment_keys=("tier", "category")).segment_keys == ("category", "tier")


def test_every_problem_reported_with_suggestions(tmp_path: Path) -> None:
    path = tmp_path / "pricing.toml"
    path.write_text(
        '[data]\nsegment_keys = ["tier", "regoin"]\n'
        '[estimation]\nsupply_instrument = ["x"]\n'
        "[estimaton]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "3 problem(s)" in text
    assert "unknown segment key(s) ['regoin']" in text
    assert "did you mean 'supply_instruments'" in text
    assert "did you mean 'estimation'" in text


def test_category_is_required_in_segment_keys() -> None:
    with pytest.raises(ConfigError, match="must include 'category'"):
        parse_config({"data": {"segment_keys": ["tier"]}})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_resolve_prefers_explicit_then_data_dir(tmp_path: Path) -> None:
    assert resolve_config(tmp_path, None) == (RunConfig(), None)
    (tmp_path / "pricing.toml").write_text('[estimation]\ncontrols = ["z"]\n')
    config, source = resolve_config(tmp_path, None)
    assert config.estimation.controls == ("z",) and source == tmp_path / "pricing.toml"
    explicit = tmp_path / "other.toml"
    explicit.write_text("")
    assert resolve_config(tmp_path, explicit) == (RunConfig(), explicit)
