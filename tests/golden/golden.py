"""The golden run: the sample's nightly run and one what-if, stored, so that a change of
the house that should change no number is checked against it (tests/test_golden.py).

Run this script to (re)write the golden files after a change that moves numbers on
purpose, and say why in the commit:

    .venv/bin/python tests/golden/golden.py

It runs ``pricing run`` on ``data/sample`` and ``pricing whatif`` with
``data/scenarios/design-boom.toml`` into a temporary store, then keeps every stored table
(Parquet, as written) and each report's text. A report's text is its HTML with what
legitimately differs between two runs of the same code on other machines taken out
(:func:`normalized`): the figures (PNG bytes depend on the platform's fonts), the header
rows that describe the machine and the moment (timings, memory, creation time and build,
library versions, where it ran, the data's and configuration's absolute paths), the paths
in the suggested backtest command and a clearing residual at rounding level.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SAMPLE = ROOT / "data" / "sample"
SCENARIO = ROOT / "data" / "scenarios" / "design-boom.toml"
#: the header rows whose values describe the machine and the moment, not the market
VOLATILE_ROWS = ("time", "created", "versions", "ran on", "data", "baseline", "configuration")


def normalized(page: str) -> str:
    """The report's text, without figures and volatile header rows (module docstring)."""
    page = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', 'src="(figure)"', page)
    for row in VOLATILE_ROWS:
        page = re.sub(rf"<tr><td>{row}</td><td>.*?</td></tr>", f"<tr><td>{row}</td></tr>", page)
    # the trust section's suggested command names where the data and the store are
    page = re.sub(
        r"<code>pricing backtest --data \S+ --store \S+</code>",
        "<code>pricing backtest --data (data) --store (store)</code>",
        page,
    )
    # a clearing residual at rounding level depends on the CPU's rounding; above the
    # interior point's own bar (1e-8) it is a number to keep
    return re.sub(
        r"residual (\d\.\de-(\d+))",
        lambda m: m.group(0) if int(m.group(2)) < 9 else "residual (below 1e-8)",
        page,
    )


def produce(store: Path) -> tuple[Path, Path]:
    """Run the sample and the scenario into ``store``; the run's and the scenario's
    folders."""
    cli = [sys.executable, "-m", "pricing.cli"]
    subprocess.run(
        [*cli, "run", "--store", str(store), "-q"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [*cli, "whatif", str(SCENARIO), "--store", str(store), "-q"],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    (run,) = (store / "runs").glob("as_of=*/build=*")
    (scenario,) = (store / "scenarios").glob("baseline=*/scenario=*/build=*")
    return run, scenario


def write(target: Path = HERE / "sample") -> None:
    """Replace the golden files with a fresh run's."""
    with tempfile.TemporaryDirectory() as tmp:
        run, scenario = produce(Path(tmp) / "store")
        if target.exists():
            shutil.rmtree(target)
        for name, folder in (("run", run), ("scenario", scenario)):
            out = target / name
            out.mkdir(parents=True)
            for table in folder.glob("*.parquet"):
                shutil.copy(table, out / table.name)
            text = normalized((folder / "report.html").read_text(encoding="utf-8"))
            (out / "report.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write()
