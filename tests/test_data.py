"""Tests for gca_viz.data: embedded datasets, the Dataset container and user-data loaders."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gca_viz.data import (
    CIFAR10_CLASSES,
    DATASETS,
    DOMAIN_NAMES,
    Dataset,
    load_cifar10_binary,
    load_dataset,
    load_image_folder,
    load_npz,
    load_user_dataset,
)

# ------------------------------------------------------------------------ embedded data


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def multidomain() -> Dataset:
    return load_dataset("multidomain_digits")


def test_digits_shape_range_classes(digits: Dataset) -> None:
    assert digits.x.shape == (1797, 1, 8, 8)
    assert digits.x.dtype == torch.float32 and digits.y.dtype == torch.int64
    assert float(digits.x.min()) == 0.0 and float(digits.x.max()) == 1.0
    assert digits.n_classes == 10 and set(digits.y.tolist()) == set(range(10))
    assert digits.kind == "image" and digits.domain is None and digits.n_domains == 0
    assert digits.input_shape == (1, 8, 8) and len(digits) == digits.n == 1797


def test_load_dataset_default_is_digits(digits: Dataset) -> None:
    assert torch.equal(load_dataset().x, digits.x)


def test_multidomain_domains_balanced_with_all_classes(multidomain: Dataset) -> None:
    assert multidomain.n_domains == 4 and multidomain.domain_names == DOMAIN_NAMES
    assert multidomain.domain is not None
    sizes = torch.bincount(multidomain.domain, minlength=4)
    assert int(sizes.sum()) == 1797 and int(sizes.max() - sizes.min()) <= 1
    for d in range(4):
        classes = multidomain.y[multidomain.domain == d]
        assert set(classes.tolist()) == set(range(10))


def test_multidomain_transforms_match_originals(digits: Dataset, multidomain: Dataset) -> None:
    assert multidomain.domain is not None
    assert torch.equal(multidomain.y, digits.y)  # same sample order
    by_domain = {name: multidomain.domain == d for d, name in enumerate(DOMAIN_NAMES)}
    orig, rot = by_domain["original"], by_domain["rotated"]
    inv, noisy = by_domain["inverted"], by_domain["noisy"]
    assert torch.equal(multidomain.x[orig], digits.x[orig])
    assert torch.equal(multidomain.x[rot], torch.rot90(digits.x[rot], k=1, dims=(-2, -1)))
    assert torch.equal(multidomain.x[inv], 1.0 - digits.x[inv])
    change = (multidomain.x[noisy] - digits.x[noisy]).abs().mean()
    assert 0.05 < float(change) < 0.3  # σ = 0.2 noise, clipped


def test_multidomain_seed(multidomain: Dataset) -> None:
    again = load_dataset("multidomain_digits", seed=0)
    other = load_dataset("multidomain_digits", seed=1)
    assert torch.equal(again.x, multidomain.x) and torch.equal(again.domain, multidomain.domain)
    assert not torch.equal(other.domain, multidomain.domain)


def test_sphere_mixture_unit_norm_and_clusters() -> None:
    data = load_dataset("sphere_mixture", n_points=600, n_classes=4, dim=6, spread=0.1)
    assert data.x.shape == (600, 6) and data.kind == "vector" and data.n_classes == 4
    assert torch.allclose(data.x.norm(dim=1), torch.ones(600), atol=1e-5)
    assert torch.bincount(data.y).tolist() == [150] * 4
    centroids = torch.stack([data.x[data.y == c].mean(0) for c in range(4)])  # (4, 6)
    nearest = (data.x @ centroids.T).argmax(dim=1)
    assert float((nearest == data.y).float().mean()) > 0.95  # small spread: separable


def test_rings_radii_separate_classes() -> None:
    data = load_dataset("rings", n_points=900, n_classes=3, noise=0.05)
    assert data.x.shape == (900, 2) and data.n_classes == 3
    radius = data.x.norm(dim=1)
    for c in range(3):
        r = radius[data.y == c]
        assert float(r.min()) > c + 0.5 and float(r.max()) < c + 1.5
    assert load_dataset("rings", dim=5, n_points=50).x.shape == (50, 5)


@pytest.mark.parametrize("name", ["sphere_mixture", "rings"])
def test_synthetic_seed_reproducible(name: str) -> None:
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    c = load_dataset(name, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_registry_entries_load_with_defaults() -> None:
    assert {"digits", "multidomain_digits", "sphere_mixture", "rings"} <= set(DATASETS)
    for name, stage in DATASETS.items():
        assert stage.description and isinstance(stage.latex, str)
        if name not in ("digits", "multidomain_digits"):
            assert isinstance(load_dataset(name), Dataset)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("nope", {}, "unknown dataset"),
        ("rings", {"n_points": 0}, "n_points"),
        ("rings", {"radius": 2}, "radius"),
        ("sphere_mixture", {"spread": -1.0}, "spread"),
        ("sphere_mixture", {"n_points": 3, "n_classes": 5}, "n_points"),
        # sizes that cannot be allocated are refused by the schema, naming the parameters
        ("rings", {"dim": 10**7}, "dim must be an integer <= 1024"),  # numpy: 74.5 GiB
        ("sphere_mixture", {"n_points": 10**5, "dim": 1000}, "^n_points and dim: .* 50,000,000"),
        ("rings", {"noise": 1e300}, "noise must be a number <= 10"),
    ],
)
def test_load_dataset_rejects_bad_params(name: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **params)


# ------------------------------------------------------------------------------ Dataset


def _tiny(n: int = 6) -> dict:
    return {
        "name": "tiny",
        "x": torch.rand(n, 3),
        "y": torch.arange(n) % 2,
        "domain": None,
        "kind": "vector",
        "class_names": ("a", "b"),
    }


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kind": "audio"}, "kind"),
        ({"x": torch.rand(6, 3).double()}, "x must be a float32"),
        ({"x": torch.rand(6, 1, 2, 2)}, "x must be 2-D"),
        ({"x": torch.full((6, 3), float("nan"))}, "NaN"),
        ({"x": torch.zeros(0, 3), "y": torch.zeros(0, dtype=torch.int64)}, "non-empty"),
        ({"y": torch.zeros(5, dtype=torch.int64)}, "y must have shape"),
        ({"y": torch.zeros(6, dtype=torch.int32)}, "y must be an int64"),
        ({"y": torch.full((6,), 2)}, "y must lie in"),
        ({"domain": torch.zeros(6, dtype=torch.int64)}, "domain_names"),
        ({"domain_names": ("d",)}, "domain_names must be empty"),
        ({"class_names": ()}, "class_names"),
        ({"name": ""}, "name"),
        ({"class_names": "ab"}, "class_names"),
    ],
)
def test_dataset_validation(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Dataset(**{**_tiny(), **change})


def test_dataset_rejects_images_outside_unit_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        x = torch.full((2, 1, 2, 2), 2.0)
        Dataset("img", x, torch.tensor([0, 1]), None, "image", ("a", "b"))


def test_subset_by_indices_and_mask(multidomain: Dataset) -> None:
    sub = multidomain.subset([5, 0, 7])
    assert torch.equal(sub.x, multidomain.x[[5, 0, 7]])
    assert multidomain.domain is not None and sub.domain is not None
    assert torch.equal(sub.domain, multidomain.domain[[5, 0, 7]])
    assert sub.class_names == multidomain.class_names and sub.n_domains == 4
    mask = multidomain.y == 3
    assert torch.equal(multidomain.subset(mask).y, multidomain.y[mask])
    for bad, match in [([1797], "idx must lie"), ([], "no samples"), ([0.5], "integer")]:
        with pytest.raises(ValueError, match=match):
            multidomain.subset(bad)


def _ids(d: Dataset) -> set[bytes]:
    return {row.numpy().tobytes() for row in d.x.flatten(1)}


def test_split_stratified_by_class(digits: Dataset) -> None:
    train, test = digits.split(test_fraction=0.25, seed=0)
    assert train.n + test.n == digits.n and test.n == round(0.25 * digits.n)
    counts = torch.bincount(digits.y, minlength=10).double()
    test_counts = torch.bincount(test.y, minlength=10).double()
    share = test.n / digits.n
    assert bool(((test_counts - share * counts).abs() < 1.0).all())
    assert torch.equal(torch.bincount(train.y, minlength=10) + test_counts.long(), counts.long())


def test_split_by_index_disjoint_and_deterministic() -> None:
    data = load_dataset("rings", n_points=301, n_classes=3)  # continuous x: rows unique
    train, test = data.split(0.3, seed=7)
    assert _ids(train).isdisjoint(_ids(test)) and _ids(train) | _ids(test) == _ids(data)
    train2, test2 = data.split(0.3, seed=7)
    assert torch.equal(test.x, test2.x) and torch.equal(train.x, train2.x)
    _, test3 = data.split(0.3, seed=8)
    assert not torch.equal(test.x, test3.x)


def test_split_stratifies_domains_within_classes(multidomain: Dataset) -> None:
    _, test = multidomain.split(0.5, seed=1)
    assert multidomain.domain is not None and test.domain is not None
    for c in range(10):
        for d in range(4):
            group = int(((multidomain.y == c) & (multidomain.domain == d)).sum())
            got = int(((test.y == c) & (test.domain == d)).sum())
            assert abs(got - group / 2) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_split_rejects_bad_arguments(digits: Dataset, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        digits.split(**kwargs)


# ------------------------------------------------------------------------------- .npz


def test_npz_uint8_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 5, 6), dtype=np.uint8)
    y = np.array([10, 20, 30] * 4)
    np.savez(tmp_path / "imgs.npz", x=x, y=y)
    data = load_npz(tmp_path / "imgs.npz")
    assert data.kind == "image" and data.x.shape == (12, 1, 5, 6) and data.name == "imgs"
    assert torch.allclose(data.x[:, 0], torch.from_numpy(x).float() / 255)
    assert data.y.tolist() == [0, 1, 2] * 4 and data.class_names == ("10", "20", "30")
    assert data.domain is None


def test_npz_channels_last_and_rescaled_floats(tmp_path: Path) -> None:
    x = np.linspace(-2.0, 6.0, 4 * 5 * 6 * 3).reshape(4, 5, 6, 3)  # (n, H, W, C)
    np.savez(tmp_path / "hwc.npz", x=x, y=[0, 1, 0, 1])
    data = load_npz(tmp_path / "hwc.npz")
    assert data.x.shape == (4, 3, 5, 6)
    assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0  # min-max scaled
    expected = (x[1, 2, 4, :] + 2.0) / 8.0  # pixel (2, 4) of sample 1, all channels
    assert np.allclose(data.x[1, :, 2, 4].numpy(), expected, atol=1e-6)


def test_npz_vectors_with_domain(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 4)) * 5  # vectors are not rescaled
    np.savez(tmp_path / "v.npz", x=x, y=np.arange(10) % 2, domain=np.array([7, 9] * 5))
    data = load_npz(tmp_path / "v.npz")
    assert data.kind == "vector" and data.x.shape == (10, 4)
    assert torch.allclose(data.x, torch.from_numpy(x).float())
    assert data.domain is not None and data.domain.tolist() == [0, 1] * 5
    assert data.domain_names == ("7", "9") and data.n_domains == 2
    assert load_user_dataset(tmp_path / "v.npz").n == 10


def _npz(tmp_path: Path, **arrays: object) -> Path:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_npz_bad_contents(tmp_path: Path) -> None:
    x = np.zeros((4, 3))
    cases = [
        ({"x": x}, "missing array 'y'"),
        ({"y": [0, 1, 0, 1]}, "missing array 'x'"),
        # misnamed arrays: "found none" was said of an archive that held two
        ({"X": x, "Y": [0, 1, 0, 1]}, r"missing array 'x' \(the archive holds 'X', 'Y'\)"),
        # at 1e20 a run trained to a flat loss and embedding_std 0, without a word
        ({"x": np.full((4, 3), 1e20), "y": [0, 1, 0, 1]}, r"values up to 1e\+20.*rescale x"),
        ({"x": np.array([{"a": 1}] * 4, dtype=object), "y": [0, 1, 0, 1]}, "object array"),
        # a pandas string column's .values: the advice says how to save it (it said "save
        # plain numeric arrays", and string labels are welcome)
        (
            {"x": x, "y": np.array(["cat", "dog", "cat", "dog"], dtype=object)},
            r"object array .*y=labels\.astype\(str\)",
        ),
        ({"x": x, "y": [0, 1, 0]}, "3 entries but x has 4"),
        ({"x": np.zeros((0, 3)), "y": np.zeros(0, dtype=int)}, "empty"),
        ({"x": np.full((4, 3), np.nan), "y": [0, 1, 0, 1]}, "NaN"),
        # where: the first bad row and how many (a user looked for them in 10^4 rows)
        (
            {"x": np.where(np.arange(12).reshape(4, 3) % 5 == 4, np.inf, 0.0), "y": [0, 1, 0, 1]},
            r"NaN or inf in 2 of its 4 samples \(the first: row 1\)",
        ),
        ({"x": x, "y": [0.5, 1.0, 0.0, 1.0]}, "integer labels"),
        # where, as for x: the first non-integer label and how many
        (
            {"x": x, "y": [0.0, 1.0, 2.5, np.nan]},
            r"non-integer values in 2 of its 4 entries \(the first: 2\.5 at row 2\)",
        ),
        ({"x": x, "y": [0, 0, 0, 0]}, "single class"),
        ({"x": np.zeros(4), "y": [0, 1, 0, 1]}, "shape"),
        ({"x": np.zeros((4, 2, 2, 2, 2)), "y": [0, 1, 0, 1]}, "shape"),
        ({"x": np.zeros((4, 5, 5, 5)), "y": [0, 1, 0, 1]}, "C in"),
        ({"x": x, "y": np.zeros((4, 2))}, r"1-D \(one label per sample\), got shape \(4, 2\)"),
        ({"x": x, "y": [0, 1, 0, 1], "domain": [0, 1]}, "domain has 2 entries"),
    ]
    for arrays, match in cases:
        path = _npz(tmp_path, **arrays)
        with pytest.raises(ValueError, match=match) as info:
            load_npz(path)
        assert str(path) in str(info.value)


def test_npz_too_large_for_float32_is_said_once_without_numpy_warnings(tmp_path: Path) -> None:
    path = _npz(tmp_path, x=np.full((4, 3), 1e300), y=[0, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" came first
        with pytest.raises(ValueError, match="too large for float32"):
            load_npz(path)


def test_a_path_with_a_tilde_is_read_from_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "~/data.npz" was looked for in "<cwd>/~/data.npz"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    _npz(tmp_path, x=np.zeros((4, 3)), y=[0, 1, 0, 1])  # tmp_path / "bad.npz"
    assert load_dataset("~/bad.npz").n == 4
    assert load_user_dataset("~/bad.npz").n == 4


def test_npz_integral_float_labels_accepted(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, x=np.zeros((4, 2)), y=[1.0, 3.0, 1.0, 3.0]))
    assert data.y.tolist() == [0, 1, 0, 1]


def test_npz_labels_as_a_column_are_one_label_per_sample(tmp_path: Path) -> None:
    """``y[:, None]``, the (n, 1) column pandas and scikit-learn often give, was refused
    ("y must be 1-D"): it is read as the n labels it holds."""
    data = load_npz(_npz(tmp_path, x=np.zeros((4, 2)), y=np.array([[1], [3], [1], [3]])))
    assert data.y.tolist() == [0, 1, 0, 1]


def test_npz_corrupt_files(tmp_path: Path) -> None:
    good = _npz(tmp_path, x=np.zeros((4, 3)), y=[0, 1, 0, 1]).read_bytes()
    truncated = tmp_path / "half.npz"
    truncated.write_bytes(good[: len(good) // 2])
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,2\n")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    damaged = tmp_path / "damaged.npz"  # a valid zip whose member is not a .npy
    with zipfile.ZipFile(damaged, "w") as z:
        z.writestr("x.npy", b"garbage")
        z.writestr("y.npy", b"garbage")
    for path, match in [
        (truncated, "corrupt or truncated"),
        (text, "not a .npz archive"),
        (empty, r"the file is empty \(0 bytes\)"),  # (as an upload of it is told)
        (damaged, "not a valid .npz"),
        (tmp_path / "missing.npz", "no such file"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            load_npz(path)
        assert str(path) in str(info.value)


# ------------------------------------------------------------------------- image folder


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_grayscale(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for cls in ("cat", "ant"):
        for i in range(3):
            arrays[(cls, i)] = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            _png(tmp_path / cls / f"{i}.png", arrays[(cls, i)])
    (tmp_path / "ant" / ".hidden.png").write_bytes(b"not an image")  # hidden: ignored
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    (tmp_path / ".git").mkdir()
    data = load_image_folder(tmp_path)
    assert data.class_names == ("ant", "cat") and data.x.shape == (6, 1, 6, 5)
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]
    expected = torch.from_numpy(arrays[("cat", 1)]).float() / 255
    assert torch.allclose(data.x[4, 0], expected)
    assert load_user_dataset(tmp_path).n == 6


def test_image_folder_mixed_becomes_rgb_and_resized(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "gray.png", np.full((8, 8), 100, dtype=np.uint8))
    _png(tmp_path / "b" / "rgb.png", np.full((4, 6, 3), (255, 0, 0), dtype=np.uint8))
    data = load_image_folder(tmp_path)
    assert data.x.shape == (2, 3, 8, 8)  # the first image's size
    assert torch.allclose(data.x[1, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(data.x[0], torch.full((3, 8, 8), 100 / 255))
    assert load_image_folder(tmp_path, size=(3, 4)).x.shape == (2, 3, 3, 4)
    assert load_image_folder(tmp_path, size=5).x.shape == (2, 3, 5, 5)


def test_image_folder_errors(tmp_path: Path) -> None:
    ok = np.zeros((4, 4), dtype=np.uint8)
    single = tmp_path / "single"
    _png(single / "only" / "0.png", ok)
    empty_class = tmp_path / "empty_class"
    _png(empty_class / "a" / "0.png", ok)
    (empty_class / "b").mkdir()
    corrupt = tmp_path / "corrupt"
    _png(corrupt / "a" / "0.png", ok)
    (corrupt / "b").mkdir()
    bad_file = corrupt / "b" / "broken.png"
    bad_file.write_bytes(np.random.default_rng(0).bytes(200))
    no_classes = tmp_path / "flat"
    _png(no_classes / "0.png", ok)
    a_file = tmp_path / "file.txt"
    a_file.write_text("hi")
    cases = [
        (single, "only one class"),
        (empty_class, "holds no images"),
        (corrupt, "not a readable image"),
        (no_classes, "no class sub-folders"),
        (a_file, "not a directory"),
    ]
    for path, match in cases:
        with pytest.raises(ValueError, match=match):
            load_image_folder(path)
    with pytest.raises(ValueError, match=r"broken\.png"):
        load_image_folder(corrupt)
    # every unreadable file is named at once (one per try made a scraped folder a chore)
    (corrupt / "a" / "cut.png").write_bytes(b"\x89PNG\r\n")
    for k in range(6):
        (corrupt / "a" / f"z{k}.jpg").write_text("<html>")
    with pytest.raises(ValueError) as err:
        load_image_folder(corrupt)
    said = str(err.value)
    assert said.startswith(f"{corrupt}: 8 of 9 files are not readable images (")
    assert "a/cut.png: not a readable image" in said and "; and 3 more); remove" in said
    with pytest.raises(ValueError, match="max_images"):
        load_image_folder(empty_class.parent / "corrupt", max_images=1)
    with pytest.raises(ValueError, match="size"):
        load_image_folder(single, size=(0, 3))


def test_image_folder_truncated_png(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(buffer, format="PNG")
    _png(tmp_path / "a" / "0.png", np.zeros((16, 16), dtype=np.uint8))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cut.png").write_bytes(buffer.getvalue()[:40])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image_folder(tmp_path)


# ------------------------------------------------------------------------------ CIFAR-10


def _cifar_records(labels: list[int], seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    records = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], pixels], axis=1)
    return records.tobytes(), pixels


def test_cifar_single_file(tmp_path: Path) -> None:
    raw, pixels = _cifar_records([3, 0, 9, 3])
    path = tmp_path / "test_batch.bin"
    path.write_bytes(raw)
    data = load_cifar10_binary(path)
    assert data.x.shape == (4, 3, 32, 32) and data.y.tolist() == [3, 0, 9, 3]
    assert data.class_names == CIFAR10_CLASSES
    # Channel-planar layout: the first 1024 bytes are red, row-major.
    assert torch.allclose(data.x[1, 0, 0, :5], torch.from_numpy(pixels[1, :5]).float() / 255)
    assert torch.allclose(data.x[1, 2, 31, 31], torch.tensor(pixels[1, 3071] / 255).float())
    assert load_user_dataset(path).n == 4


def test_cifar_directory_with_meta(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(_cifar_records([1, 2])[0])
    (folder / "test_batch.bin").write_bytes(_cifar_records([5], seed=1)[0])
    names = [f"c{i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    for path in (folder, tmp_path):  # the folder itself or its parent
        data = load_cifar10_binary(path)
        assert data.y.tolist() == [1, 2, 5] and data.class_names == tuple(names)
    assert load_user_dataset(tmp_path).n == 3


def test_cifar_errors(tmp_path: Path) -> None:
    size = tmp_path / "size.bin"
    size.write_bytes(_cifar_records([1, 2])[0][:-5])
    label = tmp_path / "label" / "data_batch_1.bin"
    label.parent.mkdir()
    label.write_bytes(_cifar_records([1, 12])[0])
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    meta_dir = tmp_path / "meta"
    meta_dir.mkdir()
    (meta_dir / "a.bin").write_bytes(_cifar_records([1, 2])[0])
    one = tmp_path / "one" / "data_batch_1.bin"  # loaded, then training failed at step 1
    one.parent.mkdir()
    one.write_bytes(_cifar_records([4, 4, 4])[0])
    (meta_dir / "batches.meta.txt").write_text("cat\ndog\n")
    for path, match in [
        (size, "multiple of 3073"),
        (label.parent, "label 12"),
        (empty_dir, "no .bin files"),
        (meta_dir, "10 class names"),
        (one, r"every record has label 4 \(deer\); at least 2 classes are needed"),
        (tmp_path / "missing.bin", "no such file"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_cifar10_binary(path)
    with pytest.raises(ValueError, match="max_images"):
        load_cifar10_binary(label.parent, max_images=1)


def test_user_dataset_dispatch_errors(tmp_path: Path) -> None:
    other = tmp_path / "data.csv"
    other.write_text("1,2")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_user_dataset(other)
    with pytest.raises(ValueError, match="no such file"):
        load_user_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_user_dataset(tmp_path)


def write_user_data(tmp_path: Path) -> dict[str, Path]:
    """One of each kind of user data under ``tmp_path``, each enough for a short training
    run: an .npz of vectors, an image folder (PNGs), a CIFAR-10 binary file (12 records).
    Also used by the training and run-store tests."""
    rng = np.random.default_rng(0)
    npz = tmp_path / "mine.npz"
    np.savez(npz, x=rng.random((12, 5)).astype(np.float32), y=np.arange(12) % 3)
    folder = tmp_path / "pictures"
    for cls in ("ant", "bee"):
        for i in range(4):
            _png(folder / cls / f"{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    cifar = tmp_path / "data_batch_1.bin"
    cifar.write_bytes(_cifar_records([0, 1, 9] * 4)[0])
    return {"npz": npz, "folder": folder, "cifar": cifar}


def test_load_dataset_reads_user_data_from_a_path(tmp_path: Path) -> None:
    """The one entry point: a path loads as the user-data loaders load it (str or Path)."""
    paths = write_user_data(tmp_path)
    mine = load_dataset(str(paths["npz"]))
    assert mine.kind == "vector" and mine.x.shape == (12, 5) and mine.n_classes == 3
    assert torch.equal(mine.x, load_npz(paths["npz"]).x)
    assert torch.equal(load_dataset(paths["npz"]).y, mine.y)  # an os.PathLike too
    pictures = load_dataset(str(paths["folder"]))
    assert pictures.x.shape == (8, 1, 6, 6) and pictures.class_names == ("ant", "bee")
    cifar = load_dataset(str(paths["cifar"]))
    assert cifar.x.shape == (12, 3, 32, 32) and cifar.y.tolist() == [0, 1, 9] * 4


def test_load_dataset_prefers_the_embedded_name_to_a_file_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "digits").mkdir()  # not a dataset: loading it as a path would fail
    monkeypatch.chdir(tmp_path)
    assert load_dataset("digits").x.shape == (1797, 1, 8, 8)
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(Path("digits"))  # a Path is always a path


def test_load_dataset_rejects_a_missing_path_and_params_for_user_data(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(ValueError) as info:
        load_dataset(str(missing))
    message = str(info.value)
    assert message.startswith("name_or_path:")
    assert all(name in message for name in DATASETS) and "no file or folder" in message
    assert str(missing) in message
    for bad in ("", "  ", 3, None):
        with pytest.raises(ValueError, match="name_or_path must be one of"):
            load_dataset(bad)  # type: ignore[arg-type]
    npz = write_user_data(tmp_path)["npz"]
    with pytest.raises(ValueError, match=r"params: .*takes no parameters.*n_points"):
        load_dataset(str(npz), n_points=5)
    other = tmp_path / "data.csv"
    other.write_text("1,2")
    with pytest.raises(ValueError, match=r"unsupported file type.*np\.savez\(path, x="):
        load_dataset(str(other))  # (a CSV: how to make the .npz it needs)


def _gca_imports(module: str) -> set[str]:
    """The gca_viz modules that the source of ``module`` imports (every import statement)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name.startswith("gca_viz")}


