"""Atomic outputs: a failure at any point leaves the previous output intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricing.inputs.io import atomic_directory, atomic_file


class Boom(Exception):
    pass


def test_atomic_directory_creates_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(Boom), atomic_directory(target) as tmp:
        (tmp / "half.parquet").write_text("partial")
        raise Boom
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)  # not left private like a temp dir


def test_atomic_directory_keeps_previous_on_failure_and_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError), atomic_directory(target):
        pass
    with pytest.raises(Boom), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise Boom
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_file(tmp_path: Path) -> None:
    target = tmp_path / "panel.csv"
    target.write_text("old")
    with pytest.raises(Boom), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "old"
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["panel.csv"]
