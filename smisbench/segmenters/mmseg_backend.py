"""Any mmsegmentation config + checkpoint as a segmenter (the design names mmseg as the backend).

Two model-zoo networks are registered by name, UperNet R101 for ADE20K and Cityscapes; any other
config is wrapped with ``spec_from_config``. Inference is mmseg's own (``inference_model``: the
config's test pipeline, its data preprocessor, logits resized back to the input size). Loading
differs from mmseg's on purpose: the file is unpickled with ``weights_only=True`` and numpy
metadata allowed only for that call, its sha256 is checked, and every key must match.

Install (mmseg 1.2.2 on PyPI wheels only): ``mmsegmentation==1.2.2 mmcv-lite==2.1.0 mmengine ftfy
regex``; ``mmseg_compat`` explains the one workaround this needs.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from smisbench.errors import SmisbenchError
from smisbench.segmenters.ade20k_classes import ADE20K_CLASSES
from smisbench.segmenters.base import Segmenter, SegmenterSpec, as_pil_rgb
from smisbench.segmenters.checkpoints import (
    CheckpointFile, extract_state_dict, load_checkpoint_file, load_state_dict_strict, verify_checksum,
)
from smisbench.segmenters.label_conventions import cityscapes_tables
from smisbench.segmenters.registry import register

INSTALL_HINT = "pip install 'mmsegmentation==1.2.2' 'mmcv-lite==2.1.0' 'mmengine>=0.10,<0.11' ftfy regex"


@contextmanager
def _quiet_mmseg_notices():
    """mmcv-lite and mmseg print notices about compiled ops and training losses that inference never uses."""
    with warnings.catch_warnings():
        for pattern in (".*mmcv-lite.*", ".*build_loss.*", ".*avg_non_ignore.*"):
            warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
        yield


@lru_cache(maxsize=1)
def import_mmseg():
    """Import mmseg (with the mmcv-lite stand-in where needed) and register its modules; returns the package."""
    try:
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
    except ImportError as err:
        raise SmisbenchError(f"the mmsegmentation backend is not installed ({err})", INSTALL_HINT) from None
    from smisbench.segmenters.mmseg_compat import install_mmcv_ops_standin

    install_mmcv_ops_standin()
    try:
        with _quiet_mmseg_notices():
            import mmseg
            from mmseg.utils import register_all_modules

            register_all_modules(init_default_scope=True)
    except ImportError as err:
        raise SmisbenchError(f"mmsegmentation cannot be imported ({err})", INSTALL_HINT) from None
    return mmseg


def mmseg_available() -> tuple[bool, str]:
    """(True, "") when the backend imports, else (False, the reason) - for tests and ``smisbench segmenters``."""
    try:
        import_mmseg()
    except SmisbenchError as err:
        return False, str(err)
    return True, ""


def shipped_config(relative: str) -> Path:
    """A config file from the installed mmseg package (``mmseg/.mim/configs``)."""
    mmseg = import_mmseg()
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / relative
    if not path.is_file():
        raise SmisbenchError(f"mmseg config {relative} is not in the installed package ({path})",
                             f"install mmsegmentation 1.2.2: {INSTALL_HINT}")
    return path


def load_config(config: str | Path):
    import_mmseg()
    from mmengine import Config

    config = Path(config)
    if not config.is_file():
        config = shipped_config(str(config))
    cfg = Config.fromfile(str(config))
    # As mmseg's init_model: no backbone download, no training settings.
    if cfg.model.get("type") == "EncoderDecoder" and "init_cfg" in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    return cfg


def build_from_config(config: str | Path) -> torch.nn.Module:
    """The segmentor of ``config`` with random initial weights (nothing downloaded)."""
    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = load_config(config)
    init_default_scope(cfg.get("default_scope", "mmseg"))
    with _quiet_mmseg_notices():
        model = MODELS.build(cfg.model)
    model.cfg = cfg
    return model.eval()


class MMSegSegmenter(Segmenter):
    """mmseg's ``inference_model`` on one RGB image; scores are its logits at the requested size."""

    @torch.inference_mode()
    def scores(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        from mmseg.apis import inference_model

        pil = as_pil_rgb(image)
        bgr = np.ascontiguousarray(np.asarray(pil)[:, :, ::-1])  # mmseg pipelines load BGR like cv2
        result = inference_model(self.network, bgr)
        logits = result.seg_logits.data.to(self.device)
        if out_size is not None and tuple(out_size) != tuple(logits.shape[1:]):
            logits = F.interpolate(logits[None], tuple(out_size), mode="bilinear", align_corners=False)[0]
        return logits


def _load(spec: SegmenterSpec, paths: Mapping[str, Any], *, device: str = "cpu", multi_scale: bool | None = None,
          expected_sha256: Mapping[str, str] | None = None, allowed_globals: Sequence[str] = (),
          **options: Any) -> MMSegSegmenter:
    if multi_scale:
        raise SmisbenchError(f"{spec.name}: multi-scale testing is not wired for the mmseg backend",
                             "run it single scale (mmseg's 'whole' test mode), the model zoo's first number")
    network = spec.build()
    path = paths["weights"]
    record = verify_checksum(path, "weights", spec.checkpoints, spec.name, (expected_sha256 or {}).get("weights"))
    raw = load_checkpoint_file(path, allow_numpy=True, allowed_globals=allowed_globals, source=spec.name)
    load_state_dict_strict(network, extract_state_dict(raw, f"{spec.name} file {path}"),
                           f"{spec.name} file {path}", optional=lambda k: k.endswith("num_batches_tracked"))
    meta = raw.get("meta", {}) if isinstance(raw, Mapping) else {}
    classes = (meta.get("dataset_meta") or {}).get("classes") or meta.get("CLASSES")
    if classes is not None and len(classes) != len(spec.classes):
        raise SmisbenchError(
            f"{spec.name}: {path} was trained for {len(classes)} classes, the spec scores {len(spec.classes)}",
            "use a checkpoint trained on the spec's dataset, or register a spec for this one (spec_from_config)",
        )
    network.dataset_meta = {"classes": tuple(classes or spec.classes)}
    return MMSegSegmenter(spec, network, device, multi_scale=False,
                          provenance={"checkpoints": [record.to_dict()], "mmseg_config": str(spec.extra["config"])},
                          **options)


def spec_from_config(config: str | Path, *, name: str, dataset: str, classes: Sequence[str], label_convention: str,
                     checkpoints: Sequence[CheckpointFile] = (), published: str = "") -> SegmenterSpec:
    """A segmenter spec for any mmseg config; its checkpoint role is ``weights``."""
    files = tuple(checkpoints) or (CheckpointFile("weights", "", "", None, "any checkpoint trained with the config"),)
    return SegmenterSpec(
        name=name, dataset=dataset, classes=tuple(classes), label_convention=label_convention,
        preprocessing={"pipeline": "the config's test_pipeline and data_preprocessor (mmseg inference_model)",
                       "test_cfg": "the config's (whole image)"},
        checkpoints=files,
        build=lambda: build_from_config(config),
        load=_load, backend="mmseg",
        reference=f"open-mmlab/mmsegmentation 1.2.2, config {config}",
        published=published,
        notes="nan-mean mIoU (mmseg IoUMetric)",
        extra={"config": str(config)},
    )


SPECS: tuple[SegmenterSpec, ...] = (
    spec_from_config(
        "upernet/upernet_r101_4xb4-160k_ade20k-512x512.py",
        name="mmseg_upernet_r101_ade20k", dataset="ade20k", classes=ADE20K_CLASSES,
        label_convention="ade20k_sceneparsing",
        checkpoints=(CheckpointFile(
            "weights", "upernet_r101_512x512_160k_ade20k_20200615_161951-91b32684.pth",
            "https://download.openmmlab.com/mmsegmentation/v0.5/upernet/upernet_r101_512x512_160k_ade20k/"
            "upernet_r101_512x512_160k_ade20k_20200615_161951-91b32684.pth",
            "91b32684", "the model zoo publishes the first 8 hex digits of the sha256 in the file name"),),
        published="43.82 mIoU single scale / 44.85 ms+flip (ADE20K val, mmseg model zoo)",
    ),
    spec_from_config(
        "upernet/upernet_r101_4xb2-80k_cityscapes-512x1024.py",
        name="mmseg_upernet_r101_cityscapes", dataset="cityscapes", classes=cityscapes_tables()[1],
        label_convention="cityscapes_labelids",
        checkpoints=(CheckpointFile(
            "weights", "upernet_r101_512x1024_80k_cityscapes_20200607_002403-f05f2345.pth",
            "https://download.openmmlab.com/mmsegmentation/v0.5/upernet/upernet_r101_512x1024_80k_cityscapes/"
            "upernet_r101_512x1024_80k_cityscapes_20200607_002403-f05f2345.pth",
            "f05f2345", "the model zoo publishes the first 8 hex digits of the sha256 in the file name"),),
        published="79.40 mIoU single scale / 80.46 ms+flip (Cityscapes val, mmseg model zoo)",
    ),
)
for _spec in SPECS:
    register(_spec)
