"""Named evaluation protocols as data: one name (or one TOML file) stands for every setting that moves a number.

Published SMIS numbers were measured under different protocols (segmenter input size, whether
don't-care pixels count, which resize reaches Inception, which real images), so a user comparing
with a paper needs that paper's protocol by name. A preset is the :class:`EvalProtocol` fields it
sets (the rest keep their defaults), the fields it sets for one dataset only (``datasets``, over
the others: Cityscapes' 512x256), the metrics ``smisbench score`` computes unless told otherwise,
and where each value was stated (``sources``, rendered into ``docs/presets.md`` by
:mod:`smisbench.metrics.presets_docs`). A preset's name is recorded with every result (protocol
field ``preset``); the fields themselves, never the name, make the cache and cell keys.

A TOML preset file has the same shape::

    name = "mine"                       # optional (default: the file's stem)
    description = "our lab's protocol"  # optional
    base = "groupdnet2020"              # optional: start from this preset (a name or another file)
    metrics = ["fid", "mcsd_mocd"]      # optional (default: the base's, else Table 1's)
    [protocol]                          # EvalProtocol fields for every dataset, e.g.
    fid_resize = "clean"
    [datasets.cityscapes]               # fields for one dataset, over [protocol]
    image_size = [256, 512]
    [sources]                           # optional: field -> where its value comes from
    fid_resize = "clean-fid (Parmar et al., CVPR 2022)"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smisbench.errors import SmisbenchError, choose_from
from smisbench.metrics.protocol import EvalProtocol, protocol_fields

# Fields a preset may not set: where a run happens and which data it reads belong to the run; the
# preset's name is recorded by the preset itself.
RUN_FIELDS = ("device", "dataset_root", "split", "preset")
SPEC_LEVEL = ("seed", "dtype")  # a spec holds these once for the whole run: never per dataset
TABLE1_METRICS = ("fid", "mcsd_mocd", "lpips_diversity", "fps", "params")
TOML_KEYS = ("name", "description", "base", "metrics", "protocol", "datasets", "sources")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    protocol: dict[str, Any] = field(default_factory=dict)  # fields for every dataset (others: EvalProtocol's)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset name -> fields over `protocol`
    metrics: tuple[str, ...] = TABLE1_METRICS
    sources: dict[str, str] = field(default_factory=dict)  # field -> where its value was stated
    source: str = "built-in"  # "built-in" or the TOML file it was read from

    @property
    def ref(self) -> str:
        """What finds this preset again: its name when built in, else its file's absolute path."""
        return self.name if self.source == "built-in" else str(Path(self.source).resolve())

    def fields(self, dataset: str | None = None) -> dict[str, Any]:
        """The fields this preset sets for ``dataset`` (None: for every dataset), its own name included."""
        return {**self.protocol, **(self.datasets.get(dataset, {}) if dataset else {}), "preset": self.name}

    def eval_protocol(self, dataset: str | None = None, **changes: Any) -> EvalProtocol:
        """The full protocol record for ``dataset``, with ``changes`` (a run's own settings) over it."""
        return EvalProtocol(**{**self.fields(dataset), **changes})

    def derive(self, name: str, description: str, protocol: dict[str, Any] | None = None,
               datasets: dict[str, dict[str, Any]] | None = None, sources: dict[str, str] | None = None,
               metrics: tuple[str, ...] | None = None, source: str = "built-in") -> "Preset":
        """A preset that differs from this one in the fields given (its sources kept where not replaced)."""
        merged = {d: dict(f) for d, f in self.datasets.items()}
        for dataset, fields in (datasets or {}).items():
            merged.setdefault(dataset, {}).update(fields)
        inherited = {k: v if v.startswith("as ") else f"as {self.name}: {v}" for k, v in self.sources.items()}
        return Preset(name, description, {**self.protocol, **(protocol or {})}, merged,
                      metrics or self.metrics, {**inherited, **(sources or {})}, source)


# ----------------------------------------------------------------------------- the built-in presets
def _paper_sizes() -> dict[str, list[int]]:
    """[height, width] the paper generates and scores per dataset: the suite's dataset configurations
    (GroupDNet Sec. 4.2 and supplementary; SPADE's defaults): 256x256, Cityscapes 512x256."""
    from smisbench.datasets_config import get_dataset_config

    return {name: list(get_dataset_config(name).size) for name in ("deepfashion", "cityscapes", "ade20k")}


def _per_dataset(sizes: dict[str, list[int]], **by_dataset: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"image_size": size, **by_dataset.get(name, {})} for name, size in sizes.items()}


