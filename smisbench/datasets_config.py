"""Dataset configurations as data: class counts, label conventions and sizes that models and readers share."""

from __future__ import annotations

from dataclasses import dataclass, field

from smisbench.errors import UnknownNameError


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

# Cityscapes label ids 0..34 (cityscapesscripts' table; 34 = license plate, listed there as -1).
DATASETS: dict[str, DatasetConfig] = {
    "deepfashion": DatasetConfig("deepfashion", 8, 256, 256, class_names=DEEPFASHION_CLASSES),
    "cityscapes": DatasetConfig("cityscapes", 35, 256, 512, use_instance=True),
    # ADE20K: values 0..150 with 0 = "other"; 151 one-hot channels as the GroupDNet release uses them.
    "ade20k": DatasetConfig("ade20k", 151, 256, 256, contain_dontcare=True, load_size=286),
}


def register_dataset(config: DatasetConfig) -> DatasetConfig:
    """Add a dataset configuration (the synthetic set and users' custom sets register here)."""
    DATASETS[config.name] = config
    return config


# Configurations that a module registers when imported (loaded on first use, like the readers).
LAZY_DATASETS = {"synthetic": "smisbench.data.synthetic"}


def get_dataset_config(name: str) -> DatasetConfig:
    if name not in DATASETS and name in LAZY_DATASETS:
        import importlib

        importlib.import_module(LAZY_DATASETS[name])
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownNameError("dataset", name, sorted(set(DATASETS) | set(LAZY_DATASETS))) from None


def dataset_configs() -> dict[str, DatasetConfig]:
    """Every dataset configuration, the lazily registered ones included."""
    for name in LAZY_DATASETS:
        get_dataset_config(name)
    return dict(DATASETS)
