"""Issue 19 §5: failures of the machine under a command give the documented exit code and
one line, never a traceback — a full disk, a read-only store, an unwritable --out, a
store whose `runs` is a file — and `pricing --help` lists every code.

Real processes throughout. The full disk is a tmpfs of 64 KiB filled to the last byte
and the read-only store a read-only bind mount, when this process may mount (root);
otherwise :mod:`faults` and chmod stand in (see :mod:`storekit`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from storekit import CLI, LAST_TINY, MOUNT, cli, full_disk, read_only, store_files, tiny_market

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.runs.pipeline import run_batch
from pricing.store.store import RunStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_market(tmp_path_factory.mktemp("tiny") / "market")


@pytest.fixture(scope="module")
def stored(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stored") / "store"
    run_batch(tiny, store=root, as_of=dt.date.fromisoformat(LAST_TINY))
    return root


@pytest.fixture
def store(stored: Path, tmp_path: Path) -> Path:
    """A copy of the stored run, for a test to break."""
    return Path(shutil.copytree(stored, tmp_path / "store"))


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "boom.toml"
    path.write_text('name = "boom"\n[[demand]]\nmultiplier = 1.1\n')
    return path


def _one_line(done: subprocess.CompletedProcess[str], code: int, said: str) -> None:
    """Exit ``code``, and on stderr one error line (after any progress) saying ``said``."""
    assert done.returncode == code, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and said in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def _fill(folder: Path) -> None:
    """Write into ``folder`` until its disk is full."""
    if not MOUNT:
        return  # faults.py fails every write there already
    try:
        with (folder / "filler").open("wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
    except OSError:
        pass  # full


def test_a_full_disk_exits_6_storing_and_writing_nothing(
    tiny: Path, stored: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    with full_disk(disk, "64k") as command:
        store = disk / "store"
        _fill(disk)
        ran = subprocess.run(
            [*command, "run", "--data", str(tiny), "--store", str(store), "-q"],
            capture_output=True,
            text=True,
        )
        _one_line(ran, ExitCode.RUN_FAILED, "No space left on device")
        assert "nothing was stored" in ran.stderr
        assert RunStore(store).run_paths() == {}
        assert not [p for p in store.rglob("*") if p.name.startswith(".build=")]
        for args in (
            ["panel", str(tiny), "--out", str(disk / "panel.parquet")],
            ["report", "latest", "--store", str(stored), "--out", str(disk / "r.html")],
        ):
            out = subprocess.run([*command, *args, "-q"], capture_output=True, text=True)
            _one_line(out, ExitCode.RUN_FAILED, "No space left on device")
            assert "nothing was written" in out.stderr
        assert sorted(p.name for p in disk.iterdir()) <= ["filler", "store"]


def test_a_read_only_store_exits_6_for_writers_and_is_read(
    tiny: Path, store: Path, scenario: Path
) -> None:
    before = store_files(store)
    with read_only(store):
        said = "Read-only file system" if MOUNT else "Permission denied"
        for args in (
            ["run", "--data", str(tiny), "--store", str(store)],
            ["whatif", str(scenario), "--store", str(store), "--no-report"],
            ["report", "latest", "--store", str(store)],  # into the stored build
        ):
            _one_line(cli(*args, "-q"), ExitCode.RUN_FAILED, said)
        for args in (["history"], ["sql", "SELECT count(*) FROM guidance"], ["store", "check"]):
            done = cli(*args, "--store", str(store), "-q")
            assert done.returncode == 0, (args, done.stderr)
    assert store_files(store) == before


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_an_unwritable_out_exits_6(tiny: Path, stored: Path, tmp_path: Path, where: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    if where == "under_a_file":
        (folder / "file").write_text("a file, not a folder")
        target, said = folder / "file" / "x", "is a file, not a folder"
    else:
        target, said = folder / "x", "Read-only file system" if MOUNT else "Permission denied"
    with read_only(folder) if where == "read_only" else contextlib.nullcontext():
        for args in (
            ["panel", str(tiny), "--out", f"{target}.parquet"],
            ["report", "latest", "--store", str(stored), "--out", f"{target}.html"],
        ):
            done = cli(*args, "-q")
            _one_line(done, ExitCode.RUN_FAILED, said)
            assert f"cannot write {target}" in done.stderr


def test_a_store_that_is_not_a_store_exits_3(tiny: Path, tmp_path: Path, scenario: Path) -> None:
    """`runs` a file made every command exit 1; a run says so before computing."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "runs").write_text("not a folder")
    for args in (
        ["history"],
        ["sql", "SELECT 1"],
        ["store", "check"],
        ["report", "latest"],
        ["whatif", str(scenario)],
        ["run", "--data", str(tiny)],
    ):
        _one_line(
            cli(*args, "--store", str(store), "-q"), ExitCode.INVALID_INPUT, "is not a run store"
        )
    (tmp_path / "plain").write_text("a file")  # --store itself a file: click's usage error
    plain = cli("history", "--store", str(tmp_path / "plain"), "-q")
    _one_line(plain, ExitCode.USAGE, "is a file")


def test_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for code in ExitCode:
        assert f"{int(code):>5}  " in result.output, code
    done = subprocess.run([*CLI, "--help"], capture_output=True, text=True)
    assert "130  interrupted" in done.stdout
