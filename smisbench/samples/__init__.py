"""Scoring from files: the sample-folder layout (``layout``), ``smisbench export-samples`` (``export``) and
``smisbench score-samples`` (``score``), so a model in any framework is scored by writing PNGs."""
