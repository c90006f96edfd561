"""One feature extraction per evaluation, shared by every metric on network features.

FID, ``fid_clean``, KID, precision/recall, density/coverage, FD-DINOv2 and FD-CLIP each ask
the evaluation's :class:`FeaturePass` for a feature space by name; each space's real and
generated features are extracted once, from the same first ``fid_samples`` items, and every
metric of that space reads them. KID, precision/recall and density/coverage therefore use the
very pool features FID uses (``inception/<fid_resize>``).

Spaces: ``inception/legacy_tf``, ``inception/legacy_pytorch`` and ``inception/clean`` (the provisioned TF
Inception, three ways to its 299x299 input, :mod:`smisbench.metrics.inception_input`), ``dinov2`` and ``clip``
(:mod:`smisbench.metrics.extra_spaces`). Real statistics are cached per space under
:class:`~smisbench.metrics.fid.RealStatsKey` (extractor, layer, input resize and weights sha256 are
part of it); when a metric needs the real features themselves they are stored in the same file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from smisbench.errors import UnknownNameError
from smisbench.metrics.base import EvalContext
from smisbench.metrics.fid import EXTRACTOR_NAME, FEATURE_LAYER, FeatureBank

SHARED_KEY = "feature_pass"
SPACES = ("inception/legacy_tf", "inception/legacy_pytorch", "inception/clean", "dinov2", "clip")


@dataclass
class Space:
    """One network and the way images reach it, with the features gathered for it."""

    name: str
    extractor: str  # the extractor's identity in the cache key
    layer: str
    input_resize: str
    weights_sha256: str
    dtype: str
    features_of: Callable[[torch.Tensor], torch.Tensor]  # uint8 (N, 3, H, W) -> (N, D) float32
    describe: str
    needs_real_features: bool = False
    real: FeatureBank = field(default_factory=FeatureBank)
    fake: FeatureBank = field(default_factory=FeatureBank)
    key: Any = None
    cached: dict[str, np.ndarray] | None = None
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _batched(extractor: torch.nn.Module, batch_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from smisbench.metrics.fid import extract_features

    return lambda images: extract_features(extractor, images, batch_size)


def _inception_space(ctx: EvalContext, resize: str) -> Space:
    from smisbench.metrics.fid import load_inception
    from smisbench.metrics.inception_input import RESIZE_MEANING, inception_features

    p = ctx.protocol
    if "inception" not in ctx.shared:
        ctx.shared["inception"] = load_inception(ctx.weights_dir, ctx.device, p.fid_dtype)
    extractor = ctx.shared["inception"]
    sha = getattr(extractor, "weights_sha256", "unknown")
    ctx.provenance.setdefault("weights", {})["fid-inception"] = sha
    return Space(f"inception/{resize}", EXTRACTOR_NAME, FEATURE_LAYER, resize, sha, p.fid_dtype,
                 lambda images: inception_features(extractor, images, resize, p.batch_size),
                 f"TF Inception-v3 pool3 (2048-d, torch-fidelity layout); {RESIZE_MEANING[resize]}")


def _extra_space(ctx: EvalContext, name: str) -> Space:
    p = ctx.protocol
    if name not in ctx.shared:
        if name == "dinov2":
            from smisbench.metrics.dinov2 import load_dinov2

            ctx.shared[name] = load_dinov2(p.fd_dinov2_weights, p.fd_dinov2_sha256, ctx.device)
        else:
            from smisbench.metrics.extra_spaces import load_clip

            ctx.shared[name] = load_clip(p.fd_clip_weights, p.fd_clip_sha256, ctx.device)
    extractor = ctx.shared[name]
    sha = getattr(extractor, "weights_sha256", "unknown")
    ctx.provenance.setdefault("weights", {})[f"fd-{name}"] = sha
    layer = extractor.features_list[0]
    arch = getattr(extractor, "architecture", extractor.get_name())
    return Space(name, extractor.get_name(), layer, "legacy_tf", sha, "float32", _batched(extractor, p.batch_size),
                 f"{arch}; torch-fidelity's preprocessing (TF1-compatible bilinear to its input size)")


class FeaturePass:
    """The feature spaces of one evaluation and their real / generated features."""

    def __init__(self, ctx: EvalContext):
        p = ctx.protocol
        total = len(ctx.dataset)
        self.count = total if p.fid_samples is None else min(int(p.fid_samples), total)
        if p.fid_samples is not None and p.fid_samples > total:
            ctx.note(f"features: {p.fid_samples} samples asked (fid_samples), the dataset has {total}; "
                     f"FID and the metrics on the same features use {total}")
        self.spaces: dict[str, Space] = {}
        self.seen: set[int] = set()
        self.keyed = False
        self.gathered = False

    def want(self, ctx: EvalContext, name: str, real_features: bool = False) -> Space:
        """The space ``name`` (made on first use); ``real_features``: the caller reads the real features too."""
        if name not in self.spaces:
            if self.seen:
                raise RuntimeError("feature spaces must be asked for before the pass starts")
            if name.startswith("inception/") and name in SPACES:
                self.spaces[name] = _inception_space(ctx, name.split("/", 1)[1])
            elif name in SPACES:
                self.spaces[name] = _extra_space(ctx, name)
            else:
                raise UnknownNameError("feature space", name, list(SPACES))
            self.spaces[name].real, self.spaces[name].fake = FeatureBank(self.count), FeatureBank(self.count)
        self.spaces[name].needs_real_features |= real_features
        return self.spaces[name]

    # ------------------------------------------------------------------ the pass
    def _key_spaces(self, ctx: EvalContext, real_size: tuple[int, int]) -> None:
        from smisbench.metrics.fid import load_cached_stats, real_stats_key

        p = ctx.protocol
        for space in self.spaces.values():
            key = real_stats_key(ctx.dataset, ctx.dataset_config.name, p, real_size, space.weights_sha256,
                                 self.count, input_resize=space.input_resize)
            if key is None:
                ctx.note("features: real statistics not cached (the dataset names no root/split; set "
                         "protocol.dataset_root and protocol.split to cache them)")
            else:
                if not key.reader:
                    ctx.note("features: the dataset does not describe its preprocessing (no image_identity()); "
                             "the real statistics are cached under its root and split only")
                key = dataclasses.replace(key, extractor=space.extractor, feature_layer=space.layer,
                                          dtype=space.dtype)
                if p.stats_cache:
                    space.cached = load_cached_stats(key, ctx.stats_cache_dir, space.needs_real_features)
            space.key = key
        self.keyed = True

    def feed(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        """Extract every space's features of one batch (a second call for the same batch does nothing)."""
        from smisbench.metrics.fid import resize_images, to_uint8

        if generated is None or start in self.seen:
            return
        self.seen.add(start)
        take = min(len(batch["label"]), self.count - start)
        if take <= 0 or not self.spaces:
            return
        p = ctx.protocol
        real, fake = batch["image"][:take].float(), generated[:take].float()
        size = tuple(p.image_size) if p.image_size else tuple(real.shape[-2:])
        if not self.keyed:
            self._key_spaces(ctx, tuple(real.shape[-2:]))
        fake_u8 = to_uint8(resize_images(fake, size, p.resize_filter))
        real_u8 = None
        if any(space.cached is None for space in self.spaces.values()):
            real_u8 = to_uint8(resize_images(real, size, p.resize_filter))
        for space in self.spaces.values():
            if space.cached is None:
                space.real.add(space.features_of(real_u8), start)
            space.fake.add(space.features_of(fake_u8), start)

    def gather(self) -> None:
        """Sharded evaluation: every rank's features on every rank, in item order, once (the first metric
        to finish calls it; a no-op in one process). Rank 0 then computes from the whole, as one process."""
        if self.gathered:
            return
        self.gathered = True
        for space in self.spaces.values():
            space.real.gather()
            space.fake.gather()

    # ------------------------------------------------------------------ results
    def real_features(self, ctx: EvalContext, space: Space) -> torch.Tensor:
        """The real features (asked for with ``want(..., real_features=True)``), cached with the statistics."""
        self.real_stats(ctx, space)
        if space.cached is not None:
            return torch.from_numpy(space.cached["features"])
        return space.real.tensor()

    def fake_features(self, space: Space) -> torch.Tensor:
        return space.fake.tensor()

    def real_stats(self, ctx: EvalContext, space: Space) -> dict[str, np.ndarray]:
        """mu/sigma of the real features, from the cache or computed (and then cached) once."""
        from smisbench.metrics.fid import save_cached_stats, statistics

        if "real" not in space.stats:
            if space.cached is None and space.real.count != space.fake.count:
                from smisbench.errors import SmisbenchError

                # another rank found a cache file rank 0 missed: rank 0 holds only its own real features
                raise SmisbenchError("the real statistics of the feature metrics were cached by another process "
                                     "during this evaluation", "run the same command again (it uses the cached "
                                     "statistics)")
            if space.cached is not None:
                space.stats["real"] = {"mu": space.cached["mu"], "sigma": space.cached["sigma"]}
            else:
                space.stats["real"] = statistics(space.real.tensor())
                if space.key is not None and ctx.protocol.stats_cache:
                    features = space.real.tensor().numpy() if space.needs_real_features else None
                    save_cached_stats(space.key, space.stats["real"], ctx.stats_cache_dir, features)
        return space.stats["real"]

    def fake_stats(self, space: Space) -> dict[str, np.ndarray]:
        from smisbench.metrics.fid import statistics

        if "fake" not in space.stats:
            space.stats["fake"] = statistics(space.fake.tensor())
        return space.stats["fake"]

    def details(self, space: Space) -> dict[str, Any]:
        """What a metric of this space stores in its details: samples, cache use, features, pixel format."""
        from smisbench.imaging import UINT8_RULE

        return {
            "samples": space.fake.count, "real_stats_cached": space.cached is not None,
            "stats_key": None if space.key is None else space.key.to_dict(),
            "features": space.describe, "fid_resize": space.input_resize,
            "format": f"uint8 in memory ({UINT8_RULE}), as a PNG would store it",
        }


def feature_pass(ctx: EvalContext) -> FeaturePass:
    """The evaluation's one FeaturePass (made by the first metric that asks)."""
    if SHARED_KEY not in ctx.shared:
        ctx.shared[SHARED_KEY] = FeaturePass(ctx)
    return ctx.shared[SHARED_KEY]
