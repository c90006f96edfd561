"""How a dataset's stored label maps become the class ids a segmenter predicts.

Each convention is a lookup table from stored values to evaluation ids (``ignore_index``
for don't-care pixels). The Cityscapes table is built from ``cityscapesscripts``' own label
list, so it cannot drift from the official one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from smisbench.datasets_config import DEEPFASHION_CLASSES, get_dataset_config
from smisbench.errors import LabelMapError
from smisbench.registry import LABEL_CONVENTIONS

IGNORE = 255

# CIHP's 20 parsing classes (Graphonomy / CIHP_PGN order).
CIHP_CLASSES: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks", "pants",
    "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg", "left-shoe",
    "right-shoe",
)
# CIHP class -> DeepFashion-8 class (hair 0, face 1, skin 2, top 3, bottom 4, socks 5, shoes 6, background 7).
# Unofficial: the GroupDNet authors did not publish their order; this one is documented in protocol.md.
CIHP_TO_DEEPFASHION8: tuple[int, ...] = (7, 0, 0, 3, 1, 3, 3, 3, 5, 4, 2, 3, 4, 1, 2, 2, 2, 2, 6, 6)


@lru_cache(maxsize=1)
def cityscapes_tables() -> tuple[np.ndarray, tuple[str, ...]]:
    """(256-entry lookup from label id to train id, the 19 train-id class names), from cityscapesscripts."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE, dtype=np.int64)
    names: dict[int, str] = {}
    for label in labels:
        if label.id < 0:  # 'license plate' (-1) never appears in labelIds PNGs; DatasetConfig calls it 34
            continue
        train = label.trainId if 0 <= label.trainId < IGNORE else IGNORE
        lut[label.id] = train
        if train != IGNORE:
            names[train] = label.name
    classes = tuple(names[i] for i in range(len(names)))
    return lut, classes


@dataclass(frozen=True)
class LabelConvention:
    """Stored label values -> evaluation class ids; ``valid_values`` bounds what a stored map may hold."""

    name: str
    lut: tuple[int, ...]
    num_classes: int
    ignore_index: int = IGNORE
    description: str = ""

    def convert(self, label: torch.Tensor | np.ndarray, source: str = "label map") -> torch.Tensor:
        """Map stored values to evaluation ids (int64 tensor); refuse values the convention does not know."""
        array = label.cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        if not np.issubdtype(array.dtype, np.integer):
            raise LabelMapError(f"{source}: label maps hold integer ids, got {array.dtype}",
                                "read label PNGs in mode L / I without colour conversion")
        lut = np.asarray(self.lut, dtype=np.int64)
        if array.size and (array.min() < 0 or array.max() >= len(lut)):
            bad = np.unique(array[(array < 0) | (array >= len(lut))])[:10].tolist()
            raise LabelMapError(
                f"{source}: values {bad} are not {self.name} labels (0..{len(lut) - 1})",
                f"pass label maps stored as {self.description or self.name}",
            )
        return torch.from_numpy(lut[array])


def _cityscapes() -> LabelConvention:
    lut, classes = cityscapes_tables()
    return LabelConvention(
        "cityscapes_labelids", tuple(int(v) for v in lut[:35]), len(classes), IGNORE,
        "Cityscapes *_gtFine_labelIds.png (35 label ids, mapped to 19 train ids, the rest 255)",
    )


def _ade20k() -> LabelConvention:
    return LabelConvention(
        "ade20k_sceneparsing", (IGNORE, *range(150)), 150, IGNORE,
        "ADE20K SceneParsing PNGs (0 = other -> ignored, 1..150 -> 0..149)",
    )


def _deepfashion() -> LabelConvention:
    return LabelConvention(
        "deepfashion8", tuple(range(len(DEEPFASHION_CLASSES))), len(DEEPFASHION_CLASSES), IGNORE,
        "DeepFashion 8-class maps (hair, face, skin, top, bottom, socks, shoes, background); nothing ignored",
    )


def _cihp() -> LabelConvention:
    return LabelConvention(
        "cihp20_to_deepfashion8", CIHP_TO_DEEPFASHION8, len(DEEPFASHION_CLASSES), IGNORE,
        "CIHP 20-class parsing maps, mapped to the 8 DeepFashion classes",
    )


def _identity(n: int) -> LabelConvention:
    return LabelConvention(f"identity{n}", tuple(range(n)), n, IGNORE, f"class ids 0..{n - 1}")


def _synthetic() -> LabelConvention:
    classes = get_dataset_config("synthetic").label_nc
    return LabelConvention("synthetic", tuple(range(classes)), classes, IGNORE,
                           f"the embedded synthetic set's class ids 0..{classes - 1} (smisbench.data.synthetic)")


def register_label_convention(name: str, build: Callable[[], LabelConvention],
                              replace: bool = False) -> Callable[[], LabelConvention]:
    """Add a convention; ``build()`` makes it on first use (Cityscapes' table needs cityscapesscripts)."""
    return LABEL_CONVENTIONS.register(name, build, replace)


def label_convention_names() -> list[str]:
    return sorted(LABEL_CONVENTIONS.names())


def get_label_convention(name: str) -> LabelConvention:
    return LABEL_CONVENTIONS.get(name)()


for _name, _build in (
    ("cityscapes_labelids", _cityscapes),
    ("cityscapes_trainids", lambda: LabelConvention(
        "cityscapes_trainids", tuple(list(range(19)) + [IGNORE] * (256 - 19)), 19, IGNORE,
        "Cityscapes train ids 0..18 with 255 = ignored")),
    ("ade20k_sceneparsing", _ade20k),
    ("deepfashion8", _deepfashion),
    ("cihp20_to_deepfashion8", _cihp),
    ("cihp20", lambda: _identity(20)),
    ("synthetic", _synthetic),
):
    register_label_convention(_name, _build)
del _name, _build


def cihp_to_deepfashion8(cihp: torch.Tensor) -> torch.Tensor:
    """Map a CIHP 20-class prediction to the 8 DeepFashion classes."""
    return torch.tensor(CIHP_TO_DEEPFASHION8, dtype=torch.int64, device=cihp.device)[cihp.long()]
