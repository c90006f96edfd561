"""Graphonomy's CIHP human parser (``inference.pth``), scoring DeepFashion in 8 classes.

The paper parsed DeepFashion with CIHP_PGN (TensorFlow); Graphonomy's PyTorch CIHP model is
the documented substitute. The network is DeepLab v3+ on a modified aligned Xception (output
stride 16) followed by graph reasoning over the 20 CIHP classes with knowledge transferred
from a 7-class PASCAL-Person-Part graph (``deeplab_xception_transfer_projection_savemem``).
Parameter names follow the released file. Quirks of the original kept on purpose, because the
released weights were trained with them:

* the residual branch of every Xception block that starts with a ReLU sees the ReLU'd input
  (the original applies an in-place ReLU to the block input before the shortcut reads it);
* the third source-graph step reuses ``source_graph_conv2`` (``source_graph_conv3`` is unused);
* the three adjacency matrices are fixed data (``graphonomy_graphs``), not weights.

Inference as ``exp/inference/inference.py``: RGB, ``x * 2 / 255 - 1``, channels reversed to BGR;
scales 1, 0.5, 0.75, 1.25, 1.5, 1.75 (PIL bilinear), each with its horizontal flip averaged
after swapping left/right channels (14<->15, 16<->17, 18<->19); scales resized to scale 1
(bilinear, align_corners=True) and summed; argmax; then CIHP -> DeepFashion-8 mapping.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from smisbench.datasets_config import DEEPFASHION_CLASSES
from smisbench.segmenters.base import Segmenter, SegmenterSpec, as_pil_rgb
from smisbench.segmenters.checkpoints import (
    CheckpointFile, extract_state_dict, load_checkpoint_file, load_state_dict_strict, verify_checksum,
)
from smisbench.segmenters.graphonomy_graphs import graphonomy_adjacencies
from smisbench.segmenters.label_conventions import CIHP_CLASSES, cihp_to_deepfashion8
from smisbench.segmenters.registry import register

SCALES = (1.0, 0.5, 0.75, 1.25, 1.5, 1.75)
LEFT_RIGHT_PAIRS = ((14, 15), (16, 17), (18, 19))


def flip_channel_order(num_classes: int = 20) -> list[int]:
    """Channel permutation that swaps each left/right class pair (the mirror image's classes)."""
    order = list(range(num_classes))
    for a, b in LEFT_RIGHT_PAIRS:
        order[a], order[b] = b, a
    return order


# ---------------------------------------------------------------------------------- Xception backbone
class SeparableConv(nn.Module):
    """Depthwise 3x3 + BN, pointwise 1x1 + BN; ``relu_after`` adds ReLUs after both BNs (the ASPP variant).

    The original's explicit "same" padding is symmetric for odd kernels, i.e. ``padding=dilation``.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, relu_after: bool = False):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, padding=dilation, dilation=dilation, groups=cin, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(cout)
        self.relu_after = relu_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise_bn(self.depthwise(x))
        if self.relu_after:
            x = F.relu(x)
        x = self.pointwise_bn(self.pointwise(x))
        return F.relu(x) if self.relu_after else x


def _rep(cin: int, cout: int, reps: int, stride: int, dilation: int, start_with_relu: bool, grow_first: bool,
         is_last: bool) -> list[nn.Module]:
    """The block body as the original lays it out: ReLU modules between separable convs (they fix key indices)."""
    body: list[nn.Module] = []
    width = cin
    if grow_first:
        body += [nn.ReLU(), SeparableConv(cin, cout, dilation=dilation)]
        width = cout
    for _ in range(reps - 1):
        body += [nn.ReLU(), SeparableConv(width, width, dilation=dilation)]
    if not grow_first:
        body += [nn.ReLU(), SeparableConv(cin, cout, dilation=dilation)]
    if not start_with_relu:
        body = body[1:]
    if stride != 1:
        body += [nn.ReLU(), SeparableConv(cout, cout, stride=2, dilation=dilation)]
    if is_last:
        body += [nn.ReLU(), SeparableConv(cout, cout, dilation=dilation)]
    return body


class XceptionBlock(nn.Module):
    def __init__(self, cin: int, cout: int, reps: int, stride: int = 1, dilation: int = 1,
                 start_with_relu: bool = True, grow_first: bool = True, is_last: bool = False):
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride=1 if is_last else 2, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        self.start_with_relu = start_with_relu
        self.rep = nn.Sequential(*_rep(cin, cout, reps, stride, dilation, start_with_relu, grow_first, is_last))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        shortcut_in = F.relu(inp) if self.start_with_relu else inp
        shortcut = self.skipbn(self.skip(shortcut_in)) if self.skip is not None else shortcut_in
        return self.rep(inp) + shortcut


class XceptionEntryBlock2(nn.Module):
    """The second entry block, which also returns its pre-stride features as the low-level skip."""

    def __init__(self, cin: int = 128, cout: int = 256):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.skipbn = nn.BatchNorm2d(cout)
        self.block2_lastconv = nn.Sequential(nn.ReLU(), SeparableConv(cout, cout, stride=2))
        self.rep = nn.Sequential(*_rep(cin, cout, 2, 1, 1, True, True, False))

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.rep(inp)
        out = self.block2_lastconv(low) + self.skipbn(self.skip(F.relu(inp)))
        return out, low


class Xception(nn.Module):
    """Modified aligned Xception at output stride 16 (middle flow undilated, exit flow dilation 2)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = XceptionBlock(64, 128, reps=2, stride=2, start_with_relu=False)
        self.block2 = XceptionEntryBlock2(128, 256)
        self.block3 = XceptionBlock(256, 728, reps=2, stride=2)
        for i in range(4, 20):
            setattr(self, f"block{i}", XceptionBlock(728, 728, reps=3))
        self.block20 = XceptionBlock(728, 1024, reps=2, grow_first=False, is_last=True)
        self.conv3 = SeparableConv(1024, 1536, dilation=2, relu_after=True)
        self.conv4 = SeparableConv(1536, 1536, dilation=2, relu_after=True)
        self.conv5 = SeparableConv(1536, 2048, dilation=2, relu_after=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.block1(x)
        x, low = self.block2(x)
        for i in range(3, 21):
            x = getattr(self, f"block{i}")(x)
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        return F.relu(self.conv5(x)), low


# ---------------------------------------------------------------------------------- DeepLab v3+ head
class ASPPPointwise(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.atrous_convolution = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.atrous_convolution(x)))


class ASPPSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, rate: int):
        super().__init__()
        self.atrous_convolution = SeparableConv(cin, cout, dilation=rate, relu_after=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.atrous_convolution(x)


# ---------------------------------------------------------------------------------- graph reasoning
class FeaturesToGraph(nn.Module):
    """Soft-assign pixels to ``nodes`` classes and pool their projected features into node vectors."""

    def __init__(self, channels: int, hidden: int, nodes: int):
        super().__init__()
        self.pre_fea = nn.Parameter(torch.empty(channels, nodes))
        self.weight = nn.Parameter(torch.empty(channels, hidden))
        for p in (self.pre_fea, self.weight):
            nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.flatten(2).transpose(1, 2)                      # N, HW, C
        assign = F.softmax(pixels @ self.pre_fea, dim=-1)          # N, HW, nodes
        return F.relu(assign.transpose(1, 2) @ (pixels @ self.weight))  # N, nodes, hidden


class GraphConv(nn.Module):
    """``relu(adj @ x @ W)`` (no adjacency: ``relu(x @ W)``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, adj: torch.Tensor | None = None) -> torch.Tensor:
        support = x @ self.weight
        return F.relu(adj @ support if adj is not None else support)


class GraphTransfer(nn.Module):
    """Carry source-graph nodes to target nodes through a row-softmaxed (relu'd) class similarity."""

    def __init__(self, hidden: int, source_nodes: int, target_nodes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden, hidden))
        nn.init.xavier_uniform_(self.weight)
        # Learned fallback adjacency in the released layout; inference passes the fixed matrix instead.
        self.adj = nn.Parameter(torch.empty(target_nodes, source_nodes))
        nn.init.xavier_uniform_(self.adj)

    def forward(self, source: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return F.relu(F.softmax(F.relu(adj), dim=-1) @ (source @ self.weight))


class GraphToFeatures(nn.Module):
    """Project node vectors back onto pixels with a per-pixel softmax over nodes (the memory-saving form)."""

    def __init__(self, channels: int, out_channels: int, hidden: int):
        super().__init__()
        self.node_fea_for_res = nn.Parameter(torch.empty(channels, 1))
        self.node_fea_for_hidden = nn.Parameter(torch.empty(hidden, 1))
        self.weight = nn.Parameter(torch.empty(hidden, out_channels))
        for p in (self.node_fea_for_res, self.node_fea_for_hidden, self.weight):
            nn.init.xavier_uniform_(p)

    def forward(self, graph: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        pixels = features.flatten(2).transpose(1, 2)                         # N, HW, C
        logits = pixels @ self.node_fea_for_res + (graph @ self.node_fea_for_hidden).transpose(1, 2)  # N, HW, nodes
        out = F.softmax(logits, dim=-1) @ (graph @ self.weight)              # N, HW, out
        return F.relu(out.transpose(1, 2).reshape(n, -1, h, w))


def _similarity_transfer(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    sim = F.normalize(target, dim=-1) @ F.normalize(source, dim=-1).transpose(1, 2)
    return F.softmax(sim, dim=-1) @ source


class GraphonomyCIHP(nn.Module):
    """DeepLab v3+ (Xception) with PASCAL -> CIHP graph transfer; 20 CIHP logits at the input size."""

    def __init__(self, num_classes: int = 20, source_classes: int = 7, hidden: int = 128, channels: int = 256):
        super().__init__()
        self.xception_features = Xception()
        self.aspp1 = ASPPPointwise(2048, 256)
        self.aspp2 = ASPPSeparable(2048, 256, 6)
        self.aspp3 = ASPPSeparable(2048, 256, 12)
        self.aspp4 = ASPPSeparable(2048, 256, 18)
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(2048, 256, 1, bias=False),
                                             nn.BatchNorm2d(256), nn.ReLU())
        self.concat_projection_conv1 = nn.Conv2d(1280, 256, 1, bias=False)
        self.concat_projection_bn1 = nn.BatchNorm2d(256)
        self.feature_projection_conv1 = nn.Conv2d(256, 48, 1, bias=False)
        self.feature_projection_bn1 = nn.BatchNorm2d(48)
        self.decoder = nn.Sequential(ASPPSeparable(304, 256, 1), ASPPSeparable(256, 256, 1))
        self.semantic = nn.Conv2d(channels, num_classes, 1)
        self.target_featuremap_2_graph = FeaturesToGraph(channels, hidden, num_classes)
        self.target_graph_conv1 = GraphConv(hidden, hidden)
        self.target_graph_conv2 = GraphConv(hidden, hidden)
        self.target_graph_conv3 = GraphConv(hidden, hidden)
        self.target_graph_2_fea = GraphToFeatures(channels, channels, hidden)
        self.target_skip_conv = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU())
        self.source_featuremap_2_graph = FeaturesToGraph(channels, hidden, source_classes)
        self.source_graph_conv1 = GraphConv(hidden, hidden)
        self.source_graph_conv2 = GraphConv(hidden, hidden)
        self.source_graph_conv3 = GraphConv(hidden, hidden)  # in the file, never used by the forward pass
        self.transpose_graph = GraphTransfer(hidden, source_classes, num_classes)
        self.fc_graph = GraphConv(hidden * 3, hidden)
        adj = graphonomy_adjacencies()
        self.register_buffer("adj_target", torch.from_numpy(adj["cihp"]), persistent=False)
        self.register_buffer("adj_source", torch.from_numpy(adj["pascal"]), persistent=False)
        self.register_buffer("adj_transfer", torch.from_numpy(adj["cihp_from_pascal"]), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, low = self.xception_features(image)
        pooled = self.global_avg_pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        x = torch.cat((self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled), 1)
        x = F.relu(self.concat_projection_bn1(self.concat_projection_conv1(x)))
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=True)
        low = F.relu(self.feature_projection_bn1(self.feature_projection_conv1(low)))
        x = self.decoder(torch.cat((x, low), 1))

        source = self.source_featuremap_2_graph(x)
        s1 = self.source_graph_conv1(source, self.adj_source)
        s2 = self.source_graph_conv2(s1, self.adj_source)
        s3 = self.source_graph_conv2(s2, self.adj_source)  # sic: the released model was trained this way
        graph = self.target_featuremap_2_graph(x)
        for step, src in enumerate((s1, s2, s3)):
            moved = self.transpose_graph(src, self.adj_transfer)
            graph = self.fc_graph(torch.cat((graph, _similarity_transfer(src, graph), moved), -1))
            conv = (self.target_graph_conv1, self.target_graph_conv2, self.target_graph_conv3)[step]
            graph = conv(graph, self.adj_target)
        x = self.target_skip_conv(x) + self.target_graph_2_fea(graph, x)
        x = self.semantic(x)
        return F.interpolate(x, size=image.shape[2:], mode="bilinear", align_corners=True)


# ---------------------------------------------------------------------------------- inference
def _to_input(pil: Image.Image) -> torch.Tensor:
    array = np.asarray(pil, dtype=np.float32) * 2.0 / 255.0 - 1.0
    return torch.from_numpy(array[:, :, ::-1].copy()).permute(2, 0, 1)  # RGB -> BGR as the original


class GraphonomySegmenter(Segmenter):
    def __init__(self, *args: Any, scales: tuple[float, ...] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.scales = scales or (SCALES if self.multi_scale else (1.0,))
        self._swap = flip_channel_order(20)

    @property
    def native_classes(self) -> tuple[str, ...]:
        return CIHP_CLASSES

    @torch.inference_mode()
    def scores(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Summed CIHP logits (20 channels) over scales and flips; argmax then ``to_eval_classes``."""
        pil = as_pil_rgb(image)
        base = (pil.height, pil.width)
        total = torch.zeros(20, *base, device=self.device)
        for scale in self.scales:
            scaled = pil if scale == 1.0 else pil.resize((int(pil.width * scale), int(pil.height * scale)),
                                                         Image.BILINEAR)
            x = _to_input(scaled)
            batch = torch.stack((x, x.flip(-1))).to(self.device)
            out = self.network(batch)
            out = (out[0] + out[1][self._swap].flip(-1)) / 2
            if tuple(out.shape[1:]) != base:
                out = F.interpolate(out[None], base, mode="bilinear", align_corners=True)[0]
            total += out
        if out_size is not None and tuple(out_size) != base:
            total = F.interpolate(total[None], tuple(out_size), mode="bilinear", align_corners=False)[0]
        return total

    def to_eval_classes(self, native: torch.Tensor) -> torch.Tensor:
        return cihp_to_deepfashion8(native)


def rename_legacy_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Older Graphonomy files name the source graph without its ``source_`` prefix; rename like the original."""
    renamed = {}
    for name, value in state.items():
        if "graph" in name and not any(tag in name for tag in ("source", "target", "fc_", "transpose_graph")):
            if "featuremap_2_graph" in name:
                name = name.replace("featuremap_2_graph", "source_featuremap_2_graph")
            else:
                name = name.replace("graph", "source_graph")
        renamed[name] = value
    return renamed


CHECKPOINT = CheckpointFile(
    "weights", "inference.pth",
    "https://drive.google.com/file/d/1O9YD4kHgs3w2DUcWxtHiEFyWjCBeS_Vc (Graphonomy README, inference script model)",
    None,
    "not pinned yet; third parties report this file's target_featuremap_2_graph.pre_fea is all zeros "
    "(the authors point to corrected checkpoints)",
)


def build() -> GraphonomyCIHP:
    return GraphonomyCIHP()


def load(spec: SegmenterSpec, paths: Mapping[str, Any], *, device: str = "cpu", multi_scale: bool | None = None,
         expected_sha256: Mapping[str, str] | None = None, allowed_globals=(), **options: Any) -> GraphonomySegmenter:
    network = spec.build()
    path = paths["weights"]
    record = verify_checksum(path, "weights", spec.checkpoints, spec.name, (expected_sha256 or {}).get("weights"))
    raw = load_checkpoint_file(path, allowed_globals=allowed_globals, source=spec.name)
    state = rename_legacy_keys(extract_state_dict(raw, f"{spec.name} file {path}"))
    load_state_dict_strict(network, state, f"{spec.name} file {path}",
                           optional=lambda k: k.endswith("num_batches_tracked"))
    pre_fea = network.target_featuremap_2_graph.pre_fea
    if not bool(pre_fea.detach().abs().gt(0).any()):
        message = (f"{spec.name}: {path} has an all-zero target_featuremap_2_graph.pre_fea (the known faulty "
                   "inference.pth); its parses differ from the authors' corrected checkpoints")
        warnings.warn(message, stacklevel=2)
        record.warnings.append(message)
    return GraphonomySegmenter(spec, network, device, multi_scale=True if multi_scale is None else multi_scale,
                               provenance={"checkpoints": [record.to_dict()]}, **options)


SPEC = register(SegmenterSpec(
    name="graphonomy_cihp_deepfashion8",
    dataset="deepfashion",
    classes=DEEPFASHION_CLASSES,
    label_convention="deepfashion8",
    preprocessing={
        "input": "RGB, x * 2 / 255 - 1, channels reversed to BGR",
        "scales": list(SCALES), "resize": "PIL bilinear", "flip": "horizontal, left/right channels swapped",
        "fusion": "each scale bilinear (align_corners=True) to scale 1, logits summed, argmax",
        "class_mapping": "CIHP 20 -> DeepFashion 8: [7,0,0,3,1,3,3,3,5,4,2,3,4,1,2,2,2,2,6,6] (unofficial)",
    },
    checkpoints=(CHECKPOINT,),
    build=build,
    load=load,
    reference="github.com/Gaoyiminggithub/Graphonomy (deeplab_xception_transfer_projection_savemem, "
              "exp/inference/inference.py)",
    published="no DeepFashion number published; the GroupDNet paper parsed with CIHP_PGN instead",
    notes="stand-in for the paper's CIHP_PGN (TensorFlow); the 8-class order is not published by the authors",
    extra={"native_classes": CIHP_CLASSES},
))
