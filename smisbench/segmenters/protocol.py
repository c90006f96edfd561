"""The segmentation scoring protocol as data, so every choice that moves mIoU is named and recorded.

Published SMIS numbers differ in: the size the segmenter sees (generated size or upsampled to
the dataset's full size), whether logits (bilinear) or predicted labels (nearest) are resized
to the common size where they meet the ground truth, which pixels are ignored, whether those
don't-care pixels still count in pixel accuracy, and how classes absent from both prediction
and ground truth enter the mean. Each is a field here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Mapping

from smisbench.errors import SmisbenchError
from smisbench.metrics.protocol import DONT_CARE_RULES
from smisbench.registry import SCORING_PROTOCOLS
from smisbench.segmenters.confusion import ABSENT_CLASS_RULES

Size = tuple[int, int]


@dataclass(frozen=True)
class ScoringProtocol:
    """How generated images and label maps are turned into one confusion matrix.

    ``segmenter_input``: ``"generated"`` (the image as saved) or an (h, w) the image is resized to
    (PIL bicubic) before segmentation. ``common_size``: where prediction and ground truth meet:
    ``"label"`` (the label map's size), ``"generated"`` (the generated image's size) or an (h, w).
    ``resize``: ``"logits"`` resizes class scores bilinearly to the common size before argmax;
    ``"labels"`` takes the argmax at the segmenter's size and resizes labels by nearest neighbour.
    Ground-truth maps are always resized by nearest neighbour. ``ignore_index`` is the evaluation id
    of don't-care pixels (what the label convention maps them to); they are left out of the matrix
    and, with ``dont_care = "ignored"``, out of pixel accuracy; ``"counted"`` keeps them in its
    denominator (SPADE's 2019 numbers). ``segmenter_options`` go to the segmenter's loader (CSAIL
    UperNet's ``short_sides``).
    """

    name: str
    segmenter: str
    label_convention: str
    absent_class_rule: Literal["nanmean", "sceneparsing"] = "nanmean"
    ignore_index: int = 255
    segmenter_input: Literal["generated"] | Size = "generated"
    common_size: Literal["label", "generated"] | Size = "label"
    resize: Literal["logits", "labels"] = "logits"
    multi_scale: bool | None = None
    dont_care: Literal["ignored", "counted"] = "ignored"
    segmenter_options: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if self.dont_care not in DONT_CARE_RULES:
            raise SmisbenchError(f"protocol {self.name}: dont_care {self.dont_care!r} is not allowed",
                                 f"use one of: {', '.join(DONT_CARE_RULES)}")
        if self.absent_class_rule not in ABSENT_CLASS_RULES:
            raise SmisbenchError(f"protocol {self.name}: unknown absent-class rule {self.absent_class_rule!r}",
                                 f"use one of: {', '.join(ABSENT_CLASS_RULES)}")
        if self.resize not in ("logits", "labels"):
            raise SmisbenchError(f"protocol {self.name}: resize must be 'logits' or 'labels', got {self.resize!r}",
                                 "resize class scores bilinearly ('logits') or predicted labels by nearest ('labels')")
        for field_name, value, words in (("segmenter_input", self.segmenter_input, ("generated",)),
                                         ("common_size", self.common_size, ("label", "generated"))):
            if isinstance(value, str):
                if value not in words:
                    raise SmisbenchError(f"protocol {self.name}: {field_name} {value!r} is not one of {words}",
                                         f"use {' or '.join(words)} or an explicit (height, width)")
            elif not (len(value) == 2 and all(int(v) > 0 for v in value)):
                raise SmisbenchError(f"protocol {self.name}: {field_name} {value!r} is not a (height, width)",
                                     "give two positive integers")

    def with_overrides(self, **changes: Any) -> "ScoringProtocol":
        """A copy with some fields changed (the CLI's --absent-class-rule, --common-size, ...)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["segmenter_options"] = dict(self.segmenter_options)
        for key in ("segmenter_input", "common_size"):
            if not isinstance(data[key], str):
                data[key] = list(data[key])
        return data

    def segmenter_size(self, generated: Size) -> Size:
        return generated if self.segmenter_input == "generated" else tuple(self.segmenter_input)  # type: ignore

    def target_size(self, generated: Size, label: Size) -> Size:
        if self.common_size == "label":
            return label
        if self.common_size == "generated":
            return generated
        return tuple(self.common_size)  # type: ignore[return-value]


def register_protocol(protocol: ScoringProtocol, replace: bool = False) -> ScoringProtocol:
    """Add a scoring protocol under ``protocol.name`` (a taken name raises unless ``replace``)."""
    return SCORING_PROTOCOLS.register(protocol.name, protocol, replace)


def protocol_names() -> list[str]:
    return sorted(SCORING_PROTOCOLS.names())


def get_protocol(name: str) -> ScoringProtocol:
    return SCORING_PROTOCOLS.get(name)


def default_protocol_for(segmenter: str) -> ScoringProtocol:
    """The registered protocol of a segmenter, or a plain one (nan-mean, label size, logits) for others."""
    for _, protocol in SCORING_PROTOCOLS.items():
        if protocol.segmenter == segmenter:
            return protocol
    from smisbench.segmenters.registry import get_spec

    spec = get_spec(segmenter)
    return ScoringProtocol(f"{segmenter}-default", segmenter, spec.label_convention)


register_protocol(ScoringProtocol(
    "ade20k-upernet101", "csail_upernet101_ade20k", "ade20k_sceneparsing",
    absent_class_rule="sceneparsing", common_size="label", resize="logits", multi_scale=True,
    notes="CSAIL's evaluation: multi-scale, probabilities at the label size, absent classes count 0",
))
register_protocol(ScoringProtocol(
    "cityscapes-drn105", "drn_d_105_cityscapes", "cityscapes_labelids",
    absent_class_rule="nanmean", common_size="generated", resize="logits", multi_scale=False,
    notes="segmenter on the generated image as saved; labels resized (nearest) to the generated size; "
          "DRN's own nan-mean",
))
register_protocol(ScoringProtocol(
    "cityscapes-drn105-fullres", "drn_d_105_cityscapes", "cityscapes_labelids",
    absent_class_rule="nanmean", segmenter_input=(1024, 2048), common_size="label", resize="logits",
    multi_scale=False,
    notes="generated image upsampled (bicubic) to 2048x1024 as DRN was trained, scored at the label size",
))
register_protocol(ScoringProtocol(
    "ade20k-upernet101-256", "csail_upernet101_ade20k", "ade20k_sceneparsing",
    absent_class_rule="sceneparsing", common_size="generated", resize="logits", multi_scale=False,
    segmenter_options={"short_sides": (256,)},
    notes="OASIS's setting (boschresearch/OASIS issue #17): CSAIL's evaluation with imgSizes (256), one scale, "
          "on the 256x256 generated images and labels at that size",
))
register_protocol(ScoringProtocol(
    "deepfashion-graphonomy", "graphonomy_cihp_deepfashion8", "deepfashion8",
    absent_class_rule="nanmean", common_size="label", resize="logits", multi_scale=True,
    notes="Graphonomy CIHP parser (stand-in for CIHP_PGN), 20 -> 8 classes after argmax",
))
register_protocol(ScoringProtocol(
    "ade20k-mmseg-upernet101", "mmseg_upernet_r101_ade20k", "ade20k_sceneparsing",
    absent_class_rule="nanmean", common_size="label", resize="logits", multi_scale=False,
    notes="mmseg's test pipeline (short side 512) and IoUMetric's nan-mean",
))
register_protocol(ScoringProtocol(
    "cityscapes-mmseg-upernet101", "mmseg_upernet_r101_cityscapes", "cityscapes_labelids",
    absent_class_rule="nanmean", common_size="label", resize="logits", multi_scale=False,
    notes="mmseg's test pipeline (resize to 2048x1024 keep ratio) and IoUMetric's nan-mean",
))
