"""LPIPS v0.1 on the provisioned AlexNet: against the lpips package, on real images, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_weights import lpips_alex, provisioned_weights  # noqa: F401  (fixtures)
from smisbench.errors import WeightsError
from smisbench.metrics.lpips_metric import ImageRangeError, LPIPSMetric, check_image_range, full_state_dict

# lpips.LPIPS passes torchvision the deprecated `pretrained` argument; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torchvision")


def _real_image(samples, size: int = 128) -> torch.Tensor:
    from PIL import Image

    path = samples / "cihp_pgn" / "datasets" / "CIHP" / "images" / "0002190.jpg"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with Image.open(path) as image:
        image = image.convert("RGB")
        side = min(image.size)
        image = image.crop((0, 0, side, side)).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def test_range_check_refuses_wrong_scales():
    check_image_range(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ImageRangeError, match=r"x / 127.5 - 1"):
        check_image_range(torch.full((1, 3, 8, 8), 200.0))
    with pytest.raises(ImageRangeError, match=r"\(B, 3, H, W\)"):
        check_image_range(torch.zeros(3, 8, 8))
    with pytest.raises(ImageRangeError, match="float tensor"):
        check_image_range(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_missing_linear_weights_are_an_error_not_a_silent_default():
    import lpips

    model = lpips.LPIPS(pretrained=False, pnet_rand=True, verbose=False)
    backbone = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in model.state_dict().items()
                if k.startswith("net.")}
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256))}
    with pytest.raises(WeightsError, match="lin4.model.1.weight"):
        full_state_dict(model, backbone, linear)
    linear["lin4.model.1.weight"] = torch.rand(1, 256, 1, 1)
    linear["lin5.model.1.weight"] = torch.rand(1, 256, 1, 1)
    with pytest.raises(WeightsError, match="lin5"):
        full_state_dict(model, backbone, linear)


@pytest.mark.weights
def test_identical_images_have_distance_zero(lpips_alex, samples):
    image = _real_image(samples)
    assert float(lpips_alex.distance(image, image)[0]) == 0.0
    assert float(lpips_alex.spatial_map(image, image).abs().max()) == 0.0


@pytest.mark.weights
def test_equals_the_lpips_package_on_the_same_tensors(lpips_alex, samples):
    """lpips.LPIPS's own forward (its wheel's linear layers, our trunk) against our split computation."""
    import lpips

    reference = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)  # wheel's alex.pth
    trunk = {k: v for k, v in lpips_alex.model.state_dict().items() if k.startswith("net.")}
    spatial = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, spatial=True, verbose=False)
    for model in (reference, spatial):
        assert not model.load_state_dict(trunk, strict=False).unexpected_keys
    a = _real_image(samples)
    generator = torch.Generator().manual_seed(0)
    b = (a + 0.3 * torch.randn(a.shape, generator=generator)).clamp(-1, 1)
    with torch.no_grad():
        expected, expected_map = reference(a, b).reshape(-1), spatial(a, b)
    assert float(lpips_alex.distance(a, b)[0]) == pytest.approx(float(expected[0]), abs=1e-6)
    assert torch.allclose(lpips_alex.spatial_map(a, b), expected_map, atol=1e-6)
    assert float(expected[0]) > 0.05


@pytest.mark.weights
def test_distance_grows_with_blur_and_noise(lpips_alex, samples):
    from torchvision.transforms.functional import gaussian_blur

    image = _real_image(samples)
    blurred = torch.cat([gaussian_blur(image, kernel_size=21, sigma=s) for s in (0.6, 1.5, 3.0, 6.0)])
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(image.shape, generator=generator)
    noisy = torch.cat([(image + s * noise).clamp(-1, 1) for s in (0.05, 0.15, 0.3, 0.6)])
    for distorted in (blurred, noisy):
        distances = lpips_alex.distance(image.expand_as(distorted), distorted).tolist()
        assert distances == sorted(distances) and len(set(distances)) == 4, distances
        assert distances[0] > 0


@pytest.mark.weights
def test_wrong_image_range_is_refused(lpips_alex, samples):
    image = _real_image(samples)
    with pytest.raises(ImageRangeError, match="outside the expected"):
        lpips_alex.distance((image + 1) * 127.5, (image + 1) * 127.5)


@pytest.mark.weights
def test_vgg_variant_loads(provisioned_weights, samples):
    metric = LPIPSMetric.load("vgg", provisioned_weights)
    image = _real_image(samples, 64)
    assert float(metric.distance(image, image)[0]) == 0.0
    assert metric.provenance["lpips"] == "v0.1 vgg"
