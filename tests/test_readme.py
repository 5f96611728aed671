"""The README is run, not read: its performance table is the one `pricing bench` wrote
into benchmarks/RESULTS.md, and the commands a newcomer copies (the Quick start's
`make run`, the Python API example, the output blocks) run on the shipped sample in a
scratch copy — real processes, a real store — and print what the README shows
(docs/readme.py says what is masked: timestamps, build stamps, timings, paths)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pricing.bench.harness import README_BEGIN, README_END, readme_table

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "README.md").read_text()


def _docs_readme() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_readme", ROOT / "docs" / "readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


readme = _docs_readme()


def test_the_performance_table_is_the_one_in_results_md() -> None:
    block = TEXT[TEXT.index(README_BEGIN) + len(README_BEGIN) : TEXT.index(README_END)]
    assert block.strip() == readme_table((ROOT / "benchmarks" / "RESULTS.md").read_text())
    # one table of performance numbers: the section's prose around it times nothing
    performance = TEXT[TEXT.index("## Performance") :].replace(block, "")
    assert re.search(r"\d ?(s|ms|min)\b", performance) is None


def test_the_newcomers_commands_are_marked_to_run() -> None:
    kinds = [kind for kind, _ in readme.marked(TEXT)]
    blocks = dict(readme.marked(TEXT)[:2])
    assert blocks["sh"].startswith("make run ")  # the Quick start, first
    assert "import pricing" in blocks["python"]  # the Python API example
    assert kinds.count("python") >= 5 and kinds.count("sh") >= 4
    assert readme.make_commands("run") == [
        "pricing backtest",
        "pricing run",
        "pricing whatif data/scenarios/*.toml --rows 8",
    ]
    assert readme.make_commands("test") == []  # lint and pytest: never run from here
    shown = {block.name: [c for c, _ in block.steps] for block in readme.outputs(TEXT)}
    assert list(shown) == ["plan", "run", "history", "whatif"]
    assert all(command.startswith("pricing ") for steps in shown.values() for command in steps)


def test_normalizing_masks_only_what_varies_between_runs() -> None:
    text = (
        f"Run 2025-12-28 (ok), created 2026-12-04T19:40:00+00:00, from {readme.ROOT}/data\n"
        "  time: validate 0.16 s, store 0.02 s; peak memory 300 MB\n"
        "  ran on this process (2 threads)\n"
        "  stored in pricing-runs/runs/as_of=2025-12-28/build=20261204T194002772892Z\n"
        '  "estimate": 1.572,\n  "estimated": 36,\n  "max_residual": 6.4e-12,\n'
    )
    assert readme.normalized(text).splitlines() == [
        f"Run 2025-12-28 (ok), created <time>, from {readme.SHOWN_ROOT}/data",
        "  time: <timings>",
        "  ran on this process (<n> threads)",
        "  stored in pricing-runs/runs/as_of=2025-12-28/build=<build>",
        '  "estimate": <s>,',
        '  "estimated": 36,',
        '  "max_residual": <n>,',
    ]


@pytest.mark.slow
def test_the_readme_commands_run_and_print_what_it_shows(tmp_path: Path) -> None:
    got = readme.run_all(TEXT, tmp_path)
    assert readme.differences(TEXT, got) == [], "python docs/readme.py --write regenerates them"
    made = tmp_path / "commands"
    assert sorted(p.name for p in (made / "pricing-runs" / "runs").iterdir()) == [
        "as_of=2025-12-28"
    ]
    assert (made / "guidance.csv").stat().st_size > 0 and (made / "whatifs").is_dir()
