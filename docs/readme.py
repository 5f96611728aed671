"""Run the README's commands as a newcomer would, and regenerate its output blocks.

The README marks what runs with HTML comments (invisible on the rendered page):

- ``<!-- run:sh -->`` before a fenced shell block: each line runs in bash, with the
  environment's ``pricing`` first on PATH; a ``make TARGET`` line runs the ``pricing``
  commands of that Makefile target instead (never make itself: ``make test`` would run
  this again);
- ``<!-- run:python -->`` before a fenced Python block: the marked blocks run in order as
  one script (one namespace, as in a notebook);
- ``<!-- out:NAME -->`` … ``<!-- /out:NAME -->`` around a fenced text block of
  ``$ pricing …`` lines, each followed by the output it prints on stdout.

Every command must exit 0. The marked shell and Python blocks run, in README order, in
one scratch directory holding a copy of ``data/`` (the sample and the example scenarios)
and the default store ``./pricing-runs``; the output blocks run in order in another,
fresh one, so each shows what a first run prints. Outputs are compared after
:func:`normalized`: what changes from run to run or machine to machine (timestamps,
build stamps, step timings, peak memory, thread counts, the solver's residuals, the
checkout's path) is masked, and a float printed whole (``--json``) compares at 10
significant digits; everything else — rates, hours, counts, column layout — must match
character for character, as printed (rates to the cent).

    python docs/readme.py            # check: run everything, print the differences, exit 1 on any
    python docs/readme.py --write    # make docs: rewrite the output blocks from real runs
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pricing.inputs.io import atomic_file
from pricing.runs.pipeline import STEPS  # the nightly run's steps, timed in its --json

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: how the checkout's path shows in the README's output blocks
SHOWN_ROOT = "/path/to/pricing"

_MARKED = re.compile(r"^<!-- run:(sh|python) -->\n```[a-z]*\n(.*?)^```\n", re.M | re.S)
_OUT = re.compile(r"^<!-- out:([\w-]+) -->\n(```text\n)(.*?)(^```\n)<!-- /out:\1 -->", re.M | re.S)
_VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00"), "<time>"),
    (re.compile(r"build=\d{8}T\d+Z"), "build=<build>"),
    (re.compile(r"(?m)^(\s*time: ).*$"), r"\1<timings>"),
    (re.compile(r"\(\d+ threads?\)"), "(<n> threads)"),
    # --json: step timings, memory, threads, residuals (solver noise, ~1e-12) and the plan's
    # value rounding (|integer-scaled − exact| model value, ~1e-7: its digits are the
    # option values' last digits)
    (re.compile(rf'("(?:{"|".join(STEPS)})": )[-0-9.e]+'), r"\1<s>"),
    (
        re.compile(r'("(?:peak_memory_mb|threads|max_residual|value_rounding)": )[-0-9.e]+'),
        r"\1<n>",
    ),
    # --json: any other float printed whole (11 or more decimals) to 10 significant digits:
    # its last digits are the solvers' rounding (~1e-15), which moves with the path a
    # component takes, so two runs agree to a tolerance (5e-11), not bit for bit
    (
        re.compile(r"(?<![\w.])-?\d+\.\d{11,}(?:e[-+]?\d+)?"),
        lambda m: f"{float(m.group(0)):.10g}",
    ),
]


class CommandFailed(Exception):
    """A README command that exited non-zero (its stderr in the message)."""


@dataclass(frozen=True)
class Output:
    """An output block: its name and its ``$ command`` → output pairs, as shown."""

    name: str
    steps: tuple[tuple[str, str], ...]


def normalized(text: str) -> str:
    """``text`` with what varies between runs and machines masked (module docstring)."""
    text = text.replace(str(ROOT), SHOWN_ROOT)
    for pattern, mask in _VOLATILE:
        text = pattern.sub(mask, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def marked(readme: str) -> list[tuple[str, str]]:
    """The marked shell and Python blocks, in README order: (kind, code)."""
    return [(m.group(1), m.group(2)) for m in _MARKED.finditer(readme)]


def outputs(readme: str) -> list[Output]:
    """The output blocks, in README order."""
    found = []
    for m in _OUT.finditer(readme):
        parts = re.split(r"(?m)^\$ (.*)\n", m.group(3))
        steps = tuple(zip(parts[1::2], parts[2::2], strict=True))
        found.append(Output(m.group(1), steps))
    return found


def make_commands(target: str) -> list[str]:
    """The ``pricing`` commands of the Makefile's ``target`` recipe."""
    recipe = re.search(rf"(?m)^{re.escape(target)}:.*\n((?:\t.*\n|#.*\n)*)", _read("Makefile"))
    if recipe is None:
        raise SystemExit(f"the Makefile has no target {target!r}")
    lines = [line.strip() for line in recipe.group(1).splitlines() if line.startswith("\t")]
    return [line.removeprefix("$(BIN)/") for line in lines if line.startswith("$(BIN)/pricing ")]


