"""Datasets: readers for DeepFashion (SMIS layout), Cityscapes, ADE20K and custom folders, and the
embedded synthetic SMIS set. Build them by name with :func:`smisbench.data.registry.build_dataset`."""