def _builtin() -> dict[str, Preset]:
    sizes = _paper_sizes()
    paper_segmenters = {
        "deepfashion": {"segmenter": "graphonomy_cihp_deepfashion8", "scoring_protocol": "deepfashion-graphonomy"},
        "cityscapes": {"segmenter": "drn_d_105_cityscapes", "scoring_protocol": "cityscapes-drn105-fullres"},
        "ade20k": {"segmenter": "csail_upernet101_ade20k", "scoring_protocol": "ade20k-upernet101"},
    }
    groupdnet = Preset(
        "groupdnet2020",
        "GroupDNet (Zhu et al., CVPR 2020), Tables 1 and 2: n = 100, m = 19, image-masked mCSD/mOCD, "
        "TF-Inception FID by pytorch-fid's resize at the generated size, don't-care pixels ignored",
        protocol={"n": 100, "m": 19, "mask_mode": "image", "lpips_net": "alex", "diversity_maps": 100,
                  "fid_resize": "legacy_pytorch", "resize_filter": "bilinear", "dont_care": "ignored"},
        datasets=_per_dataset(sizes, **paper_segmenters),
        sources={
            "n": "paper Sec. 4.3: \"we set n=100, m=19 following [56], [17]\" (BicycleGAN's protocol)",
            "m": "paper Sec. 4.3 (as n)",
            "mask_mode": "paper Table 1: mCSD + mOCD ~ LPIPS for global-code models, so L_c is area-weighted "
                         "(docs/protocol.md)",
            "lpips_net": "paper Sec. 4.3: \"ImageNet pre-trained AlexNet\" (LPIPS v0.1)",
            "diversity_maps": "the suite's choice: the first 100 label maps of the split (the paper gives no count)",
            "fid_resize": "Seanseattle/SMIS issue #6: FID by mseitzer/pytorch-fid with the TF weights (its PR #16); "
                          "pytorch-fid resizes with F.interpolate bilinear, align_corners False, no antialiasing "
                          "(mseitzer/pytorch-fid src/pytorch_fid/inception.py, InceptionV3.forward), which is clean-fid's legacy_pytorch resizer, not "
                          "torch-fidelity's TF1 bilinear (legacy_tf)",
            "resize_filter": "pytorch-fid's interpolation (bilinear, no antialiasing), for images not at image_size",
            "image_size": "paper Sec. 4.2 / supplementary: 256x256, Cityscapes 512x256 (the generated size)",
            "dont_care": "paper Sec. 4.3 (\"without considering the classes that can be ignored\") and "
                         "Seanseattle/SMIS issue #6 (\"we ignored the don't care label\": SPADE re-tested gives "
                         "Cityscapes 62.3 / 93.5, ADE20K 42.0 / 81.4)",
            "segmenter": "paper Sec. 4.3: UperNet-101 (ADE20K), DRN-D-105 (Cityscapes), the CIHP parser "
                         "(DeepFashion; Graphonomy stands in for CIHP_PGN here)",
            "scoring_protocol": "Seanseattle/SMIS issue #6: \"tested with the dataset's evaluation method\": "
                                "Cityscapes' own scores at the label maps' 2048x1024 (cityscapes-drn105-fullres), "
                                "ADE20K's own counts absent classes as 0 (ade20k-upernet101)",
            "split": "paper: the test split (`--split test`, the default; Cityscapes' test reads its val images)",
        },
    )
    spade = groupdnet.derive(
        "spade2019",
        "SPADE (Park et al., CVPR 2019), Table 1: don't-care pixels counted in pixel accuracy, DRN-D-105 on "
        "the generated image upsampled to 2048x1024, CSAIL UperNet-101 for ADE20K",
        protocol={"dont_care": "counted"},
        sources={
            "dont_care": "NVlabs/SPADE issue #100 (81.9 in the paper, 93.5 re-tested); xh-liu/CC-FPSE issue #4 and "
                         "EndlessSora/TSIT issue #1: SPADE-era accuracies (~80 %) include the 255-labelled pixels",
            "segmenter": "NVlabs/SPADE issue #39: fyu/drn drn-d-105_ms_cityscapes.pth (Cityscapes), "
                         "CSAILVision/semantic-segmentation-pytorch UperNet-101 (ADE20K); DRN predicts the 19 "
                         "train ids of the 35 label ids (issues #39, #124: label convention cityscapes_labelids)",
            "scoring_protocol": "boschresearch/OASIS issue #18: SPADE's mIoU is reproduced with the official "
                                "DRN-D-105 by upsampling the generated images to 1024x2048 "
                                "(cityscapes-drn105-fullres)",
            "fid_resize": "NVlabs/SPADE issues #39, #51: mseitzer/pytorch-fid (before its TF weights, which this "
                          "suite does not ship: the resize is pytorch-fid's, the network the TF one)",
        },
    )
    oasis = groupdnet.derive(
        "oasis2021",
        "OASIS (Schoenfeld, Sushko et al., ICLR 2021): DRN-D-105 at the generated size with nearest-downsampled "
        "labels, CSAIL UperNet-101 at 256, FID against the 500 validation images resized bicubically",
        protocol={"resize_filter": "bicubic-antialias", "lpips_net": "vgg"},
        datasets={"cityscapes": {"scoring_protocol": "cityscapes-drn105", "fid_samples": 500},
                  "ade20k": {"scoring_protocol": "ade20k-upernet101-256"}},
        sources={
            "scoring_protocol": "boschresearch/OASIS issue #5: DRN at the generated 512x256, label maps "
                                "nearest-downsampled (cityscapes-drn105; the thread does not say whether --ms was "
                                "used, single scale here); issue #17: CSAIL's evaluation with imgSizes (256) "
                                "(ade20k-upernet101-256)",
            "fid_samples": "boschresearch/OASIS issue #2: the 500 Cityscapes validation images (its `test`)",
            "resize_filter": "boschresearch/OASIS issue #2 and dataloaders/CityscapesDataset.py: real images "
                             "resized with PIL bicubic (antialiased when downsampling)",
            "fid_resize": "boschresearch/OASIS utils/fid_scores.py: pytorch-fid's InceptionV3 (resize_input, "
                          "normalize_input) with the TF weights pt_inception-2015-12-05 (README)",
            "lpips_net": "boschresearch/OASIS issue #16: multi-modal LPIPS with the VGG backbone",
        },
    )
    clean = groupdnet.derive(
        "clean",
        "clean-fid (Parmar et al., CVPR 2022): the groupdnet2020 protocol with Inception's input made by "
        "clean-fid's resizer, PIL bicubic to 299x299 before any quantisation",
        protocol={"fid_resize": "clean", "resize_filter": "bicubic-antialias"},
        sources={
            "fid_resize": "GaParmar/clean-fid cleanfid/resize.py build_resizer(\"clean\"): PIL bicubic on float "
                          "channels, clipped, not quantised (the package's own code runs here)",
            "resize_filter": "GaParmar/clean-fid: PIL bicubic (antialiased) for any other resize",
        },
    )
    return {p.name: p for p in (groupdnet, spade, oasis, clean)}


