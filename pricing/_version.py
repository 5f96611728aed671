"""The version of pricing, in one place (the package root and the modules that record it
import it from here)."""

__version__ = "0.1.0"
