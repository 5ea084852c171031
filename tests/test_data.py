"""Tests for rlrobust.data: file formats, integrity checks, splits and the device batch loader."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rlrobust.data.cifar as cifar_module
import rlrobust.data.idx as idx_module
from rlrobust.data import (
    BatchLoader,
    ImageData,
    apply_crop_flip,
    crop_flip,
    download_file,
    iterate_batches,
    load_dataset,
    md5sum,
    read_cifar_batch,
    read_idx,
    resolve_data_dir,
    safe_extract_tar,
    split_validation,
    verify_md5,
)
from rlrobust.data.digits import DIGITS_MEAN, DIGITS_STD
from rlrobust.data.idx import FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD
from rlrobust.data.sources import FASHION_MNIST_MD5, MNIST_MD5, RemoteFile
from rlrobust.errors import ConfigError, DataError, UnknownNameError
from rlrobust.registry import DATASETS

# Published class counts of the MNIST test set (LeCun et al.), and the label heads of both splits.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_FIRST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
MNIST_TRAIN_FIRST_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


# ----------------------------------------------------------------------------- real MNIST files


@pytest.fixture(scope="module")
def mnist(shared_data_dir: Path) -> dict[str, ImageData]:
    """Each real file parsed once for the whole module."""
    return {s: load_dataset("mnist", s, data_dir=shared_data_dir) for s in ("train", "test")}


@pytest.fixture(scope="module")
def fashion(shared_data_dir: Path) -> dict[str, ImageData]:
    return {
        s: load_dataset("fashion-mnist", s, data_dir=shared_data_dir) for s in ("train", "test")
    }


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_catalogue_md5_matches_the_real_files(shared_data_dir: Path, name: str) -> None:
    sums = MNIST_MD5 if name == "mnist" else FASHION_MNIST_MD5
    for filename, expected in sums.items():
        digest = hashlib.md5((shared_data_dir / name / filename).read_bytes()).hexdigest()
        assert digest == expected, filename


@pytest.mark.realdata
def test_mnist_shapes_labels_and_counts(mnist: dict[str, ImageData]) -> None:
    train, test = mnist["train"], mnist["test"]
    assert (len(train), len(test)) == (60000, 10000)
    for data in (train, test):
        assert data.shape == (1, 28, 28)
        assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
        assert data.num_classes == 10 and data.name == "mnist"
        assert int(data.labels.min()) == 0 and int(data.labels.max()) == 9
        assert int(data.images.max()) == 255 and int(data.images.min()) == 0
    assert test.class_counts().tolist() == MNIST_TEST_COUNTS
    assert train.class_counts().tolist() == MNIST_TRAIN_COUNTS
    assert test.labels[:10].tolist() == MNIST_TEST_FIRST_LABELS
    assert train.labels[:10].tolist() == MNIST_TRAIN_FIRST_LABELS
    # The border of a centred MNIST digit is blank; a wrong reshape would scatter ink there.
    assert int(test.images[:, :, 0, :].sum()) == 0


@pytest.mark.realdata
def test_fashion_mnist_shapes_labels_and_counts(fashion: dict[str, ImageData]) -> None:
    train, test = fashion["train"], fashion["test"]
    assert (len(train), len(test)) == (60000, 10000)
    assert train.shape == test.shape == (1, 28, 28)
    assert train.class_counts().tolist() == [6000] * 10  # Fashion-MNIST is balanced
    assert test.class_counts().tolist() == [1000] * 10
    assert train.class_names is not None and train.class_names[9] == "Ankle boot"


@pytest.mark.realdata
def test_stored_mean_std_match_the_training_sets(
    mnist: dict[str, ImageData], fashion: dict[str, ImageData]
) -> None:
    for data, mean, std in (
        (mnist["train"], MNIST_MEAN, MNIST_STD),
        (fashion["train"], FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    ):
        x = data.images.double() / 255
        assert data.mean == mean and data.std == std
        assert abs(x.mean().item() - mean[0]) < 5e-4
        assert abs(x.std().item() - std[0]) < 5e-4


def _copy_mnist_test(shared_data_dir: Path, root: Path) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for filename in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(shared_data_dir / "mnist" / filename, folder / filename)
    return folder


@pytest.mark.realdata
def test_corrupted_mnist_file_is_named_with_md5(shared_data_dir: Path, tmp_path: Path) -> None:
    folder = _copy_mnist_test(shared_data_dir, tmp_path)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="md5") as info:
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert "--data.download" in str(info.value)


def test_missing_data_dir_points_at_rlrobust_data(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RLROBUST_DATA", raising=False)
    with pytest.raises(DataError, match="RLROBUST_DATA") as info:
        load_dataset("mnist", "test", data_dir=tmp_path / "nowhere")
    assert "--data.download" in str(info.value) and "not found" in str(info.value)
    monkeypatch.setenv("RLROBUST_DATA", str(tmp_path / "from-env"))
    with pytest.raises(DataError, match=r"\$RLROBUST_DATA"):
        load_dataset("fashion-mnist", "train")


@pytest.mark.realdata
def test_download_from_a_mirror_then_load(shared_data_dir: Path, tmp_path: Path, monkeypatch):
    """The --download path end to end, with file:// mirrors: the first is dead, the second good."""
    dead = (tmp_path / "dead").as_uri() + "/"
    good = (shared_data_dir / "mnist").resolve().as_uri() + "/"
    files = {n: RemoteFile(n, md5, (dead, good)) for n, md5 in MNIST_MD5.items()}
    monkeypatch.setattr(idx_module, "MNIST_FILES", files)
    root = tmp_path / "data"
    test = load_dataset("mnist", "test", data_dir=root, download=True)
    assert test.class_counts().tolist() == MNIST_TEST_COUNTS
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    # A corrupted file is replaced by a good copy when --download is given.
    labels = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(b"garbage")
    assert len(load_dataset("mnist", "test", data_dir=root, download=True)) == 10000
    assert md5sum(labels) == MNIST_MD5[labels.name]


