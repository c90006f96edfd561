"""Dataset readers on tiny trees in each dataset's real layout, built inside the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smisbench.data.registry import build_dataset, dataset_names, reader_options
from smisbench.errors import LabelMapError, SmisbenchError, UnknownNameError
from smisbench.labels import instance_edges


def write_rgb(path: Path, height: int, width: int, seed: int = 0, fmt: str | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path, format=fmt)
    return array


def write_label(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint16:
        Image.fromarray(array.astype(np.uint16)).save(path)  # mode I;16, as Cityscapes instanceIds
    else:
        Image.fromarray(array.astype(np.uint8), mode="L").save(path)


def blocks(height: int, width: int, values: list[int]) -> np.ndarray:
    """Vertical stripes of class ids, wide enough to survive a nearest resize."""
    label = np.zeros((height, width), dtype=np.uint8)
    for i, v in enumerate(values):
        label[:, i * width // len(values):(i + 1) * width // len(values)] = v
    return label


# ----- DeepFashion (SMIS layout) -----

def deepfashion_tree(root: Path, names=("img_1", "img_2", "img_10"), phase: str = "train") -> Path:
    for i, name in enumerate(names):
        write_rgb(root / phase / f"{name}.jpg", 40, 30, seed=i, fmt="JPEG")
        write_label(root / f"cihp_{phase}_mask" / f"{name}.png", blocks(40, 30, [7, i % 7, 3]))
    return root


def test_deepfashion_items_and_official_preprocessing(tmp_path):
    root = deepfashion_tree(tmp_path)
    ds = build_dataset("deepfashion", root, "train", flip=False)
    assert len(ds) == 3
    assert [name for name, _ in ds.pairs] == ["img_1", "img_2", "img_10"]  # natural order
    item = ds[1]
    assert set(item) == {"label", "image", "name"}
    assert item["label"].dtype == torch.int64 and item["label"].shape == (256, 256)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 256, 256)
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    expected = np.array(Image.fromarray(blocks(40, 30, [7, 1, 3])).resize((256, 256), Image.NEAREST))
    assert torch.equal(item["label"], torch.from_numpy(expected.astype(np.int64)))
    assert item["name"] == "img_2"


def test_deepfashion_test_split_and_val_alias(tmp_path):
    root = deepfashion_tree(tmp_path, names=("a",), phase="test")
    deepfashion_tree(tmp_path, names=("b", "c"), phase="train")
    assert len(build_dataset("deepfashion", root, "test")) == 1
    assert build_dataset("deepfashion", root, "val").pairs[0][0] == "a"


def test_training_flip_is_deterministic_per_epoch_and_index(tmp_path):
    root = deepfashion_tree(tmp_path)
    ds = build_dataset("deepfashion", root, "train", size=32)
    flips = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        first = ds[0]["label"]
        assert torch.equal(first, ds[0]["label"])  # same epoch and index: same draw
        flips.append(bool(first[0, 0] != 7))  # column 0 is class 7 unless flipped
    assert any(flips) and not all(flips)
    test = build_dataset("deepfashion", root, "train", size=32, flip=False)
    assert all(int(test[0]["label"][0, 0]) == 7 for _ in range(2))


def test_unmatched_basenames_list_the_first_files(tmp_path):
    root = deepfashion_tree(tmp_path, names=[f"x{i}" for i in range(8)])
    for i in range(7):
        (root / "train" / f"x{i}.jpg").unlink()
    with pytest.raises(SmisbenchError) as err:
        build_dataset("deepfashion", root, "train")
    message = str(err.value)
    assert "7 label maps" in message and "x0.png" in message and "(and 2 more)" in message


def test_missing_folder_and_empty_dataset_are_refused(tmp_path):
    with pytest.raises(SmisbenchError, match="does not exist"):
        build_dataset("deepfashion", tmp_path, "train")
    (tmp_path / "train").mkdir()
    (tmp_path / "cihp_train_mask").mkdir()
    with pytest.raises(SmisbenchError, match="no image/label pairs"):
        build_dataset("deepfashion", tmp_path, "train")


def test_out_of_range_labels_name_the_file(tmp_path):
    root = deepfashion_tree(tmp_path)
    write_label(root / "cihp_train_mask" / "img_2.png", blocks(40, 30, [7, 12, 3]))
    ds = build_dataset("deepfashion", root, "train", size=32)
    with pytest.raises(LabelMapError, match=r"img_2\.png.*\[12\]"):
        ds[1]
    report = ds.verify(progress=False)
    assert report.checked == 3 and len(report.problems) == 1 and "img_2.png" in report.problems[0]
    with pytest.raises(SmisbenchError, match="1 of 3 items"):
        ds.raise_if_invalid(progress=False)


def test_unreadable_image_names_the_file(tmp_path):
    root = deepfashion_tree(tmp_path)
    (root / "train" / "img_10.jpg").write_bytes(b"not a jpeg at all")
    ds = build_dataset("deepfashion", root, "train", size=32)
    with pytest.raises(SmisbenchError, match=r"cannot read image .*img_10\.jpg"):
        ds[2]


def test_image_label_size_mismatch_is_refused(tmp_path):
    root = deepfashion_tree(tmp_path)
    write_rgb(root / "train" / "img_1.jpg", 41, 30, fmt="JPEG")
    with pytest.raises(LabelMapError, match="img_1.jpg is 30x41"):
        build_dataset("deepfashion", root, "train", size=32)[0]


def test_instance_label_size_mismatch_is_refused_in_the_same_words(tmp_path):
    """One size check for images and instance maps: both say WxH (width x height)."""
    root = cityscapes_tree(tmp_path, frames=1)
    instance = root / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png"
    write_label(instance, np.full((33, 64), 7, dtype=np.uint16))
    with pytest.raises(LabelMapError, match=r"instance map .*instanceIds\.png is 64x33 but its label map .* is "
                                            r"64x32 \(width x height\)"):
        build_dataset("cityscapes", root, "train")[0]


def test_colour_label_maps_are_refused(tmp_path):
    root = deepfashion_tree(tmp_path)
    write_rgb(root / "cihp_train_mask" / "img_1.png", 40, 30)
    with pytest.raises(LabelMapError, match="colour image"):
        build_dataset("deepfashion", root, "train", size=32)[0]


def test_duplicate_basenames_are_refused(tmp_path):
    root = deepfashion_tree(tmp_path)
    write_rgb(root / "train" / "img_1.png", 40, 30)
    with pytest.raises(SmisbenchError, match="share a name"):
        build_dataset("deepfashion", root, "train")


def test_real_cihp_labels_in_a_deepfashion_tree_are_out_of_range(tmp_path, samples):
    """CIHP's 20-class parsing maps are not DeepFashion's 8 classes: the reader must say so, per file."""
    cihp = samples / "cihp_pgn" / "datasets" / "CIHP"
    for label in sorted((cihp / "labels").glob("*.png")):
        (tmp_path / "cihp_train_mask").mkdir(exist_ok=True)
        (tmp_path / "train").mkdir(exist_ok=True)
        (tmp_path / "cihp_train_mask" / label.name).symlink_to(label)
        (tmp_path / "train" / f"{label.stem}.jpg").symlink_to(cihp / "images" / f"{label.stem}.jpg")
    ds = build_dataset("deepfashion", tmp_path, "train", size=64)
    report = ds.verify(progress=False)
    bad = [i for i, (name, paths) in enumerate(ds.pairs)
           if np.asarray(Image.open(paths["label"])).max() >= 8]
    assert bad and len(report.problems) == len(bad)
    assert all("outside the deepfashion range 0..7" in p for p in report.problems)


# ----- Cityscapes -----

def cityscapes_tree(root: Path, split: str = "train", city: str = "aachen", frames: int = 2) -> Path:
    for f in range(frames):
        stem = f"{city}_{f:06d}_000019"
        write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", 32, 64, seed=f)
        label = blocks(32, 64, [7, 26, 24, 11])
        instance = label.astype(np.uint16)
        instance[:, 16:32] = 26000 + (np.arange(64)[16:32] >= 24)  # two car instances side by side
        instance[:, 32:48] = 24000
        write_label(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
        write_label(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png", instance)
        write_label(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", label)  # ignored by the reader
    return root


def test_cityscapes_official_layout(tmp_path):
    root = cityscapes_tree(tmp_path)
    ds = build_dataset("cityscapes", root, "train", flip=False)
    assert len(ds) == 2 and ds.has_instance
    item = ds[0]
    assert set(item) == {"label", "image", "instance", "name"}
    assert item["label"].shape == (256, 512) and item["image"].shape == (3, 256, 512)
    assert item["instance"].shape == (256, 512) and item["instance"].dtype == torch.int64
    assert item["name"] == "aachen_000000_000019"
    assert set(torch.unique(item["label"]).tolist()) == {7, 11, 24, 26}
    assert set(torch.unique(item["instance"]).tolist()) == {7, 11, 24000, 26000, 26001}


def test_cityscapes_test_reads_val_and_missing_instances_are_listed(tmp_path):
    root = cityscapes_tree(tmp_path, "val", "frankfurt", frames=3)
    assert len(build_dataset("cityscapes", root, "test")) == 3
    (root / "gtFine" / "val" / "frankfurt" / "frankfurt_000001_000019_gtFine_instanceIds.png").unlink()
    with pytest.raises(SmisbenchError, match="1 label maps have no instance map.*frankfurt_000001_000019"):
        build_dataset("cityscapes", root, "val")


def test_cityscapes_real_samples_in_official_layout(tmp_path, samples):
    """Real 2048x1024 aachen frames, linked into leftImg8bit/gtFine, read at the official 512x256."""
    source = samples / "pix2pixHD_cityscapes" / "datasets" / "cityscapes"
    for image in sorted((source / "train_img").glob("*.png"))[:2]:
        stem = image.name.replace("_leftImg8bit.png", "")
        for sub, folder, suffix in (("leftImg8bit", "train_img", "_leftImg8bit"),
                                    ("gtFine", "train_label", "_gtFine_labelIds"),
                                    ("gtFine", "train_inst", "_gtFine_instanceIds")):
            target = tmp_path / sub / "train" / "aachen" / f"{stem}{suffix}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source / folder / f"{stem}{suffix}.png")
    ds = build_dataset("cityscapes", tmp_path, "train", flip=False)
    assert len(ds) == 2
    item = ds[0]
    label_file = source / "train_label" / f"{item['name']}_gtFine_labelIds.png"
    expected = np.array(Image.open(label_file).resize((512, 256), Image.NEAREST)).astype(np.int64)
    assert torch.equal(item["label"], torch.from_numpy(expected))
    instance = item["instance"]
    things = instance >= 1000
    assert things.any()
    assert torch.equal(instance[things] // 1000, item["label"][things])  # instanceIds encode label id * 1000
    assert torch.equal(instance[~things], item["label"][~things])

    edges = instance_edges(instance[None])[0, 0].numpy().astype(bool)
    ids = instance.numpy()
    reference = np.zeros_like(edges)
    reference[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    reference[:, :-1] |= ids[:, 1:] != ids[:, :-1]
    reference[1:, :] |= ids[1:, :] != ids[:-1, :]
    reference[:-1, :] |= ids[1:, :] != ids[:-1, :]
    assert np.array_equal(edges, reference) and 0 < edges.mean() < 0.2
    label = item["label"].numpy()
    same_class_boundary = (ids[:, 1:] != ids[:, :-1]) & (label[:, 1:] == label[:, :-1])
    assert same_class_boundary.any()  # touching objects of one class: only the instance map separates them
    assert edges[:, 1:][same_class_boundary].all()


def test_cityscapes_pix2pixhd_layout(samples):
    root = samples / "pix2pixHD_cityscapes" / "datasets" / "cityscapes"
    ds = build_dataset("cityscapes", root, "train", size=(32, 64))
    assert len(ds) == 8 and ds[0]["instance"].shape == (32, 64)
    with pytest.raises(SmisbenchError, match="test_img"):
        build_dataset("cityscapes", root, "val")  # pix2pixHD ships val labels without images


# ----- ADE20K -----

def ade_tree(root: Path, phase: str = "training", count: int = 2) -> Path:
    base = root / "ADEChallengeData2016"
    for i in range(count):
        write_rgb(base / "images" / phase / f"ADE_{phase[:5]}_{i:08d}.jpg", 30, 40, seed=i, fmt="JPEG")
        write_label(base / "annotations" / phase / f"ADE_{phase[:5]}_{i:08d}.png", blocks(30, 40, [0, 150, 3, 42]))
    return root


def test_ade20k_train_crops_and_val_resizes(tmp_path):
    root = ade_tree(tmp_path)
    ade_tree(tmp_path, "validation", 1)
    train = build_dataset("ade20k", root, "train")
    assert train.preprocess.load_size == (286, 286) and train.preprocess.crop_size == (256, 256)
    item = train[0]
    assert item["label"].shape == (256, 256) and "instance" not in item
    assert set(torch.unique(item["label"]).tolist()) <= {0, 3, 42, 150}
    val = build_dataset("ade20k", root / "ADEChallengeData2016", "val")  # the challenge folder itself works too
    assert val.preprocess.load_size == (256, 256) and not val.preprocess.flip
    assert set(torch.unique(val[0]["label"]).tolist()) == {0, 3, 42, 150}  # 0 = "other" is kept


def test_ade20k_real_sample_annotations(tmp_path, samples):
    source = samples / "ade20k_sceneparsing" / "sampleData"
    base = tmp_path / "ADEChallengeData2016"
    for kind in ("images", "annotations"):
        (base / kind / "validation").mkdir(parents=True)
        for f in sorted((source / kind).iterdir()):
            (base / kind / "validation" / f.name).symlink_to(f)
    ds = build_dataset("ade20k", tmp_path, "val")
    assert len(ds) == 3
    for index in range(3):
        item = ds[index]
        raw = Image.open(source / "annotations" / f"{item['name']}.png")
        expected = np.array(raw.resize((256, 256), Image.NEAREST)).astype(np.int64)
        assert torch.equal(item["label"], torch.from_numpy(expected))
        assert int(item["label"].max()) <= 150


# ----- custom -----

def test_custom_reader_with_known_and_new_label_sets(tmp_path):
    for i in range(3):
        write_rgb(tmp_path / "images" / f"p{i}.png", 20, 20, seed=i)
        write_label(tmp_path / "labels" / f"p{i}.png", blocks(20, 20, [0, 4]))
    known = build_dataset("custom", tmp_path, "train", config="deepfashion", size=16)
    assert known.config.name == "deepfashion" and known[0]["label"].shape == (16, 16)
    new = build_dataset("custom", tmp_path, "val", label_nc=5, size=(8, 12))
    assert new.config.label_nc == 5 and new[2]["image"].shape == (3, 8, 12)
    with pytest.raises(LabelMapError):
        build_dataset("custom", tmp_path, "train", label_nc=4, size=8)[0]
    with pytest.raises(SmisbenchError, match="exactly one of"):
        build_dataset("custom", tmp_path, "train")


def test_custom_reader_split_folders_and_instances(tmp_path):
    for i in range(2):
        write_rgb(tmp_path / "train" / "images" / f"q{i}.jpg", 20, 20, seed=i, fmt="JPEG")
        write_label(tmp_path / "train" / "labels" / f"q{i}.png", blocks(20, 20, [1, 2]))
        write_label(tmp_path / "train" / "instances" / f"q{i}.png", blocks(20, 20, [5, 6]).astype(np.uint16))
    ds = build_dataset("custom", tmp_path, "train", label_nc=3, size=20, preprocess="none")
    assert ds.config.use_instance and set(torch.unique(ds[0]["instance"]).tolist()) == {5, 6}


# ----- registry -----

def test_registry_names_options_and_errors(tmp_path):
    assert set(dataset_names()) == {"synthetic", "deepfashion", "cityscapes", "ade20k", "custom"}
    assert "size" in reader_options("deepfashion")
    with pytest.raises(UnknownNameError, match="unknown dataset 'coco'"):
        build_dataset("coco", tmp_path)
    with pytest.raises(SmisbenchError, match="no option"):
        build_dataset("deepfashion", tmp_path, "train", crop=3)
    with pytest.raises(SmisbenchError, match="needs the folder"):
        build_dataset("ade20k")
    with pytest.raises(SmisbenchError, match="unknown split"):
        build_dataset("deepfashion", tmp_path, "training")
