"""Parameter counts the way the paper reports them: generator + encoder together, discriminator apart."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


def count_parameters(module: nn.Module | None) -> int:
    """Distinct parameters of a module (shared tensors counted once); 0 for None."""
    if module is None:
        return 0
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def per_submodule(module: nn.Module, prefix: str) -> dict[str, int]:
    """Counts of each direct child (``prefix.child``), plus parameters held directly by the module."""
    out = {f"{prefix}.{name}": count_parameters(child) for name, child in module.named_children()}
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if own:
        out[f"{prefix}.(own)"] = own
    return out


@dataclass
class ParamReport:
    generator: int  # G + E: the paper's "# Param"
    parts: dict[str, int]  # {"G": .., "E": ..}
    discriminator: int | None
    submodules: dict[str, int] = field(default_factory=dict)

    @property
    def generator_millions(self) -> float:
        return self.generator / 1e6

    def to_dict(self) -> dict:
        return {"generator": self.generator, "parts": self.parts, "discriminator": self.discriminator,
                "submodules": self.submodules}


def parameter_report(model: nn.Module, discriminator: nn.Module | None = None) -> ParamReport:
    """Counts for an SMISModel (its ``parts()``: G and E) and, separately, its discriminator."""
    parts = model.parts() if hasattr(model, "parts") else {"G": model}
    counts = {name: count_parameters(part) for name, part in parts.items()}
    # G + E without double counting anything the two share
    generator = count_parameters(nn.ModuleList(list(parts.values())))
    submodules: dict[str, int] = {}
    for name, part in parts.items():
        submodules.update(per_submodule(part, name))
    if discriminator is not None:
        submodules.update(per_submodule(discriminator, "D"))
    return ParamReport(generator, counts, None if discriminator is None else count_parameters(discriminator), submodules)
