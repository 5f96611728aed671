"""The benchmark suite behind `pricing bench`."""
