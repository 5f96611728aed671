"""The input stage: the data contract, reading, validation, the segment × week panel and the
simulator."""

from pathlib import Path

#: the shipped sample market (``data/sample`` of a source checkout)
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
