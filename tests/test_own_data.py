"""Your own data: an image folder (``folder``) and a .npz / .safetensors file (``tensors``).

Every expectation is built independently of the loaders: the pixels are the arrays the test
wrote (PNG is lossless), the statistics come from numpy on float copies, the split counts from
the documented rule. docs/own_data.md is executed as written by ``test_docs_page_runs``.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image  # the images extra; in dev, so a missing Pillow fails, never skips

from rlrobust.config import load_config
from rlrobust.data import load_dataset
from rlrobust.data.own import channel_stats, stratified_split
from rlrobust.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "own_data.md"


def write_folder(root: Path, counts: dict[str, int], shape=(5, 6), seed=0, mode="L") -> dict:
    """Random images, ``counts[name]`` of class ``name``; returns {path: (pixels, class name)}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            size = (*shape, 3) if mode == "RGB" else shape
            pixels = rng.integers(0, 256, size=size, dtype=np.uint8)
            path = root / name / f"{i:03d}.png"
            Image.fromarray(pixels, mode=mode).save(path)
            written[path] = (pixels, name)
    return written


def rows(data) -> list[bytes]:
    """One hashable entry per sample: its pixels and label."""
    return [
        data.images[i].numpy().tobytes() + bytes([int(data.labels[i])]) for i in range(len(data))
    ]


def numpy_stats(images: np.ndarray):
    x = images.astype(np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


# --------------------------------------------------------------------------- folder


def test_one_folder_is_split_per_class_and_keeps_every_pixel(tmp_path):
    counts = {"dog": 6, "cat": 10, "ant": 1}  # sorted: ant, cat, dog
    written = write_folder(tmp_path / "pets", counts)
    train = load_dataset("folder", "train", data_dir=tmp_path / "pets")
    test = load_dataset("folder", "test", data_dir=tmp_path / "pets")

    assert train.class_names == test.class_names == ("ant", "cat", "dog")
    assert train.num_classes == 3 and train.shape == (1, 5, 6)
    # Documented rule: round(0.2 * count) per class, >= 1 on each side from two samples on.
    assert test.class_counts().tolist() == [0, 2, 1]
    assert train.class_counts().tolist() == [1, 8, 5]
    label_of = {name: k for k, name in enumerate(train.class_names)}
    expected = sorted(p.tobytes() + bytes([label_of[n]]) for p, n in written.values())
    assert sorted(rows(train) + rows(test)) == expected  # disjoint, complete, pixel-exact
    # Statistics of the training split only, on both splits (the model is built from either).
    mean, std = numpy_stats(train.images.numpy())
    assert train.mean == test.mean and train.std == test.std
    np.testing.assert_allclose(train.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(train.std, std, rtol=1e-12)


def test_the_split_is_seeded(tmp_path):
    write_folder(tmp_path / "d", {"a": 20, "b": 20})
    first = rows(load_dataset("folder", "test", data_dir=tmp_path / "d"))
    assert rows(load_dataset("folder", "test", data_dir=tmp_path / "d")) == first
    other = rows(load_dataset("folder", "test", data_dir=tmp_path / "d", split_seed=1))
    assert sorted(other) != sorted(first)
    half = load_dataset("folder", "test", data_dir=tmp_path / "d", test_fraction=0.5)
    assert half.class_counts().tolist() == [10, 10]


def test_train_and_test_folders_mixed_grey_and_rgb_become_rgb(tmp_path):
    root = tmp_path / "d"
    grey = write_folder(root / "train", {"x": 2, "y": 2}, mode="L")
    colour = write_folder(root / "test", {"x": 1, "y": 1}, mode="RGB", seed=1)
    train = load_dataset("folder", "train", data_dir=root)
    test = load_dataset("folder", "test", data_dir=root)
    assert train.shape == test.shape == (3, 5, 6)  # the test images are colour: all RGB
    # Grey pixels are repeated on the three channels; colour pixels keep their values.
    for i, (pixels, _) in enumerate(grey.values()):
        assert np.array_equal(train.images[i].numpy(), np.stack([pixels] * 3))
    for i, (pixels, _) in enumerate(colour.values()):
        assert np.array_equal(test.images[i].numpy(), pixels.transpose(2, 0, 1))
    assert len(train) == 4 and len(test) == 2
    mean, _ = numpy_stats(train.images.numpy())
    np.testing.assert_allclose(test.mean, mean, rtol=1e-12)
    grey_only = load_dataset("folder", "train", data_dir=root, channels=1)
    assert grey_only.shape == (1, 5, 6)


def test_different_sizes_are_refused_unless_resized(tmp_path):
    root = tmp_path / "d"
    write_folder(root, {"a": 2})
    write_folder(root, {"b": 2}, shape=(7, 7))
    with pytest.raises(DataError, match=r"2 different sizes.*\"size\": \[H, W\]"):
        load_dataset("folder", "train", data_dir=root)
    resized = load_dataset("folder", "train", data_dir=root, size=[7, 7])
    assert resized.shape == (1, 7, 7)
    test = load_dataset("folder", "test", data_dir=root, size=[7, 7])
    # Images that already have the size are not touched.
    b_images = torch.cat([resized.images[resized.labels == 1], test.images[test.labels == 1]])
    expected = sorted(np.asarray(Image.open(p)).tobytes() for p in (root / "b").iterdir())
    assert sorted(img[0].numpy().tobytes() for img in b_images) == expected
    assert load_dataset("folder", "train", data_dir=root, size=4).shape == (1, 4, 4)


def test_hidden_files_and_other_suffixes_are_skipped_nested_folders_read(tmp_path):
    root = tmp_path / "d"
    write_folder(root, {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"junk")
    (root / ".cache").mkdir()
    (root / "b" / "more").mkdir()
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(root / "b" / "more" / "x.png")
    data = load_dataset("folder", "train", data_dir=root, test_fraction=0.4)
    assert data.class_names == ("a", "b")
    test = load_dataset("folder", "test", data_dir=root, test_fraction=0.4)
    assert len(data) + len(test) == 5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: write_folder(root, {"only": 3}), "at least two"),
        (lambda root: (write_folder(root, {"a": 2}), (root / "b").mkdir()), "holds no images"),
        (
            lambda root: (
                write_folder(root, {"a": 2, "b": 2}),
                (root / "b" / "x.png").write_bytes(b"no"),
            ),
            "not a readable image",
        ),
        (
            lambda root: (
                write_folder(root, {"a": 2, "b": 2}),
                Image.fromarray(np.zeros((5, 6), np.uint16)).save(root / "b" / "wide.png"),
            ),
            "more than 8 bits",
        ),
        (
            lambda root: (
                write_folder(root, {"a": 2, "b": 2}),
                (root / "loose.png").write_bytes(b""),
            ),
            "holds images directly",
        ),
        (lambda root: write_folder(root / "train", {"a": 2, "b": 2}), "no test/"),
        (
            lambda root: (
                write_folder(root / "train", {"a": 2, "b": 2}),
                write_folder(root / "test", {"a": 1, "c": 1}),
            ),
            r"missing \['b'\], extra \['c'\]",
        ),
    ],
)
def test_bad_folders_name_the_problem(tmp_path, make, message):
    root = tmp_path / "d"
    make(root)
    with pytest.raises(DataError, match=message):
        load_dataset("folder", "test", data_dir=root)


