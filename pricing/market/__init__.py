"""The market stage: segments with their curves, and the equilibrium that clears them."""
