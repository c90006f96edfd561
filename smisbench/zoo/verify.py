"""``smisbench zoo verify``: every manifest's sha256, a strict load of every file, the size budget, staleness.

A checkpoint is *stale* when ``zoo.toml`` now defines its entry differently from what its manifest
recorded (another config, steps or seed): it still loads, but it is no longer the zoo's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smisbench.errors import SmisbenchError
from smisbench.zoo.definition import MODEL_KIND, Zoo, settings_for
from smisbench.zoo.store import checked_file, load_checkpoint, manifests, total_bytes


@dataclass
class EntryCheck:
    id: str
    status: str  # ok | stale | failed | not shipped
    detail: str = ""
    manifest: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        """Loads and is the zoo's current definition (what the demo may score)."""
        return self.status == "ok"


def _defined(zoo: Zoo, manifest: dict[str, Any]) -> str:
    """'' when the manifest's settings are the zoo's for that entry (at its own --steps-scale), else why not."""
    ident = manifest["id"]
    if ident not in zoo.ids:
        return f"{ident} is no longer in zoo.toml"
    recorded = manifest["train"]
    wanted = settings_for(zoo, ident, float(recorded.get("steps_scale", 1.0))).to_dict()
    changed = sorted(k for k in wanted if recorded.get(k) != wanted[k])
    return f"zoo.toml changed {', '.join(changed)} since it was trained" if changed else ""


def check_entry(zoo: Zoo, folder: Path, ident: str, load: bool = True) -> EntryCheck:
    """sha256 against the manifest, then a strict load (model bundle or segmenter), then staleness."""
    try:
        path, manifest = checked_file(folder, ident)
        if load:
            if manifest.get("kind") == MODEL_KIND:
                load_checkpoint(path)
            else:
                from smisbench.segmenters.registry import load_segmenter

                load_segmenter(ident, [str(path)], expected_sha256={"model": manifest["file"]["sha256"]})
    except SmisbenchError as err:
        return EntryCheck(ident, "failed", str(err).splitlines()[0])
    stale = _defined(zoo, manifest)
    if stale:
        return EntryCheck(ident, "stale", stale, manifest)
    scale = float(manifest["train"].get("steps_scale", 1.0))
    detail = f"sha256 {manifest['file']['sha256'][:12]}, {manifest['steps']} steps"
    if scale != 1.0:
        detail += f" (--steps-scale {scale:g}: shorter than the zoo's reference training)"
    return EntryCheck(ident, "ok", detail, manifest)


def verify(zoo: Zoo, folder: Path, load: bool = True) -> tuple[list[EntryCheck], list[str]]:
    """Checks of every zoo entry (and any manifest zoo.toml no longer names), and folder-level problems."""
    found = manifests(folder)
    checks = [check_entry(zoo, folder, ident, load) if ident in found else EntryCheck(ident, "not shipped")
              for ident in zoo.ids]
    checks += [check_entry(zoo, folder, ident, load) for ident in found if ident not in zoo.ids]
    problems = []
    size = total_bytes(folder)
    if size > zoo.max_total_bytes:
        problems.append(f"{folder} holds {size / 1e6:.1f} MB, more than the {zoo.max_total_bytes / 1e6:.0f} MB allowed")
    return checks, problems
