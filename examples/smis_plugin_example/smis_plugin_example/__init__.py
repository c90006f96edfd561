"""Example smisbench plugin: two toy SMIS models that keep the model contract (``models.py``)."""
