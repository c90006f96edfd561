"""smisbench: evaluation suite and reference models for semantically multi-modal image synthesis."""

__version__ = "0.1.0"
