"""The evaluation protocol as one typed record: every setting that can change a reported number.

This module is the one definition of the protocol's fields: name, type, default, allowed values,
lower bound and meaning. :class:`EvalProtocol` checks itself against it, benchmark specs
(``smisbench.benchmark.spec``) derive their validation from :func:`protocol_fields`, and
``docs/protocol.md`` renders the same table (:func:`fields_markdown`, kept current by a test).

mCSD / mOCD masking (``mask_mode``). The paper (Sec. 4.3) does not say how L_c is restricted to
class c's region and the authors lost the code, but its Table 1 settles it. For the three models
with only a global code, mCSD + mOCD is close to their overall LPIPS (VSPADE 0.0304 + 0.1843 =
0.215 vs 0.207; BicycleGAN 0.246 vs 0.228; DSCGAN 0.181 vs 0.163) and mOCD / mCSD is about 6-7,
near C - 1 = 7 for DeepFashion's 8 classes. Both hold only if L_c is area-weighted: the LPIPS of
the two images with everything outside the region masked away, averaged over the whole image
(``"image"``, the default). The sum exceeding LPIPS by 4-11 % fits masking the images (mask
edges add distance). ``"lpips_map"`` (the spatial LPIPS map averaged over the region's own
pixels) is another quantity: a global-code model gets mCSD ~ mOCD (the demo's VSPADE: 0.2447 /
0.2237, 5-8x off the paper by construction), and a model that changes only class c's pixels
still gets mOCD > 0 through LPIPS's receptive field. It stays selectable, never the default.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from smisbench.errors import SmisbenchError


class MaskMode(str, enum.Enum):
    """How L_c is restricted to a region (see the module docstring for why "image" is the default)."""

    IMAGE = "image"  # both images times the region's mask, ordinary LPIPS over the whole image (paper scale)
    LPIPS_MAP = "lpips_map"  # spatial LPIPS map of the full images, averaged over the region's pixels


MASK_MODES = tuple(m.value for m in MaskMode)
MASK_MODE_MEANING = {
    MaskMode.IMAGE.value: "both images masked, LPIPS over the whole image: area-weighted, the paper's scale",
    MaskMode.LPIPS_MAP.value: "spatial LPIPS map averaged over each region's pixels: not the paper's scale",
}
LPIPS_NETS = ("alex", "vgg")
RESIZE_FILTERS = ("bicubic-antialias", "bilinear-antialias", "bicubic", "bilinear", "nearest", "area")
DTYPES = ("float32", "float16", "bfloat16")  # generator dtypes (smisbench.runtime)
FID_DTYPES = ("float32", "float64")  # what torch-fidelity's Inception accepts internally
# How Inception's 299x299 input is made: torch-fidelity's TF1-compatible bilinear inside the network
# (the TF FID graph's own resize), pytorch-fid's torch bilinear (clean-fid's "legacy_pytorch" resizer), or
# clean-fid's PIL bicubic on float values (nothing quantised after it). smisbench.metrics.inception_input.
FID_RESIZES = ("legacy_tf", "legacy_pytorch", "clean")
# Don't-care pixels (ground truth = the convention's ignore id) in pixel accuracy: left out, or kept in the
# denominator where no prediction can be right (smisbench.segmenters.confusion.ConfusionMatrix.pixel_accuracy).
DONT_CARE_RULES = ("ignored", "counted")
# sha256 of OpenAI's released CLIP ViT-B/32 file (ViT-B-32.pt, a TorchScript archive); OpenAI's own
# loader checks the file against this digest, which is also the folder name of its download address.
CLIP_VIT_B32_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("a boolean", "booleans")}


@dataclass(frozen=True)
class ProtocolField:
    """One protocol setting: what a spec may write and what the record accepts.

    ``kind`` is the element type (int, str, bool); ``sequence`` is None for a scalar, else the
    required length (0: any length). ``spec``: a spec may set it under ``[protocol]`` (False: the
    harness fills it from the spec's own keys or the data, as for seed, dtype, device, root, split).
    ``affects``: the stored values (``metrics.toml`` keys) it can change, so a report marks only the
    numbers two protocols really measure differently.
    """

    name: str
    kind: type
    default: Any
    doc: str
    optional: bool = False
    sequence: int | None = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    spec: bool = True
    affects: tuple[str, ...] | None = None  # stored value keys it can change; None: every one, (): none

    def describe(self) -> str:
        """The expected value in words, for error messages."""
        if self.sequence is None:
            return _WORDS[self.kind][0]
        items = _WORDS[self.kind][1]
        return f"an array of {self.sequence} {items}" if self.sequence else f"an array of {items}"

    def hint(self) -> str:
        """What to write instead of a wrong value."""
        if self.choices is not None:
            return "use one of: " + ", ".join(map(str, self.choices))
        bound = f" of at least {self.minimum}" if self.minimum is not None else ""
        return f"give {self.describe()}{bound} ({self.doc})"

    def _scalar_problem(self, value: Any) -> str | None:
        kinds = (int, float) if self.kind is float else (self.kind,)  # a number field takes `1` as well as `1.0`
        if (self.kind is bool) != isinstance(value, bool) or not isinstance(value, kinds):
            return f"must be {_WORDS[self.kind][0]}, not {type(value).__name__} ({value!r})"
        if self.choices is not None and value not in self.choices:
            return f"{value!r} is not allowed"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum}, not {value}"
        return None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this field (None: nothing). Lists and tuples both count as arrays."""
        if value is None:
            return None if self.optional else f"must be {self.describe()}, not empty"
        if self.sequence is None:
            return self._scalar_problem(value)
        if not isinstance(value, (list, tuple)):
            return f"must be {self.describe()}, not {type(value).__name__} ({value!r})"
        if self.sequence and len(value) != self.sequence:
            return f"must be {self.describe()}, not {len(value)} ({list(value)!r})"
        for item in value:
            problem = self._scalar_problem(item)
            if problem is not None:
                return f"item {item!r}: {problem}"
        return None


def _rule(default: Any, doc: str, *, choices: tuple | None = None, minimum: float | None = None,
          spec: bool = True, affects: tuple[str, ...] | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc, "choices": choices, "minimum": minimum,
                                                        "spec": spec, "affects": affects})


