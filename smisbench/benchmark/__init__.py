"""The benchmark harness: specs (TOML) expanded into cells, run into a SQLite results store with provenance,
resumed after interruption, compared for regressions; ``smisbench run | runs | specs | compare | baseline | demo``."""
