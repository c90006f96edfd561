"""Named evaluation protocols: one name (or one TOML file) stands for every setting that changes a number.

A preset is data: the :class:`EvalProtocol` fields it sets (the rest keep the protocol's
defaults) and the metrics ``smisbench score`` computes unless told otherwise. A TOML preset
file has the same shape::

    name = "tiny"                       # optional (default: the file's stem)
    description = "a quick smoke test"  # optional
    metrics = ["mcsd_mocd"]             # optional (default: the groupdnet2020 metrics)
    [protocol]                          # EvalProtocol fields, e.g.
    n = 4
    m = 3
    diversity_maps = 2
    mask_mode = "image"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smisbench.errors import SmisbenchError, choose_from
from smisbench.metrics.protocol import EvalProtocol, protocol_fields

# Fields a preset may not set: where a run happens and which data it reads belong to the run.
RUN_FIELDS = ("device", "dataset_root", "split")
TABLE1_METRICS = ("fid", "mcsd_mocd", "lpips_diversity", "fps", "params")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    protocol: dict[str, Any] = field(default_factory=dict)  # EvalProtocol fields that differ from its defaults
    metrics: tuple[str, ...] = TABLE1_METRICS
    source: str = "built-in"

    def eval_protocol(self) -> EvalProtocol:
        return EvalProtocol(**self.protocol)


PRESETS: dict[str, Preset] = {
    # EvalProtocol's defaults are the paper's protocol (n=100, m=19, LPIPS v0.1 AlexNet, the first
    # 100 label maps for mCSD/mOCD/LPIPS, FID on the whole split), so this preset changes nothing.
    "groupdnet2020": Preset(
        "groupdnet2020",
        "GroupDNet (Zhu et al., CVPR 2020), Table 1: the suite's default protocol",
    ),
}
DEFAULT_PRESET = "groupdnet2020"


def _check_protocol(table: Any, source: str) -> dict[str, Any]:
    """The preset's fields, each checked by its one definition (``smisbench.metrics.protocol``)."""
    if not isinstance(table, dict):
        raise SmisbenchError(f"{source}: protocol must be a table ([protocol])", "write the fields under [protocol]")
    fields = {f.name: f for f in protocol_fields() if f.name not in RUN_FIELDS}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise SmisbenchError(f"{source}: protocol.{key} is not a protocol field", choose_from(key, fields))
        problem = fields[key].problem(value)
        if problem is not None:
            raise SmisbenchError(f"{source}: protocol.{key} {problem}", f"{key}: {fields[key].hint()}")
        out[key] = value
    try:
        EvalProtocol(**out)
    except SmisbenchError as err:
        raise SmisbenchError(f"{source}: {err.problem}", err.fix) from None
    return out


def preset_from_toml(path: str | Path) -> Preset:
    """A preset from a TOML file (see the module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SmisbenchError(f"cannot read preset file {path}: {err.strerror}", "check the path") from None
    except tomllib.TOMLDecodeError as err:
        raise SmisbenchError(f"preset file {path} is not valid TOML: {err}",
                             "fix the syntax at the line named") from None
    unknown = sorted(set(data) - {"name", "description", "metrics", "protocol"})
    if unknown:
        raise SmisbenchError(f"{path}: {unknown[0]!r} is not a preset key",
                             "a preset has name, description, metrics and [protocol]")
    metrics = data.get("metrics", list(TABLE1_METRICS))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise SmisbenchError(f"{path}: metrics must be a non-empty array of metric names",
                             'e.g. metrics = ["mcsd_mocd"]')
    return Preset(str(data.get("name", path.stem)), str(data.get("description", "")),
                  _check_protocol(data.get("protocol", {}), str(path)), tuple(metrics), str(path))


def get_preset(ref: str | None = None) -> Preset:
    """A preset by name (``groupdnet2020``) or from a ``.toml`` file; None gives the default."""
    ref = ref or DEFAULT_PRESET
    if ref in PRESETS:
        return PRESETS[ref]
    if ref.endswith(".toml") or Path(ref).is_file():
        return preset_from_toml(ref)
    raise SmisbenchError(f"unknown preset {ref!r}", f"use one of: {', '.join(PRESETS)}, or a preset .toml file")


def preset_names() -> list[str]:
    return list(PRESETS)