SMIS = ("mcsd", "mocd")
DIVERSITY = (*SMIS, "lpips")
FID = ("fid", "fid_clean", "kid", "kid_std", "precision", "recall", "density", "coverage", "fd_dinov2", "fd_clip")
FPS = ("fps",)
SEGMENTATION = ("miou", "accuracy")
# every value computed from generated images (the fast path changes which generator makes them)
GENERATED = (*DIVERSITY, *FID, *SEGMENTATION, "fps_fast")


@dataclass(frozen=True)
class EvalProtocol:
    """Settings of one evaluation; stored with every result. Field meanings: :func:`protocol_fields`."""

    n: int = _rule(100, "mCSD/mOCD: images per class per label map (paper: 100)", minimum=2, affects=SMIS)
    m: int = _rule(19, "mCSD/mOCD and LPIPS diversity: sampled pairs among them (paper: 19)", minimum=1,
                   affects=DIVERSITY)
    mask_mode: str = _rule(MaskMode.IMAGE.value, "mCSD/mOCD: `image` masks both images, LPIPS over the whole image "
                           "(area-weighted, the paper's scale); `lpips_map` averages the spatial LPIPS map over "
                           "the region's pixels", choices=MASK_MODES, affects=SMIS)
    lpips_net: str = _rule("alex", "LPIPS v0.1 backbone (paper: alex)", choices=LPIPS_NETS, affects=DIVERSITY)
    diversity_maps: int | None = _rule(100, "label maps scored for mCSD/mOCD/LPIPS, the first of the split "
                                       "(absent: all)", minimum=1, affects=DIVERSITY)
    fid_samples: int | None = _rule(None, "images for FID, real and generated, and for every metric on the same "
                                    "features (KID, precision/recall, density/coverage, FD-DINOv2, FD-CLIP) "
                                    "(absent: the whole split)", minimum=1, affects=FID)
    image_size: tuple[int, int] | None = _rule(None, "[height, width] real and generated images are brought to "
                                               "before Inception (absent: as the dataset yields them)", minimum=1,
                                               affects=FID)
    resize_filter: str = _rule("bicubic-antialias", "filter of that resize (unused when nothing is resized)",
                               choices=RESIZE_FILTERS, affects=FID)
    seed: int = _rule(0, "seed of every code and pair drawn (a spec's top-level `seed`)", minimum=0, spec=False)
    dtype: str = _rule("float32", "generator dtype for FPS (a spec's top-level `dtype`)", choices=DTYPES,
                       spec=False, affects=FPS)
    fid_dtype: str = _rule("float32", "Inception's internal dtype (torch-fidelity)", choices=FID_DTYPES, affects=FID)
    fid_resize: str = _rule("legacy_tf", "how images reach Inception's 299x299 input for FID, KID, "
                            "precision/recall and density/coverage: `legacy_tf` torch-fidelity's TF1-compatible "
                            "bilinear inside the network (the TF FID graph); `legacy_pytorch` pytorch-fid's "
                            "`F.interpolate` bilinear (align_corners False, no antialiasing) and its 2x - 1 scaling, "
                            "by clean-fid's `legacy_pytorch` resizer; `clean` clean-fid's PIL bicubic on float "
                            "values, nothing quantised after it (metric `fid_clean` always uses `clean`)",
                            choices=FID_RESIZES, affects=FID)
    kid_subsets: int = _rule(100, "KID: random subsets whose MMDs give the mean and standard deviation "
                             "(torch-fidelity's default)", minimum=1, affects=("kid", "kid_std"))
    kid_subset_size: int = _rule(1000, "KID: images per subset, capped at the images there are (torch-fidelity's "
                                 "default)", minimum=2, affects=("kid", "kid_std"))
    kid_seed: int = _rule(2020, "KID: seed of the subset draws (torch-fidelity's `rng_seed` default)", minimum=0,
                          affects=("kid", "kid_std"))
    prc_neighborhood: int = _rule(3, "improved precision/recall: k of the k-th nearest neighbour radius "
                                  "(torch-fidelity's default, Kynkaanniemi et al. 2019)", minimum=1,
                                  affects=("precision", "recall"))
    nearest_k: int = _rule(5, "density/coverage: k of the k-th nearest neighbour radius (Naeem et al. 2020)",
                           minimum=1, affects=("density", "coverage"))
    fd_dinov2_weights: str | None = _rule(None, "FD-DINOv2: path of the official DINOv2 ViT-L/14 file "
                                          "`dinov2_vitl14_pretrain.pth` (never downloaded)", affects=("fd_dinov2",))
    fd_dinov2_sha256: str | None = _rule(None, "its sha256, required with the path (the file is pinned)",
                                         affects=("fd_dinov2",))
    fd_clip_weights: str | None = _rule(None, "FD-CLIP: path of OpenAI's CLIP ViT-B/32 file `ViT-B-32.pt` "
                                        "(never downloaded)", affects=("fd_clip",))
    fd_clip_sha256: str = _rule(CLIP_VIT_B32_SHA256, "its sha256 (default: the official release file's)",
                                affects=("fd_clip",))
    device: str = _rule("cpu", "device (a spec's top-level `device`)", spec=False, affects=FPS)
    batch_size: int = _rule(16, "label maps / images per forward pass (never changes a number)", minimum=1, affects=())
    fps_batch_size: int = _rule(1, "batch size of the FPS measurement", minimum=1, affects=FPS)
    fps_warmup: int = _rule(5, "untimed warm-up passes before the FPS repeats", minimum=0, affects=FPS)
    fps_repeats: int = _rule(20, "timed passes (the median is reported)", minimum=1, affects=FPS)
    stats_cache: bool = _rule(True, "reuse cached FID statistics of the real images", affects=())
    dataset_root: str | None = _rule(None, "names the real images in the FID cache key when the dataset has no "
                                     "`root` (the harness sets it)", spec=False, affects=())
    split: str | None = _rule(None, "the same for the split (the harness sets it)", spec=False, affects=())
    segmenter: str | None = _rule(None, "segmenter for mIoU/accuracy (`smisbench segmenters`)", affects=SEGMENTATION)
    segmenter_checkpoints: tuple[str, ...] | None = _rule(None, "its checkpoint file(s), verified by sha256",
                                                          affects=SEGMENTATION)
    scoring_protocol: str | None = _rule(None, "segmentation scoring protocol (absent: the segmenter's own)",
                                         affects=SEGMENTATION)
    dont_care: str | None = _rule(None, "pixel accuracy: `ignored` leaves don't-care pixels out (GroupDNet, the "
                                  "datasets' own evaluation); `counted` keeps them in the denominator, where no "
                                  "prediction is right (SPADE 2019) (absent: the scoring protocol's, `ignored`)",
                                  choices=DONT_CARE_RULES, affects=("accuracy",))
    segmentation_samples: int | None = _rule(None, "generated images scored for mIoU/accuracy (absent: the whole "
                                             "split)", minimum=0, affects=SEGMENTATION)
    segmenter_train_steps: int = _rule(300, "training steps of the suite-trained synthetic segmenter", minimum=0,
                                       affects=SEGMENTATION)
    fast_path: bool = _rule(True, "generate with the model's exact inference copy where it has one (CG-Norm models), "
                            "checked against the model as defined on the first batch; `false`: the model as defined",
                            affects=GENERATED)
    fast_path_tolerance: float = _rule(1e-4, "largest absolute difference of the inference copy's images from the "
                                       "model's allowed on that first batch (images in [-1, 1]; 16-bit generators "
                                       "are checked in float32); above it the evaluation falls back to the model as "
                                       "defined, with a note", minimum=0, affects=GENERATED)

    preset: str | None = _rule(None, "the preset (`smisbench protocols`) the other fields were taken from; "
                               "recorded only: the fields themselves drive every key", affects=())

    def __post_init__(self) -> None:
        if isinstance(self.mask_mode, MaskMode):
            object.__setattr__(self, "mask_mode", self.mask_mode.value)
        for name in ("image_size", "segmenter_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for spec_field in protocol_fields():
            problem = spec_field.problem(getattr(self, spec_field.name))
            if problem is not None:
                raise SmisbenchError(f"protocol {spec_field.name} {problem}", f"{spec_field.name}: {spec_field.hint()}")

    def replace(self, **changes: Any) -> "EvalProtocol":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("image_size", "segmenter_checkpoints"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out


def _field_of(f: dataclasses.Field, annotation: Any) -> ProtocolField:
    """A ProtocolField from a dataclass field and its resolved annotation (``X``, ``X | None``, tuples of X)."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    optional = type(None) in args
    (base,) = [a for a in args if a is not type(None)]
    sequence = None
    if typing.get_origin(base) is tuple:
        items = typing.get_args(base)
        sequence = 0 if len(items) == 2 and items[1] is Ellipsis else len(items)
        base = items[0]
    meta = f.metadata
    return ProtocolField(f.name, base, f.default, meta["doc"], optional, sequence, meta["choices"], meta["minimum"],
                         meta["spec"], meta["affects"])


@functools.lru_cache(maxsize=1)
def protocol_fields() -> tuple[ProtocolField, ...]:
    """Every field of :class:`EvalProtocol`, in declaration order."""
    hints = typing.get_type_hints(EvalProtocol)
    return tuple(_field_of(f, hints[f.name]) for f in dataclasses.fields(EvalProtocol))


def protocol_field(name: str) -> ProtocolField:
    return next(f for f in protocol_fields() if f.name == name)


def fields_markdown(fields: tuple[ProtocolField, ...] | None = None) -> str:
    """The fields as a Markdown table (``docs/protocol.md`` holds this text)."""
    lines = ["| field | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in fields or protocol_fields():
        allowed = ", ".join(f"`{c}`" for c in f.choices) if f.choices else (
            f">= {f.minimum}" if f.minimum is not None else "")
        default = "absent" if f.default is None else f"`{str(f.default).lower() if f.kind is bool else f.default}`"
        where = "" if f.spec else " Not a spec `[protocol]` key."
        lines.append(f"| `{f.name}` | {f.describe()} | {default} | {allowed} | {f.doc}.{where} |")
    return "\n".join(lines) + "\n"
