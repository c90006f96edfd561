"""Where a row of a results table comes from: printed in the paper, measured by the suite on a model it
ships, or measured on a user's model (a plugin, a factory, a folder of samples).

The suite's reference rows are its own registered models scored by its own code; anything else a
user brought is theirs, however it reached the store. A scorer that knows where its model came from
records it in the cell's provenance under :data:`ORIGIN_KEY` (``score-samples`` writes
:data:`SAMPLES`); an older cell without the key is judged by its model name: a name whose registry
entry is built by smisbench's own modules is the suite's, any other name (an entry point's, a
test's, a factory path, a name no longer registered) is a user's.
"""

from __future__ import annotations

from typing import Any

PAPER = "paper-printed"
SUITE = "suite-measured"
USER = "user-measured"
ORIGINS = (PAPER, SUITE, USER)

ORIGIN_KEY = "model_origin"  # provenance key: how the scored model was obtained
BUILTIN, PLUGIN, FACTORY, SAMPLES = "builtin", "plugin", "factory", "samples"


def builtin_model(name: str) -> bool:
    """Whether ``name`` is registered by smisbench's own modules (not by an entry point, a test or a user)."""
    from smisbench.errors import SmisbenchError
    from smisbench.registry import MODELS

    try:
        if name not in MODELS:
            return False
        build = MODELS.get(name).build
    except SmisbenchError:  # a built-in module that cannot be imported here: not a name we can vouch for
        return False
    module = getattr(build, "__module__", None) or getattr(getattr(build, "func", None), "__module__", "")
    return str(module).split(".")[0] == "smisbench"


def measured_origin(model_name: str, provenance: dict[str, Any]) -> str:
    """:data:`SUITE` or :data:`USER` for a measured cell, from its provenance (or, lacking that, its model name)."""
    recorded = provenance.get(ORIGIN_KEY)
    if recorded is not None:
        return SUITE if recorded == BUILTIN else USER
    return SUITE if builtin_model(model_name) else USER