def test_bad_folder_options_name_the_fix(tmp_path):
    write_folder(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(DataError, match="--data.data_dir PATH"):
        load_dataset("folder", "train")
    with pytest.raises(DataError, match=r"no option\(s\) \['fraction'\].*test_fraction"):
        load_dataset("folder", "train", data_dir=tmp_path / "d", fraction=0.1)
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        load_dataset("folder", "train", data_dir=tmp_path / "d", test_fraction=1.0)
    with pytest.raises(DataError, match="drop --data.download"):
        load_dataset("folder", "train", data_dir=tmp_path / "d", download=True)
    with pytest.raises(DataError, match="size must be"):
        load_dataset("folder", "train", data_dir=tmp_path / "d", size=[0, 3])
    with pytest.raises(DataError, match="channels must be"):
        load_dataset("folder", "train", data_dir=tmp_path / "d", channels=2)
    write_folder(tmp_path / "s" / "train", {"a": 2, "b": 2})
    write_folder(tmp_path / "s" / "test", {"a": 2, "b": 2})
    with pytest.raises(DataError, match="already has train/ and test/"):
        load_dataset("folder", "train", data_dir=tmp_path / "s", test_fraction=0.3)


# --------------------------------------------------------------------------- tensor files


def pooled_arrays(n=40, seed=0, shape=(6, 7, 3)):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = np.arange(n) % 4
    return images, labels


def test_npz_pool_in_nhwc_is_transposed_split_and_normalised(tmp_path):
    images, labels = pooled_arrays()  # (N, H, W, C) with C = 3
    names = np.array(["w", "x", "y", "z"])
    np.savez(
        tmp_path / "mine.npz", images=images, labels=labels.astype(np.int32), class_names=names
    )
    train = load_dataset("tensors", "train", data_dir=tmp_path / "mine.npz")
    test = load_dataset("tensors", "test", data_dir=tmp_path / "mine.npz")
    assert train.shape == (3, 6, 7) and train.class_names == ("w", "x", "y", "z")
    train_index, test_index = stratified_split(labels, 0.2, 0)
    assert np.array_equal(train.images.numpy(), images[train_index].transpose(0, 3, 1, 2))
    assert np.array_equal(test.labels.numpy(), labels[test_index])
    assert test.class_counts().tolist() == [2, 2, 2, 2]
    mean, std = numpy_stats(images[train_index].transpose(0, 3, 1, 2))
    np.testing.assert_allclose(test.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(test.std, std, rtol=1e-12)


def test_safetensors_with_its_own_split_and_class_names(tmp_path):
    from safetensors.numpy import save_file

    images, labels = pooled_arrays(shape=(3, 8, 8))  # (N, C, H, W)
    grey = images[:, 0]  # (N, H, W)
    save_file(
        {
            "train_images": images[:30].copy(),
            "train_labels": labels[:30].copy(),
            "test_images": images[30:].copy(),
            "test_labels": labels[30:].copy(),
        },
        str(tmp_path / "mine.safetensors"),
        metadata={"class_names": json.dumps(["a", "b", "c", "d"])},
    )
    test = load_dataset("tensors", "test", data_dir=tmp_path / "mine.safetensors")
    assert np.array_equal(test.images.numpy(), images[30:]) and test.class_names[3] == "d"
    np.testing.assert_allclose(test.mean, numpy_stats(images[:30])[0], rtol=1e-12)
    np.savez(tmp_path / "grey.npz", images=grey, labels=labels)
    assert load_dataset("tensors", "train", data_dir=tmp_path / "grey.npz").shape == (1, 8, 8)


def test_an_ambiguous_layout_needs_the_option(tmp_path):
    images, labels = pooled_arrays(shape=(3, 4, 3))  # 3 channels first or last?
    np.savez(tmp_path / "tiny.npz", images=images, labels=labels)
    with pytest.raises(DataError, match='"layout": "nchw"'):
        load_dataset("tensors", "train", data_dir=tmp_path / "tiny.npz")
    nhwc = load_dataset("tensors", "train", data_dir=tmp_path / "tiny.npz", layout="nhwc")
    nchw = load_dataset("tensors", "train", data_dir=tmp_path / "tiny.npz", layout="nchw")
    assert nhwc.shape == (3, 3, 4) and nchw.shape == (3, 4, 3)


class TouchOnUnpickle:
    """Unpickling this object creates a file: the marker that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_arrays_are_refused_without_being_unpickled(tmp_path):
    images, labels = pooled_arrays()
    marker = tmp_path / "unpickled"
    payload = np.array([TouchOnUnpickle(marker)], dtype=object)
    np.savez(tmp_path / "evil.npz", images=images, labels=labels, class_names=payload)
    with pytest.raises(DataError, match="never loaded"):
        load_dataset("tensors", "train", data_dir=tmp_path / "evil.npz")
    assert not marker.exists()
    torch.save({"images": torch.zeros(1)}, tmp_path / "data.pt")
    with pytest.raises(DataError, match="pickles and are never loaded"):
        load_dataset("tensors", "train", data_dir=tmp_path / "data.pt")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"image": 0, "labels": 0}, r"holds the arrays \['image', 'labels'\]"),
        ({"images": "float", "labels": 0}, r"uint8.*\(x \* 255\)\.round\(\)"),
        ({"images": 0, "labels": "float"}, r"integers 0\.\.K-1.*astype\(np\.int64\)"),
        ({"images": 0, "labels": "short"}, "one label per image"),
        ({"images": "flat", "labels": 0}, r"give \(N, H, W\)"),
    ],
)
def test_bad_tensor_files_name_the_problem(tmp_path, arrays, message):
    images, labels = pooled_arrays()
    variants = {
        0: None,
        "float": None,
        "short": labels[:-1],
        "flat": images.reshape(len(images), -1),
    }
    out = {}
    for key, kind in arrays.items():
        base = images if "image" in key else labels
        value = variants[kind] if kind in ("short", "flat") else base
        out[key] = value.astype(np.float32) / 255 if kind == "float" else value
    np.savez(tmp_path / "bad.npz", **out)
    with pytest.raises(DataError, match=message):
        load_dataset("tensors", "train", data_dir=tmp_path / "bad.npz")


def test_tensor_file_paths_and_options_are_checked(tmp_path):
    with pytest.raises(DataError, match="the .npz or .safetensors file"):
        load_dataset("tensors", "train")
    with pytest.raises(DataError, match="for a folder of images use --data.name folder"):
        load_dataset("tensors", "train", data_dir=tmp_path)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset("tensors", "train", data_dir=tmp_path / "broken.npz")
    (tmp_path / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(DataError, match="not a readable .safetensors"):
        load_dataset("tensors", "train", data_dir=tmp_path / "broken.safetensors")
    images, labels = pooled_arrays()
    np.savez(tmp_path / "ok.npz", images=images, labels=labels)
    with pytest.raises(DataError, match="layout must be one of"):
        load_dataset("tensors", "train", data_dir=tmp_path / "ok.npz", layout="hwc")


def test_blank_channels_and_empty_splits_are_refused(tmp_path):
    labels = np.arange(8) % 2
    np.savez(tmp_path / "blank.npz", images=np.zeros((8, 4, 4), np.uint8), labels=labels)
    with pytest.raises(DataError, match="one value only"):
        load_dataset("tensors", "train", data_dir=tmp_path / "blank.npz")
    images, _ = pooled_arrays(n=3)
    np.savez(tmp_path / "single.npz", images=images, labels=np.arange(3))  # one per class
    with pytest.raises(DataError, match="test split is empty"):
        load_dataset("tensors", "test", data_dir=tmp_path / "single.npz")


# --------------------------------------------------------------------------- shared pieces


def test_channel_stats_match_numpy_on_a_large_random_batch():
    images = torch.randint(
        0, 256, (64, 3, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = channel_stats(images)
    ref_mean, ref_std = numpy_stats(images.numpy())
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=1e-12)
    planted = images.clone()
    planted[0, 1, 0, 0] ^= 1  # one pixel changed by one level moves the statistics
    assert channel_stats(planted)[0][1] != mean[1] and channel_stats(planted)[0][0] == mean[0]


def test_stratified_split_is_disjoint_complete_and_follows_the_rule():
    labels = np.repeat(np.arange(5), [1, 2, 3, 10, 11])
    train, test = stratified_split(labels, 0.3, seed=4)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    expected = [0, 1, 1, 3, 3]  # round(0.3 n), at least one per side from n = 2 on
    assert np.bincount(labels[test], minlength=5).tolist() == expected
    again = stratified_split(labels, 0.3, seed=4)
    assert np.array_equal(again[1], test)


def test_data_options_reach_the_loader_through_the_config(tmp_path):
    from rlrobust.runs import load_splits, load_test_split

    write_folder(tmp_path / "d", {"a": 10, "b": 10})
    cfg = load_config(
        overrides={
            "data.name": "folder",
            "data.data_dir": str(tmp_path / "d"),
            "data.options": '{"test_fraction": 0.5, "size": [4, 4]}',
        }
    )
    splits = load_splits(cfg.data, seed=0)
    assert len(splits.test) == 10 and splits.train.shape == (1, 4, 4)
    assert len(load_test_split(cfg)) == 10


# --------------------------------------------------------------------------- the docs page


def docs_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of docs/own_data.md, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", DOCS_PAGE.read_text(), flags=re.S)


def shell_commands(code: str) -> list[list[str]]:
    """The rlrobust commands of a bash block (continuations joined, comments dropped)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "rlrobust", f"docs/own_data.md runs only rlrobust commands: {line}"
            commands.append(words[1:])
    return commands


@pytest.mark.cli
def test_docs_page_runs(tmp_path, monkeypatch, capsys):
    """Every block of docs/own_data.md, in order, in an empty folder: a python block whose first
    line is ``# file: NAME`` is saved as NAME, other python blocks run, bash blocks run through
    the CLI's ``main`` (each must exit 0)."""
    from rlrobust.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    blocks = docs_blocks()
    assert {lang for lang, _ in blocks} == {"python", "bash"}
    session: dict = {"__name__": "__docs__"}  # the page's python blocks are one session
    for lang, code in blocks:
        first = code.splitlines()[0]
        if lang == "python" and first.startswith("# file: "):
            Path(first.removeprefix("# file: ").strip()).write_text(code)
        elif lang == "python":
            exec(compile(code, str(DOCS_PAGE), "exec"), session)  # noqa: S102 - our own page
        else:
            for command in shell_commands(code):
                assert main(command) == 0, (command, capsys.readouterr())
    monkeypatch.delitem(sys.modules, "my_models", raising=False)

    # What the page promises: both data sets trained and evaluated, the own model evaluated.
    for result in ("runs/folder-digits", "runs/npz-digits", "results/my-model"):
        record = json.loads((tmp_path / result / "evaluation.json").read_text())
        assert record["audit_passed"], result
        clean = record["clean_accuracy"]
        assert clean > 0.5, (result, clean)  # the runs must actually learn
    metrics = (tmp_path / "runs/folder-digits/metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 5  # header and one row per epoch