def scratch(parent: Path, name: str) -> Path:
    """A directory under ``parent`` holding a copy of the checkout's ``data/``."""
    where = parent / name
    shutil.copytree(ROOT / "data", where / "data")
    return where


def shell(command: str, cwd: Path) -> str:
    """``command`` run by bash in ``cwd`` with this environment's ``pricing`` first on
    PATH; its stdout. :class:`CommandFailed` with its stderr when it fails."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PRICING_BENCH_DIR", None)
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise CommandFailed(f"`{command}` exited {done.returncode}:\n{done.stderr.strip()}")
    return done.stdout


def run_marked(readme: str, cwd: Path) -> None:
    """Every marked shell line (a ``make`` line as its ``pricing`` commands), then the
    marked Python blocks as one script, in ``cwd``."""
    script = []
    for kind, code in marked(readme):
        if kind == "python":
            script.append(code)
            continue
        for line in code.splitlines():
            make = re.match(r"make (\w+)", line)
            for command in make_commands(make.group(1)) if make else [line]:
                shell(command, cwd)
    (cwd / "readme_api.py").write_text("\n".join(script))
    shell(f"{sys.executable} readme_api.py", cwd)


def run_outputs(readme: str, cwd: Path) -> dict[str, list[tuple[str, str]]]:
    """Every output block's commands, run in ``cwd``: name → (command, stdout) pairs."""
    return {
        block.name: [(command, shell(command, cwd)) for command, _ in block.steps]
        for block in outputs(readme)
    }


def run_all(readme: str, parent: Path) -> dict[str, list[tuple[str, str]]]:
    """:func:`run_outputs` and :func:`run_marked` side by side (they share nothing: two
    scratch directories under ``parent``; most of each command is one core's work); the
    outputs."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        outputs = pool.submit(run_outputs, readme, scratch(parent, "outputs"))
        commands = pool.submit(run_marked, readme, scratch(parent, "commands"))
        commands.result()
        return outputs.result()


def differences(readme: str, got: dict[str, list[tuple[str, str]]]) -> list[str]:
    """A unified diff per output step whose normalized output differs from the shown."""
    out = []
    for block in outputs(readme):
        for (command, shown), (_, actual) in zip(block.steps, got[block.name], strict=True):
            a, b = normalized(shown).splitlines(), normalized(actual).splitlines()
            if a != b:
                diff = difflib.unified_diff(a, b, "README", "actual", lineterm="", n=1)
                out.append(f"out:{block.name}: $ {command}\n" + "\n".join(diff))
    return out


def rewritten(readme: str, got: dict[str, list[tuple[str, str]]]) -> str:
    """``readme`` with every output block showing the output ``got``."""

    def block(m: re.Match[str]) -> str:
        body = "\n".join(  # a blank line between commands
            f"$ {command}\n{actual.replace(str(ROOT), SHOWN_ROOT).rstrip()}\n"
            for command, actual in got[m.group(1)]
        )
        return (
            f"<!-- out:{m.group(1)} -->\n{m.group(2)}{body}{m.group(4)}<!-- /out:{m.group(1)} -->"
        )

    return _OUT.sub(block, readme)


def _read(name: str) -> str:
    return (ROOT / name).read_text()


def _run(readme: str, parent: Path, write: bool) -> dict[str, list[tuple[str, str]]]:
    """The output blocks' outputs; every marked command too unless only ``write``-ing."""
    if write:
        return run_outputs(readme, scratch(parent, "outputs"))
    return run_all(readme, parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the output blocks")
    args = parser.parse_args()
    readme = README.read_text()
    with tempfile.TemporaryDirectory(prefix="pricing-readme-") as tmp:
        try:
            got = _run(readme, Path(tmp), args.write)
        except CommandFailed as exc:
            sys.exit(str(exc))
        if args.write:
            with atomic_file(README) as tmp_readme:
                tmp_readme.write_text(rewritten(readme, got))
            return
    diffs = differences(readme, got)
    print("\n\n".join(diffs) if diffs else "the README's commands run and print what it shows")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
