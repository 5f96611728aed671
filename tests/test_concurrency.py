"""Issue 19 §3 and §10 (Ctrl-C): writers and readers of one store at once, as real
processes, and interrupts.

Every writer is a `pricing run` subprocess on a tiny simulated market (a few seconds
each). The cases of the issue: two runs of the same as-of at once; runs of different
dates where one re-runs the date the other reads as its previous run; readers (`sql`,
`history`, `report latest`) while the date they read is re-run; a reader that holds a
run across a re-run. None may exit 1, and no build may vanish under a reader or hold
only a report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from storekit import CLI, TINY_DATES, cli, tiny_market

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.runs.pipeline import run_batch
from pricing.runs.run import load_run
from pricing.store.snapshot import Snapshot
from pricing.store.store import RunStore

pytestmark = pytest.mark.slow
LAST = TINY_DATES[-1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_market(tmp_path_factory.mktemp("tiny") / "market")


def _run(data: Path, store: Path, as_of: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *CLI,
            "run",
            "--data",
            str(data),
            "--store",
            str(store),
            "--as-of",
            as_of,
            "--json",
            "-q",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(*procs: subprocess.Popen[str]) -> list[dict[str, object]]:
    """Wait for every process; each must exit 0 with its JSON summary."""
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        out.append(json.loads(stdout))
    return out


def _healthy(store: Path) -> dict[str, str]:
    """`store check` finds no damage, and every build folder is a whole build (no
    folder holding only a report); the current build of each date."""
    check = cli("store", "check", "--store", str(store), "--json", "-q")
    assert check.returncode == 0, check.stdout + check.stderr
    for build in store.glob("runs/*/build=*"):
        assert (build / "manifest.json").is_file(), sorted(p.name for p in build.iterdir())
    return {d.isoformat(): p.name for d, p in RunStore(store).run_paths().items()}


def test_two_runs_of_the_same_as_of_at_once_both_succeed(tiny: Path, tmp_path: Path) -> None:
    """The first to commit exited 1 after its run was stored (its build deleted under its
    report), once leaving a folder holding only report.html."""
    store = tmp_path / "store"
    first, second = _finish(_run(tiny, store, LAST), _run(tiny, store, LAST))
    current = _healthy(store)[LAST]
    assert current in (Path(str(first["run_path"])).name, Path(str(second["run_path"])).name)
    assert (store / "runs" / f"as_of={LAST}" / current / "report.html").is_file()
    _finish(_run(tiny, store, LAST))  # no reader now: the superseded builds go
    assert len(list((store / "runs" / f"as_of={LAST}").glob("build=*"))) == 1


def test_a_run_whose_previous_run_is_rerun_meanwhile_succeeds(tiny: Path, tmp_path: Path) -> None:
    """A run read its previous run while another process re-ran that date: it failed
    with exit 6 once the previous build was deleted under it."""
    store = tmp_path / "store"
    previous, last = TINY_DATES[1], TINY_DATES[2]
    _finish(_run(tiny, store, previous))
    later, again = _finish(_run(tiny, store, last), _run(tiny, store, previous))
    assert later["previous_run"] == previous and again["as_of"] == previous
    assert set(_healthy(store)) == {previous, last}


def test_readers_while_their_run_is_rerun_exit_0(tiny: Path, tmp_path: Path) -> None:
    """`sql`, `history` and `report latest` (which writes into the build it reads) while
    the latest run is re-run: they failed when the build went under them."""
    store = tmp_path / "store"
    run_batch(tiny, store=store, as_of=dt.date.fromisoformat(LAST))
    writers = [_run(tiny, store, LAST)]
    readers = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for args in (
            [
                "sql",
                "SELECT as_of, count(*) AS n FROM guidance "
                "JOIN equilibrium USING (as_of, category, tier) GROUP BY 1",
            ],
            ["history", "--segment", "/".join(_a_segment(store))],
            ["report", "latest"],
            ["report", "latest", "--out", str(tmp_path / "copy.html")],
        ):
            done = cli(*args, "--store", str(store), "-q")
            assert done.returncode == 0, (args, done.stderr)
            assert "warning" not in done.stderr, done.stderr  # nothing skipped as damaged
            readers += 1
        if writers[-1].poll() is not None:
            if len(writers) == 2:
                break
            writers.append(_run(tiny, store, LAST))
    _finish(*writers)
    assert readers >= 4
    _healthy(store)


def _a_segment(store: Path) -> tuple[str, str]:
    with Snapshot.open(RunStore(store)) as snapshot:
        row = snapshot.query("SELECT category, tier FROM guidance LIMIT 1").iloc[0]
    return str(row["category"]), str(row["tier"])


def test_a_held_run_outlives_its_rerun_and_goes_once_released(tiny: Path, tmp_path: Path) -> None:
    """A reader that holds a run (a notebook's `load_run`, a long query) keeps reading it
    whole after a re-run replaced it; the first commit after it lets go removes it."""
    store = tmp_path / "store"
    run_batch(tiny, store=store, as_of=dt.date.fromisoformat(LAST))
    held = load_run("latest", store)
    snapshot = Snapshot.open(RunStore(store))
    old = held.path
    (rerun,) = _finish(_run(tiny, store, LAST))
    assert Path(str(rerun["run_path"])) != old and old.is_dir()  # superseded, still there
    assert held.guidance is not None and len(held.report().html) > 0  # read after the re-run
    assert snapshot.query("SELECT count(*) AS n FROM guidance")["n"].iloc[0] == 3
    assert snapshot.run_paths[dt.date.fromisoformat(LAST)] == old
    held.close()
    snapshot.close()
    _finish(_run(tiny, store, LAST))
    assert not old.exists()
    _healthy(store)


# ---------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_before_the_commit_stores_nothing_and_says_so(tiny: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [*CLI, "run", "--data", str(tiny), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None
        seen = ""
        while "[3/8]" not in seen:  # estimating
            char = proc.stderr.read(1)
            assert char, seen
            seen += char
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
    assert proc.returncode == ExitCode.INTERRUPTED
    assert "Interrupted: nothing was stored" in rest and "Traceback" not in rest
    assert RunStore(store).run_paths() == {}


def test_ctrl_c_right_after_the_commit_names_the_stored_run(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interrupt lands just after the rename (a stand-in for Ctrl-C there: the
    clean-up that follows raises KeyboardInterrupt): the run is stored, and said."""
    store = tmp_path / "store"

    def interrupted(self: RunStore) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(RunStore, "_retire", interrupted)
    result = CliRunner().invoke(
        main, ["run", "--data", str(tiny), "--store", str(store), "--as-of", LAST, "-q"]
    )
    assert result.exit_code == ExitCode.INTERRUPTED
    (path,) = RunStore(store).run_paths().values()
    assert f"Interrupted: run {LAST} was stored in {path} (complete)" in result.stderr
    assert (path / "report.html").is_file() and (path / "manifest.json").is_file()


def test_ctrl_c_as_the_run_is_stored_leaves_a_whole_run_or_none(tiny: Path, tmp_path: Path) -> None:
    """SIGINT sent the moment the new build appears, to a real process: it exits 0 or
    130, and 130 names the build, which is whole."""
    store = tmp_path / "store"
    folder = store / "runs" / f"as_of={LAST}"
    for _ in range(3):
        before = set(folder.glob("build=*")) if folder.exists() else set()
        with subprocess.Popen(
            [*CLI, "run", "--data", str(tiny), "--store", str(store), "--as-of", LAST, "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            while not (set(folder.glob("build=*")) - before) and proc.poll() is None:
                time.sleep(0.0005)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
        assert proc.returncode in (0, ExitCode.INTERRUPTED), stderr
        (new,) = set(folder.glob("build=*")) - before
        if proc.returncode == ExitCode.INTERRUPTED:
            assert f"was stored in {new}" in stderr
        _healthy(store)
