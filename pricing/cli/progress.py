"""What a command shows on stderr while it works, and where compiled solvers' output goes."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from pricing.cli.exits import PROGRESS_KEY, SAMPLE_KEY
from pricing.display import escape_controls


class Progress:
    """Each step of long work and its duration, on stderr (silent with --quiet).

    ``step(label)`` starts a numbered step of a run; calling it with a label starts a
    sub-step (the library calls it too, so a 10-million-row check shows which table it is
    on). Starting one ends the one before and prints its time. The command's context
    keeps it, so that an error ends the line before it is printed, and an interrupt can
    say what was stored (``stored``). Warnings (``warn``: what was skipped, and why)
    are printed under --quiet too: they change what the result means.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        #: what the command committed to the store, as (what, path), in order
        self.committed: list[tuple[str, Path]] = []
        self._label: str | None = None
        self._start = 0.0
        self._step: str | None = None
        self._step_start = 0.0
        self._nested = False
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[PROGRESS_KEY] = self
            if SAMPLE_KEY in ctx.meta:
                sample, warn = ctx.meta[SAMPLE_KEY]
                text = f"no data directory given: using the shipped sample market, {sample}"
                if warn:
                    self.warn(text)
                else:
                    self._echo(f"note: {text}")

    def step(self, label: str) -> None:
        self.done()
        self._step, self._step_start, self._nested = label, time.perf_counter(), False
        self._echo(f"{label} ...", nl=False)

    def __call__(self, label: str) -> None:
        self._end_sub()
        if self._step is not None and not self._nested:
            self._nested = True
            self._echo("")
        indent = "    " if self._step is not None else ""
        self._label, self._start = label, time.perf_counter()
        self._echo(f"{indent}{label} ...", nl=False)

    def warn(self, message: str) -> None:
        """A line on stderr, even under --quiet."""
        self._end_line()
        click.echo(escape_controls(f"warning: {message}"), err=True)

    def stored(self, what: str, path: Path) -> None:
        """``what`` was committed to the store at ``path``."""
        self.committed.append((what, path))

    def _end_line(self) -> None:
        """End a step's line that waits for its time, so a warning gets its own line."""
        if not self.quiet and (self._label is not None or (self._step and not self._nested)):
            click.echo("", err=True)
            if self._step is not None:
                self._nested = True

    def done(self) -> None:
        """End the current sub-step and step."""
        self._end_sub()
        if self._step is None:
            return
        elapsed = time.perf_counter() - self._step_start
        self.timings[self._step] = round(elapsed, 3)
        self._echo(f"    done in {elapsed:.2f} s" if self._nested else f" {elapsed:.2f} s")
        self._step = None

    def _end_sub(self) -> None:
        if self._label is None:
            return
        elapsed = time.perf_counter() - self._start
        self.timings[self._label] = round(elapsed, 3)
        self._echo(f" {elapsed:.2f} s")
        self._label = None

    def _echo(self, text: str, nl: bool = True) -> None:
        if not self.quiet:
            click.echo(escape_controls(text), err=True, nl=nl)


@contextlib.contextmanager
def solver_output_to_stderr() -> Iterator[None]:
    """Route what compiled solvers print to stderr while the block runs.

    SCS writes its warnings with C ``printf`` to file descriptor 1, past Python's
    ``sys.stdout``; stdout must carry only the command's result, so that ``--json`` stays
    parseable. The descriptor is restored afterwards, whatever happens.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
