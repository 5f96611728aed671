"""Orchestration: the nightly run, what-ifs in batches, and stored runs with what they can do."""