def test_data_and_userdata_import_without_a_cycle() -> None:
    """Dataset lives in a leaf module: the user-data loaders do not import gca_viz.data, and
    gca_viz.data re-exports what moved (no public name lost)."""
    import gca_viz._dataset
    import gca_viz.userdata
    from gca_viz import data

    assert _gca_imports("gca_viz._dataset") == set()
    assert not {"gca_viz.data", "gca_viz.data.Dataset"} & _gca_imports("gca_viz.userdata")
    assert data.Dataset is gca_viz.userdata.Dataset is gca_viz._dataset.Dataset
    assert data.CIFAR10_CLASSES is gca_viz.userdata.CIFAR10_CLASSES
    assert data.PathLike is gca_viz._dataset.PathLike and data.KINDS == ("image", "vector")


def test_data_entries_list_what_the_loaders_could_read(tmp_path: Path) -> None:
    from gca_viz.userdata import data_entries

    assert data_entries(tmp_path) == ([], 0)
    assert data_entries(tmp_path / "missing") == ([], 0)
    for name in ("b.npz", "A.NPZ", "data_batch_1.bin", "notes.txt", ".hidden.npz"):
        (tmp_path / name).write_bytes(b"")
    for name in ("faces", ".cache"):
        (tmp_path / name).mkdir()
    names, total = data_entries(tmp_path)
    assert names == ["A.NPZ", "b.npz", "data_batch_1.bin", "faces/"] and total == 4
    assert data_entries(tmp_path, limit=2) == (["A.NPZ", "b.npz"], 4)
