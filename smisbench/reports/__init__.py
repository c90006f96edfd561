"""Reports from the results store: the paper's tables with our numbers beside them (Markdown, LaTeX, CSV),
plots and SMIS grids, and one self-contained HTML page; ``smisbench report``."""
