"""The evaluation protocol as one typed record: every setting that can change a reported number."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from smisbench.errors import SmisbenchError


@dataclass(frozen=True)
class EvalProtocol:
    """Settings of one evaluation; stored with every result.

    n, m, mask_mode: mCSD/mOCD and LPIPS diversity (paper: n=100, m=19, LPIPS v0.1 AlexNet).
    diversity_maps: label maps scored for mCSD/mOCD/LPIPS (the first ones of the dataset; None = all).
    fid_samples: images for FID, real and generated (None = the whole dataset).
    image_size / resize_filter: size both real and generated images are brought to before
    Inception (None = as the dataset yields them); torch-fidelity then resizes to 299 like TF1.
    dtype: the generator's dtype for FPS (metrics generate in the model's own dtype); fid_dtype:
    Inception's internal dtype (torch-fidelity's ``feature_extractor_internal_dtype``).
    dataset_root / split: identify the real images in the statistics cache key when the dataset
    object has no ``root`` / ``split`` attributes.
    segmenter / segmenter_checkpoints / scoring_protocol / segmentation_samples: mIoU and accuracy
    (``smisbench segmenters``; the synthetic stand-in is trained for ``segmenter_train_steps``).
    """

    n: int = 100
    m: int = 19
    mask_mode: str = "lpips_map"
    lpips_net: str = "alex"
    diversity_maps: int | None = 100
    fid_samples: int | None = None
    image_size: tuple[int, int] | None = None
    resize_filter: str = "bicubic-antialias"
    seed: int = 0
    dtype: str = "float32"
    fid_dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 16
    fps_batch_size: int = 1
    fps_warmup: int = 5
    fps_repeats: int = 20
    stats_cache: bool = True
    dataset_root: str | None = None
    split: str | None = None
    segmenter: str | None = None
    segmenter_checkpoints: tuple[str, ...] | None = None
    scoring_protocol: str | None = None
    segmentation_samples: int | None = None
    segmenter_train_steps: int = 300

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SmisbenchError(f"batch_size must be >= 1, got {self.batch_size}", "use a positive batch size")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        if self.segmenter_checkpoints is not None:
            object.__setattr__(self, "segmenter_checkpoints", tuple(str(v) for v in self.segmenter_checkpoints))

    def replace(self, **changes: Any) -> "EvalProtocol":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["image_size"] is not None:
            out["image_size"] = list(out["image_size"])
        return out