PRESETS: dict[str, Preset] = _builtin()
DEFAULT_PRESET = "groupdnet2020"


# ----------------------------------------------------------------------------- presets from files
def _check_fields(table: Any, where: str, dataset: bool = False) -> dict[str, Any]:
    """The fields of one table, each checked by its one definition (``smisbench.metrics.protocol``)."""
    if not isinstance(table, dict):
        raise SmisbenchError(f"{where} must be a table", f"write the fields under [{where.split(': ')[-1]}]")
    fields = {f.name: f for f in protocol_fields() if f.name not in RUN_FIELDS}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise SmisbenchError(f"{where}.{key} is not a protocol field a preset may set", choose_from(key, fields))
        if dataset and key in SPEC_LEVEL:
            raise SmisbenchError(f"{where}.{key} cannot differ per dataset", f"set {key} under [protocol]")
        problem = fields[key].problem(value)
        if problem is not None:
            raise SmisbenchError(f"{where}.{key} {problem}", f"{key}: {fields[key].hint()}")
        out[key] = list(value) if isinstance(value, (list, tuple)) else value
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
    unknown = sorted(set(data) - set(TOML_KEYS))
    if unknown:
        raise SmisbenchError(f"{path}: {unknown[0]!r} is not a preset key", f"a preset has {', '.join(TOML_KEYS)}")
    base = get_preset(str(data["base"]), relative_to=path.parent) if "base" in data else None
    metrics = data.get("metrics", list(base.metrics if base else TABLE1_METRICS))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise SmisbenchError(f"{path}: metrics must be a non-empty array of metric names",
                             'e.g. metrics = ["mcsd_mocd"]')
    datasets = data.get("datasets", {})
    if not isinstance(datasets, dict) or not all(isinstance(v, dict) for v in datasets.values()):
        raise SmisbenchError(f"{path}: datasets must hold one table per dataset",
                             "write [datasets.cityscapes] and the fields under it")
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise SmisbenchError(f"{path}: sources must map field names to strings", 'e.g. fid_resize = "our paper"')
    protocol = _check_fields(data.get("protocol", {}), f"{path}: protocol")
    per_dataset = {str(name): _check_fields(table, f"{path}: datasets.{name}", dataset=True)
                   for name, table in datasets.items()}
    start = base or Preset("", "")  # no base: only the file's own fields
    preset = start.derive(str(data.get("name", path.stem)), str(data.get("description", "")), protocol=protocol,
                          datasets=per_dataset, sources=dict(sources), metrics=tuple(metrics), source=str(path))
    for dataset in [None, *preset.datasets]:  # every combination must make a valid record
        try:
            preset.eval_protocol(dataset)
        except SmisbenchError as err:
            raise SmisbenchError(f"{path}{f' (dataset {dataset})' if dataset else ''}: {err.problem}",
                                 err.fix) from None
    return preset


def get_preset(ref: str | None = None, relative_to: str | Path | None = None) -> Preset:
    """A preset by name (``groupdnet2020``) or from a ``.toml`` file; None gives the default.

    ``relative_to``: the folder a relative file name is looked up in first (a spec's or preset's own).
    """
    ref = ref or DEFAULT_PRESET
    if ref in PRESETS:
        return PRESETS[ref]
    path = Path(ref)
    if relative_to is not None and not path.is_absolute() and (Path(relative_to) / path).is_file():
        path = Path(relative_to) / path
    if ref.endswith(".toml") or path.is_file():
        return preset_from_toml(path)
    raise SmisbenchError(f"unknown preset {ref!r}",
                         f"use one of: {', '.join(PRESETS)} (`smisbench protocols` lists them), or a preset .toml "
                         "file")


def preset_names() -> list[str]:
    return list(PRESETS)