# ----------------------------------------------------------------------------- idx parsing


def _idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def test_read_idx_parses_header_and_values(tmp_path: Path) -> None:
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx_bytes(0x803, (2, 3, 4), values.tobytes())))
    np.testing.assert_array_equal(read_idx(path, 0x803), values)


@pytest.mark.parametrize(
    "content, match",
    [
        (gzip.compress(_idx_bytes(0x803, (2, 3, 4), bytes(23))), "truncated or padded"),
        (gzip.compress(_idx_bytes(0x801, (24,), bytes(24))), "magic number"),
        (gzip.compress(b"\x00\x00"), "truncated"),
        (b"this is not gzip at all", "gzip"),
        (gzip.compress(_idx_bytes(0x803, (2, 3, 4), bytes(24)))[:-9], "gzip"),
    ],
    ids=["short-payload", "wrong-magic", "short-header", "not-gzip", "cut-gzip"],
)
def test_read_idx_rejects_bad_files_by_name(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad-images.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_idx(path, 0x803)
    assert "bad-images.gz" in str(info.value)


# ----------------------------------------------------------------------------- paths


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RLROBUST_DATA", raising=False)
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "rlrobust" / "data"
    monkeypatch.setenv("RLROBUST_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


# ----------------------------------------------------------------------------- download / md5


def test_verify_md5_message(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    good = hashlib.md5(b"hello").hexdigest()
    verify_md5(path, good)
    with pytest.raises(DataError, match="is corrupted") as info:
        verify_md5(path, "0" * 32)
    message = str(info.value)
    assert good in message and "0" * 32 in message and "--data.download" in message


def test_download_file_is_atomic_and_checked(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3000))
    good = hashlib.md5(source.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.bin"

    with pytest.raises(DataError, match="could not download"):
        download_file([source.as_uri()], dest, "f" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no .part left behind

    download_file([(tmp_path / "missing.bin").as_uri(), source.as_uri()], dest, good)
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]

    # A failed re-download leaves the existing good file as it was.
    other = tmp_path / "other.bin"
    other.write_bytes(b"different")
    with pytest.raises(DataError):
        download_file([other.as_uri()], dest, good)
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _file_member(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def test_safe_extract_unpacks_a_plain_tarball(tmp_path: Path) -> None:
    archive = _tar_with(
        tmp_path / "ok.tar.gz",
        [_file_member("pkg/a.txt", b"a"), _file_member("pkg/sub/b.txt", b"bb")],
    )
    dest = tmp_path / "dest"
    assert safe_extract_tar(archive, dest) == ["pkg"]
    assert (dest / "pkg" / "a.txt").read_bytes() == b"a"
    assert (dest / "pkg" / "sub" / "b.txt").read_bytes() == b"bb"
    assert sorted(p.name for p in dest.iterdir()) == ["pkg"]  # no staging folder left


@pytest.mark.parametrize("bad_name", ["../escape.txt", "/tmp/rlrobust-abs.txt", "pkg/../../x"])
def test_safe_extract_refuses_escaping_paths(tmp_path: Path, bad_name: str) -> None:
    archive = _tar_with(
        tmp_path / "bad.tar.gz", [_file_member("pkg/a.txt", b"a"), _file_member(bad_name, b"x")]
    )
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(DataError, match="refusing member"):
        safe_extract_tar(archive, dest)
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert not dest.exists()  # checked before anything is written


def test_safe_extract_refuses_links(tmp_path: Path) -> None:
    link = tarfile.TarInfo("pkg/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = _tar_with(tmp_path / "link.tar.gz", [(link, None)])
    with pytest.raises(DataError, match="link"):
        safe_extract_tar(archive, tmp_path / "dest")


# ----------------------------------------------------------------------------- CIFAR files


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python-2 ``str`` opcodes, as in the canonical CIFAR batch files."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _write_batch(path: Path, batch: dict, style: str) -> None:
    if style == "py2":  # protocol 2, str opcodes, numpy 1.x module path: like the real files
        buffer = io.BytesIO()
        _Py2Pickler(buffer, protocol=2).dump(batch)
        payload = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    else:
        payload = pickle.dumps(batch, protocol=int(style))
    path.write_bytes(payload)


def _cifar_batch(rng: np.random.Generator, n: int, label_key: bytes, classes: int):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, size=n)]
    batch = {b"batch_label": b"testing batch", label_key: labels, b"data": data}
    batch[b"filenames"] = [f"img_{i}.png".encode() for i in range(n)]
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [v // 5 for v in labels]
    return batch, data, labels


@pytest.mark.parametrize("style", ["py2", "2", "4", "5"])
def test_cifar10_loads_small_batches(tmp_path: Path, style: str) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected_data, expected_labels = [], []
    for i in range(1, 6):
        batch, data, labels = _cifar_batch(rng, 3 + i, b"labels", 10)
        _write_batch(folder / f"data_batch_{i}", batch, style)
        expected_data.append(data)
        expected_labels += labels
    test_batch, test_data, test_labels = _cifar_batch(rng, 4, b"labels", 10)
    _write_batch(folder / "test_batch", test_batch, style)

    train = load_dataset("cifar10", "train", data_dir=tmp_path, verify=False)
    test = load_dataset("cifar10", "test", data_dir=tmp_path, verify=False)
    assert len(train) == sum(3 + i for i in range(1, 6)) and len(test) == 4
    assert train.shape == (3, 32, 32) and train.num_classes == 10
    assert train.labels.tolist() == expected_labels and test.labels.tolist() == test_labels
    # Pixel (c, y, x) of image n is entry c*1024 + y*32 + x of row n (planes R, G, B).
    data = np.concatenate(expected_data)
    n, c, y, x = 7, 2, 5, 30
    assert int(train.images[n, c, y, x]) == int(data[n, c * 1024 + y * 32 + x])
    np.testing.assert_array_equal(train.images.reshape(len(train), -1).numpy(), data)
    np.testing.assert_array_equal(test.images.reshape(4, -1).numpy(), test_data)


def test_cifar100_loads_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    train_batch, train_data, train_labels = _cifar_batch(rng, 12, b"fine_labels", 100)
    train_labels[0] = 99  # the top class must be accepted
    _write_batch(folder / "train", train_batch, "py2")
    test_batch, _, test_labels = _cifar_batch(rng, 5, b"fine_labels", 100)
    _write_batch(folder / "test", test_batch, "py2")

    train = load_dataset("cifar100", "train", data_dir=tmp_path, verify=False)
    test = load_dataset("cifar100", "test", data_dir=tmp_path, verify=False)
    assert train.num_classes == 100 and len(train.class_names or ()) == 100
    assert train.labels.tolist() == train_labels and test.labels.tolist() == test_labels
    np.testing.assert_array_equal(train.images.reshape(12, -1).numpy(), train_data)


def test_cifar_md5_is_checked_by_default(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch, _, _ = _cifar_batch(np.random.default_rng(2), 2, b"labels", 10)
    _write_batch(folder / "test_batch", batch, "py2")
    with pytest.raises(DataError, match="md5"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_cifar_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="RLROBUST_DATA") as info:
        load_dataset("cifar100", "test", data_dir=tmp_path)
    assert "cifar100/" in str(info.value) and "--data.download" in str(info.value)


def test_cifar_download_extracts_the_tarball(tmp_path: Path, monkeypatch) -> None:
    """--download for CIFAR-10 end to end: a file:// mirror, md5 check, safe extraction."""
    rng = np.random.default_rng(3)
    staging = tmp_path / "staging" / "cifar-10-batches-py"
    staging.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _write_batch(staging / name, _cifar_batch(rng, 2, b"labels", 10)[0], "py2")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="cifar-10-batches-py")
    tarball = RemoteFile(archive.name, md5sum(archive), (mirror.as_uri() + "/",))
    monkeypatch.setattr(cifar_module, "CIFAR10_TARBALL", tarball)

    root = tmp_path / "data"
    test = load_dataset("cifar10", "test", data_dir=root, download=True, verify=False)
    assert len(test) == 2
    assert (root / "cifar10" / "cifar-10-python.tar.gz").is_file()  # the tarball is kept
    assert sorted(p.name for p in (root / "cifar10").iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalExploit:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("kind", ["os.system", "eval"])
def test_planted_pickle_is_refused(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    payload = _Exploit(marker) if kind == "os.system" else _EvalExploit()
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refusing to load") as info:
        read_cifar_batch(path, b"labels", 10)
    assert "data_batch_1" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"data": np.zeros((2, 3072), np.uint8)}, "expected a dict"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside"),
    ],
    ids=["no-labels", "row-size", "dtype", "label-count", "label-range"],
)
def test_malformed_cifar_batches(tmp_path: Path, batch: dict, match: str) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=match):
        read_cifar_batch(path, b"labels", 10)


def test_truncated_cifar_batch(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    path.write_bytes(pickle.dumps(batch, protocol=2)[:500])
    with pytest.raises(DataError, match="not a readable CIFAR batch"):
        read_cifar_batch(path, b"labels", 10)


# ----------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_scaling() -> None:
    from sklearn.datasets import load_digits

    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.shape == test.shape == (1, 8, 8)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    # Every scaled value is one of the 17 levels round(v * 255 / 16), v = 0..16.
    levels = {int(np.floor(v * 255 / 16 + 0.5)) for v in range(17)}
    assert set(torch.unique(torch.cat([train.images, test.images])).tolist()) <= levels
    # Together the splits are all of scikit-learn's data set, each image exactly once.
    raw = load_digits()
    expected = np.floor(raw.images * 255 / 16 + 0.5).astype(np.uint8)
    ours = torch.cat([train.images, test.images])[:, 0].numpy()
    key = lambda a: sorted(map(bytes, a.reshape(len(a), -1)))  # noqa: E731
    assert key(ours) == key(expected)
    assert sorted(torch.cat([train.labels, test.labels]).tolist()) == sorted(raw.target.tolist())
    # Deterministic, and the stored statistics are those of the training split.
    again = load_dataset("digits", "train")
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    x = train.images.double() / 255
    assert abs(x.mean().item() - DIGITS_MEAN[0]) < 5e-4
    assert abs(x.std().item() - DIGITS_STD[0]) < 5e-4


# ----------------------------------------------------------------------------- registry


def test_all_data_sets_are_registered() -> None:
    assert {"mnist", "fashion-mnist", "cifar10", "cifar100", "digits"} <= set(DATASETS.names())
    signals = {"ucr-gunpoint", "ucr-arrowhead", "ucr-osuleaf", "ucr-acsf1", "ucr-italypowerdemand"}
    assert signals | {"ecg200", "ecg5000", "moving-mnist", "moving-mnist-wrap"} <= set(
        DATASETS.names()
    )


@pytest.mark.parametrize("name", DATASETS.names())
def test_unknown_split_lists_valid_ones(name: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train, test"):
        load_dataset(name, "validation", data_dir=tmp_path)


def test_unknown_data_set_name() -> None:
    with pytest.raises(UnknownNameError, match="mnist"):
        load_dataset("imagenet-21k", "train")


# ----------------------------------------------------------------------------- ImageData


def _toy(n: int = 20, classes: int = 4, channels: int = 1, size: int = 4) -> ImageData:
    """Image k is filled with the value k, so every output can be traced to its source index."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, channels, size, size)
    return ImageData(
        images=images.contiguous(),
        labels=torch.arange(n) % classes,
        num_classes=classes,
        name="toy",
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
    )


def test_labels_out_of_range_are_named() -> None:
    with pytest.raises(DataError, match=r"values: -1, 7") as info:
        ImageData(
            torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
            torch.tensor([0, 7, -1, 1]),
            num_classes=3,
            name="toy",
            mean=(0.5,),
            std=(0.5,),
        )
    assert "remap" in str(info.value)


@pytest.mark.parametrize(
    "images, labels, mean, match",
    [
        (torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), (0.5,), "uint8"),
        # (N, C, L) signals and (N, C, T, H, W) clips are valid now; a missing channel axis or
        # a sixth dimension is not.
        (torch.zeros(2, 2, dtype=torch.uint8), torch.tensor([0, 1]), (0.5,), r"\(N, C, H, W\)"),
        (
            torch.zeros(2, 1, 1, 2, 2, 2, dtype=torch.uint8),
            torch.tensor([0, 1]),
            (0.5,),
            "6 di|got",
        ),
        (torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]).int(), (0.5,), "int64"),
        (torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0]), (0.5,), "shape"),
        (torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), (0.5, 0.5), "channel"),
    ],
    ids=["float-images", "2d-images", "6d-images", "int32-labels", "label-count", "mean-length"],
)
def test_image_data_validation(images, labels, mean, match) -> None:
    with pytest.raises(DataError, match=match):
        ImageData(images, labels, num_classes=2, name="toy", mean=mean, std=mean)


def test_subset_take_and_counts() -> None:
    data = _toy()
    assert len(data) == 20 and data.shape == (1, 4, 4)
    assert data.class_counts().tolist() == [5, 5, 5, 5]
    sub = data.subset([3, 0, 17])
    assert sub.images[:, 0, 0, 0].tolist() == [3, 0, 17] and sub.labels.tolist() == [3, 0, 1]
    assert sub.mean == data.mean and sub.name == data.name

    taken = data.take(7, seed=5)
    ids = taken.images[:, 0, 0, 0].tolist()
    assert len(taken) == 7 and len(set(ids)) == 7
    assert ids == data.take(7, seed=5).images[:, 0, 0, 0].tolist()
    assert ids != data.take(7, seed=6).images[:, 0, 0, 0].tolist()
    assert len(data.take(20, seed=0)) == 20
    with pytest.raises(DataError, match="cannot take 21"):
        data.take(21, seed=0)


@pytest.mark.parametrize("fraction, num_val", [(0.1, 2), (0.25, 5), (0.5, 10)])
def test_split_validation_sizes_and_disjointness(fraction: float, num_val: int) -> None:
    data = _toy()
    train, val = split_validation(data, fraction, seed=3)
    assert (len(train), len(val)) == (20 - num_val, num_val)
    train_ids = set(train.images[:, 0, 0, 0].tolist())
    val_ids = set(val.images[:, 0, 0, 0].tolist())
    assert not train_ids & val_ids and train_ids | val_ids == set(range(20))
    train2, _ = split_validation(data, fraction, seed=3)
    assert torch.equal(train.images, train2.images)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, 0.01])
def test_split_validation_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(DataError, match="fraction"):
        split_validation(_toy(), fraction, seed=0)


# ----------------------------------------------------------------------------- BatchLoader


def _ids(x: torch.Tensor) -> list[int]:
    """Recover the source index of each image in a batch of ``_toy`` images."""
    return (x[:, 0, 0, 0] * 255).round().long().tolist()


def _epoch(loader: BatchLoader) -> list[list[int]]:
    return [_ids(x) for x, _ in loader]


@pytest.mark.parametrize("drop_last, lengths", [(False, [6, 6, 6, 2]), (True, [6, 6, 6])])
def test_loader_covers_every_sample_once(drop_last: bool, lengths: list[int]) -> None:
    data = _toy()
    loader = BatchLoader(data, 6, shuffle=True, seed=1, drop_last=drop_last)
    assert len(loader) == len(lengths)
    batches = list(loader)
    assert [len(x) for x, _ in batches] == lengths
    ids = [i for x, _ in batches for i in _ids(x)]
    assert len(set(ids)) == len(ids) == sum(lengths)
    if not drop_last:
        assert sorted(ids) == list(range(20))
    for x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert y.tolist() == [i % 4 for i in _ids(x)]  # labels stay with their images
        assert x.shape[1:] == (1, 4, 4)


def test_loader_order_is_a_function_of_seed_and_epoch() -> None:
    data = _toy()
    first = BatchLoader(data, 5, shuffle=True, seed=7)
    epochs = []
    for epoch in range(3):
        first.set_epoch(epoch)
        epochs.append(_epoch(first))
    assert epochs[0] != epochs[1] != epochs[2]  # a fresh order each epoch
    resumed = BatchLoader(data, 5, shuffle=True, seed=7)
    resumed.set_epoch(2)  # a run resumed at epoch 2 sees the interrupted run's batches
    assert _epoch(resumed) == epochs[2]
    assert _epoch(resumed) == epochs[2]  # iterating again without set_epoch repeats the epoch
    other_seed = BatchLoader(data, 5, shuffle=True, seed=8)
    other_seed.set_epoch(2)
    assert _epoch(other_seed) != epochs[2]
    in_order = BatchLoader(data, 5, shuffle=False)
    assert _epoch(in_order) == [list(range(s, s + 5)) for s in range(0, 20, 5)]


def test_loader_without_augment_leaves_pixels_untouched() -> None:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(10, 3, 6, 6), dtype=np.uint8))
    data = ImageData(images, torch.arange(10) % 3, 3, "rgb", (0.5,) * 3, (0.2,) * 3)
    loader = BatchLoader(data, 4, shuffle=True, seed=0)
    order = loader.order()
    seen = torch.cat([x for x, _ in loader])
    torch.testing.assert_close(seen, images[order].float() / 255, rtol=0, atol=0)


def _reference_crop_flip(images, top, left, flip, padding):
    """Slow per-image reference: pad, slice, maybe flip."""
    out = torch.empty_like(images)
    h, w = images.shape[2:]
    for n in range(images.shape[0]):
        padded = torch.nn.functional.pad(images[n], (padding,) * 4)
        crop = padded[:, top[n] : top[n] + h, left[n] : left[n] + w]
        out[n] = crop.flip(-1) if flip[n] else crop
    return out


def test_apply_crop_flip_matches_a_per_image_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 7, 9), generator=gen, dtype=torch.uint8)
    top = torch.randint(0, 9, (16,), generator=gen)
    left = torch.randint(0, 9, (16,), generator=gen)
    flip = torch.randint(0, 2, (16,), generator=gen).bool()
    expected = _reference_crop_flip(images, top, left, flip, 4)
    assert torch.equal(apply_crop_flip(images, top, left, flip, 4), expected)
    # The identity crop with a flip is a mirror image; an extreme crop shows the zero padding.
    centre = torch.full((16,), 4)
    mirrored = apply_crop_flip(images, centre, centre, torch.ones(16, dtype=torch.bool), 4)
    assert torch.equal(mirrored, images.flip(-1))
    corner = apply_crop_flip(images, torch.zeros(16, dtype=torch.long), centre, flip * False, 4)
    assert int(corner[:, :, :4].sum()) == 0 and torch.equal(corner[:, :, 4:], images[:, :, :3])


def test_crop_flip_loader_is_reproducible_and_changes_images() -> None:
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(1, 256, size=(12, 3, 8, 8), dtype=np.uint8))
    data = ImageData(images, torch.arange(12) % 3, 3, "rgb", (0.5,) * 3, (0.2,) * 3)

    def run(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = BatchLoader(data, 5, shuffle=True, seed=4, augment="crop_flip")
        loader.set_epoch(epoch)
        return list(loader)

    plain = BatchLoader(data, 5, shuffle=True, seed=4)
    plain.set_epoch(1)
    for (xa, ya), (xb, yb), (xp, yp) in zip(run(1), run(1), plain, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.shape == xp.shape and xa.dtype == torch.float32
        assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
        assert torch.equal(ya, yp)  # augmentation never changes the order or the labels
    augmented = torch.cat([x for x, _ in run(1)])
    unaugmented = torch.cat([x for x, _ in plain])
    assert not torch.equal(augmented, unaugmented)
    assert not torch.equal(augmented, torch.cat([x for x, _ in run(2)]))


def test_loader_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="crop_flip"):
        BatchLoader(_toy(), 4, shuffle=True, augment="mixup")
    with pytest.raises(ConfigError, match="batch_size"):
        BatchLoader(_toy(), 0, shuffle=True)


def test_iterate_batches_is_sequential() -> None:
    data = _toy()
    batches = list(iterate_batches(data, 8, "cpu"))
    assert [len(x) for x, _ in batches] == [8, 8, 4]
    assert [i for x, _ in batches for i in _ids(x)] == list(range(20))
    assert torch.equal(torch.cat([y for _, y in batches]), data.labels)


# ----------------------------------------------------------------------------- signals and video


@pytest.mark.parametrize(
    "shape, layout", [((6, 2, 9), "signal"), ((6, 1, 8, 8), "image"), ((6, 1, 3, 8, 8), "video")]
)
def test_image_data_holds_signals_images_and_video(shape, layout) -> None:
    images = torch.arange(6, dtype=torch.uint8).view(6, *([1] * (len(shape) - 1))).expand(shape)
    data = ImageData(images.contiguous(), torch.arange(6) % 3, 3, "x", (0.5,) * shape[1],
                     (0.2,) * shape[1])  # fmt: skip
    assert data.shape == shape[1:] and data.layout == layout
    sub = data.subset([4, 1])
    assert sub.images.shape == (2, *shape[1:]) and sub.images.flatten(1)[:, 0].tolist() == [4, 1]
    batches = list(BatchLoader(data, 4, shuffle=True, seed=0))
    assert [tuple(x.shape) for x, _ in batches] == [(4, *shape[1:]), (2, *shape[1:])]
    for x, y in batches:  # each sample keeps its label (label = index % 3)
        assert ((x.flatten(1)[:, 0] * 255).round().long() % 3).tolist() == y.tolist()
    assert [len(x) for x, _ in iterate_batches(data, 5)] == [5, 1]
    if layout == "image":
        assert len(list(BatchLoader(data, 4, shuffle=True, augment="crop_flip"))) == 2
    else:
        with pytest.raises(ConfigError, match="crop_flip is an image augmentation"):
            BatchLoader(data, 4, shuffle=True, augment="crop_flip")
        generator = torch.Generator().manual_seed(0)
        with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
            crop_flip(data.images, generator)


def test_value_range_is_checked() -> None:
    images = torch.zeros(2, 1, 5, dtype=torch.uint8)
    data = ImageData(images, torch.tensor([0, 1]), 2, "s", (0.5,), (0.2,), value_range=(-1, 2))
    assert data.value_range == (-1.0, 2.0) and data.subset([1]).value_range == (-1.0, 2.0)
    with pytest.raises(DataError, match="low < high"):
        ImageData(images, torch.tensor([0, 1]), 2, "s", (0.5,), (0.2,), value_range=(2, 2))
