"""Dataset configurations as data: class counts, label conventions and sizes that models and readers share.

The built-in configurations are declared here (the synthetic set's too, so it exists without
importing its reader); a user's own dataset registers with :func:`register_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from smisbench.registry import DATASET_CONFIGS


@dataclass(frozen=True)
class DatasetConfig:
    """What a network needs to know about a dataset's label maps and images.

    ``label_nc`` counts the label values a map may hold (0..label_nc-1); ``dontcare_channel``
    says whether one of them is a "don't care/other" class that still gets a one-hot channel
    (ADE20K's 0), and ``use_instance`` adds the instance-edge channel (Cityscapes).
    """

    name: str
    label_nc: int
    height: int
    width: int
    use_instance: bool = False
    contain_dontcare: bool = False
    load_size: int | None = None
    class_names: tuple[str, ...] = field(default=(), compare=False)

    @property
    def semantic_nc(self) -> int:
        """One-hot channels of the label map (without the instance edge)."""
        return self.label_nc

    @property
    def input_nc(self) -> int:
        """Channels of the network input: one-hot labels plus the instance-edge channel where used."""
        return self.label_nc + int(self.use_instance)

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)


DEEPFASHION_CLASSES = ("hair", "face", "skin", "top", "bottom", "socks", "shoes", "background")
# The embedded synthetic set (smisbench.data.synthetic renders it): label ids 0..5, 64x64 by default.
SYNTHETIC_CLASSES = ("background", "disc", "square", "triangle", "bar", "ring")

# The built-in configurations. Cityscapes label ids 0..34 (cityscapesscripts' table; 34 = license
# plate, listed there as -1).
DATASETS: Mapping[str, DatasetConfig] = MappingProxyType({
    "deepfashion": DatasetConfig("deepfashion", 8, 256, 256, class_names=DEEPFASHION_CLASSES),
    "cityscapes": DatasetConfig("cityscapes", 35, 256, 512, use_instance=True),
    # ADE20K: values 0..150 with 0 = "other"; 151 one-hot channels as the GroupDNet release uses them.
    "ade20k": DatasetConfig("ade20k", 151, 256, 256, contain_dontcare=True, load_size=286),
    "synthetic": DatasetConfig("synthetic", len(SYNTHETIC_CLASSES), 64, 64, class_names=SYNTHETIC_CLASSES),
})


def register_dataset(config: DatasetConfig, replace: bool = False) -> DatasetConfig:
    """Add a dataset configuration under ``config.name`` (a taken name raises unless ``replace``)."""
    return DATASET_CONFIGS.register(config.name, config, replace)


def get_dataset_config(name: str) -> DatasetConfig:
    return DATASET_CONFIGS.get(name)


def dataset_config_names() -> list[str]:
    return DATASET_CONFIGS.names()


def dataset_configs() -> dict[str, DatasetConfig]:
    """Every dataset configuration by name (built-ins and registered ones): a factory model's configs."""
    return dict(DATASET_CONFIGS.items())


for _config in DATASETS.values():
    register_dataset(_config)
del _config
