"""The paper's applications from the command line: appearance mixture (``smisbench mix``) and style
morphing (``smisbench morph``) on any model with an encoder (:mod:`smisbench.applications.mixture`)."""
