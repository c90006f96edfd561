"""KID, improved precision/recall and density/coverage of two feature sets, each by the library that defines it.

Feature sets are (N, D) float32 tensors; the generated set is torch-fidelity's ``input1``
(``features_1``), the real set its ``input2``, so the subset draws of KID and the roles in
precision/recall are torch-fidelity's own.

- KID: ``torch_fidelity.metric_kid.kid_features_to_metric`` (cubic polynomial kernel, unbiased
  MMD^2, mean and standard deviation over ``subsets`` random subsets drawn with ``seed``).
- Precision/recall (Kynkaanniemi et al. 2019): ``torch_fidelity.metric_prc.prc_features_to_metric``,
  a point inside a k-NN ball when its distance is <= the radius, in its memory-saving batched form.
- Density/coverage (Naeem et al. 2020): ``prdc.compute_prdc`` (strict < against the radius). It also
  returns a precision and recall; those are not reported (the torch-fidelity ones are).
"""

from __future__ import annotations

import contextlib
import io

import torch

from smisbench.errors import SmisbenchError


def _check(fake: torch.Tensor, real: torch.Tensor, least: int, what: str, fix: str) -> None:
    if fake.shape[1:] != real.shape[1:]:
        raise SmisbenchError(f"{what}: feature sets of width {fake.shape[1:]} and {real.shape[1:]}",
                             "compute both sets with the same network")
    smaller = min(fake.shape[0], real.shape[0])
    if smaller < least:
        raise SmisbenchError(f"{what} needs at least {least} images per set, got {smaller}", fix)


def kid(fake: torch.Tensor, real: torch.Tensor, subsets: int, subset_size: int, seed: int) -> dict[str, float]:
    """{"kid", "kid_std", "subset_size"}; the subset size is capped at the smaller set."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    _check(fake, real, 2, "KID", "use more samples (protocol fid_samples)")
    size = min(int(subset_size), fake.shape[0], real.shape[0])
    out = kid_features_to_metric(fake.float().cpu(), real.float().cpu(), kid_subsets=int(subsets),
                                 kid_subset_size=size, rng_seed=int(seed), verbose=False)
    return {"kid": float(out[KEY_METRIC_KID_MEAN]), "kid_std": float(out[KEY_METRIC_KID_STD]), "subset_size": size}


def precision_recall(fake: torch.Tensor, real: torch.Tensor, neighborhood: int,
                     batch_size: int = 10000) -> dict[str, float]:
    """{"precision", "recall"} with k = ``neighborhood``."""
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    _check(fake, real, neighborhood + 1, "precision/recall",
           f"use more samples than prc_neighborhood = {neighborhood} (protocol fid_samples)")
    out = prc_features_to_metric(fake.float().cpu(), real.float().cpu(), prc_neighborhood=int(neighborhood),
                                 prc_batch_size=int(batch_size), save_cpu_ram=True, verbose=False)
    return {"precision": float(out[KEY_METRIC_PRECISION]), "recall": float(out[KEY_METRIC_RECALL])}


def density_coverage(fake: torch.Tensor, real: torch.Tensor, nearest_k: int) -> dict[str, float]:
    """{"density", "coverage"} with k = ``nearest_k``; prdc's progress line is kept off stdout."""
    from prdc import compute_prdc

    _check(fake, real, nearest_k + 2, "density/coverage",
           f"use at least nearest_k + 2 = {nearest_k + 2} samples (protocol fid_samples)")
    with contextlib.redirect_stdout(io.StringIO()):
        out = compute_prdc(real_features=real.float().cpu().numpy(), fake_features=fake.float().cpu().numpy(),
                           nearest_k=int(nearest_k))
    return {"density": float(out["density"]), "coverage": float(out["coverage"])}
