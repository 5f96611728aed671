"""The estimation stage: batched 2SLS/OLS and the segment curves with their uncertainty."""
