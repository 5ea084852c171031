"""1-D signals: the .ts reader, the UCR sets bundled with aeon, and the downloaded ECG sets.

The reader is checked against aeon's own loader on the real archive files (an independent
implementation), and against hand-written snippets, malformed ones included. The ECG download
path runs for real against a file:// mirror holding archives written here, so the checksum
logic (pinned sha256, record-and-verify) is exercised end to end.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rlrobust.data.ecg as ecg_module
import rlrobust.data.ucr as ucr_module
from rlrobust.data import (
    BatchLoader,
    ImageData,
    extract_zip_members,
    load_dataset,
    parse_ts,
    read_ts,
)
from rlrobust.data.sources import ECG200_ARCHIVE, ECG5000_ARCHIVE, UCRArchive
from rlrobust.data.ts_format import label_order
from rlrobust.data.ucr import AEON_BUNDLED, aeon_data_dir
from rlrobust.errors import ConfigError, DataError
from rlrobust.registry import DATASETS

GOOD = """# a comment line
# another one
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 10 2 1
@data
0.5,1.0,1.5,2.0:10
-1,0,1,2:2

3,3,3,3e-1:1
"""


def needs_aeon() -> Path:
    """The UCR files of aeon's wheel. aeon is a dev dependency, so a missing one fails (never
    skips): the parser tests on real files must run wherever the tests run."""
    folder = aeon_data_dir()
    if folder is None:
        pytest.fail(
            "aeon is not installed, so the real UCR files are missing: install the dev extra "
            "(pip install -e '.[dev]') or pip install 'rlrobust[signals]'"
        )
    return folder


# ----------------------------------------------------------------------------- the .ts reader


def test_parse_hand_written_univariate() -> None:
    problem = parse_ts(GOOD)
    assert problem.name == "Toy"
    assert problem.series.shape == (3, 1, 4) and problem.series.dtype == np.float64
    assert problem.series[0, 0].tolist() == [0.5, 1.0, 1.5, 2.0]
    assert problem.series[2, 0].tolist() == [3.0, 3.0, 3.0, 0.3]
    assert problem.labels == ("10", "2", "1")
    assert problem.class_labels == ("10", "2", "1")


def test_parse_multivariate_as_channels_and_case_insensitive_headers() -> None:
    text = (
        "@problemname Two\n@UNIVARIATE false\n@dimensions 2\n@classlabel true a b\n@DATA\n"
        "1,2,3:4,5,6:b\n7,8,9:10,11,12:a\n"
    )
    problem = parse_ts(text)
    assert problem.series.shape == (2, 2, 3)
    assert problem.series[0].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert problem.labels == ("b", "a")


def test_label_order_is_numeric_when_labels_are_numbers() -> None:
    assert label_order(("1", "10", "2")) == ("1", "2", "10")
    assert label_order(("1", "-1")) == ("-1", "1")
    assert label_order(("Walking", "Badminton", "Running")) == ("Badminton", "Running", "Walking")


BAD = {
    "no-data-line": ("@classLabel true 1 2\n1,2:1\n", "expected a @header"),
    "no-data-at-all": ("@classLabel true 1 2\n", "no @data"),
    "missing-value": ("@classLabel true 1 2\n@data\n1,?,3:1\n", "missing value"),
    "nan-value": ("@classLabel true 1 2\n@data\n1,NaN,3:1\n", "missing value"),
    "inf-value": ("@classLabel true 1 2\n@data\n1,inf,3:1\n", "not finite"),
    "not-a-number": ("@classLabel true 1 2\n@data\n1,x,3:1\n", "'x' is not a number"),
    "length-vs-header": (
        "@seriesLength 3\n@classLabel true 1 2\n@data\n1,2,3,4:1\n",
        "length 4, expected 3",
    ),
    "unequal-rows": ("@classLabel true 1 2\n@data\n1,2,3:1\n1,2:2\n", "unequal lengths"),
    "equal-length-false": ("@equalLength false\n@classLabel true 1 2\n@data\n1:1\n", "different"),
    "missing-true": ("@missing true\n@classLabel true 1 2\n@data\n1:1\n", "missing values"),
    "time-stamps": ("@timeStamps true\n@classLabel true 1 2\n@data\n1:1\n", "timeStamps"),
    "undeclared-label": ("@classLabel true 1 2\n@data\n1,2:3\n", "label '3' is not declared"),
    "no-class-label": ("@univariate true\n@data\n1,2:1\n", "classLabel true"),
    "class-label-false": ("@classLabel false\n@data\n1,2\n", "classLabel true"),
    "one-class": ("@classLabel true 1\n@data\n1,2:1\n", "at least two classes"),
    "regression": ("@targetlabel true\n@classLabel true 1 2\n@data\n1:1\n", "regression"),
    "header-after-data": ("@classLabel true 1 2\n@data\n1:1\n@missing false\n", "after @data"),
    "unknown-header": ("@colour blue\n@classLabel true 1 2\n@data\n1:1\n", "unknown header"),
    "no-colon": ("@classLabel true 1 2\n@data\n1,2,3\n", "no ':'"),
    "univariate-two-dims": ("@classLabel true 1 2\n@data\n1,2:3,4:1\n", "2 dimension"),
    "dimensions-mismatch": (
        "@univariate false\n@dimensions 3\n@classLabel true 1 2\n@data\n1:2:1\n",
        "expected 3",
    ),
    "empty-data": ("@classLabel true 1 2\n@data\n", "no samples"),
    "bad-boolean": ("@missing maybe\n@classLabel true 1 2\n@data\n1:1\n", "true or false"),
    "bad-length": ("@seriesLength -3\n@classLabel true 1 2\n@data\n1:1\n", "positive integer"),
}


@pytest.mark.parametrize("text, match", list(BAD.values()), ids=list(BAD))
def test_malformed_files_are_refused_clearly(text: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_ts(text, source="bad.ts")


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.ts"
    path.write_text("@classLabel true 1 2\n@data\n1,2:1\n1,?:2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.ts:4: a missing value"):
        read_ts(path)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.ts"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert read_ts(path).series.shape == (3, 1, 4)


# ----------------------------------------------------------------------------- real aeon files

REAL = [*AEON_BUNDLED.values(), "BasicMotions"]


@pytest.mark.parametrize("problem", REAL)
@pytest.mark.parametrize("split", ["TRAIN", "TEST"])
def test_reader_agrees_with_aeon_on_the_real_files(problem: str, split: str) -> None:
    folder = needs_aeon()
    from aeon.datasets import load_from_ts_file  # the independent reference

    path = folder / problem / f"{problem}_{split}.ts"
    ours = read_ts(path)
    series, labels = load_from_ts_file(str(path))
    assert ours.series.shape == series.shape
    np.testing.assert_array_equal(ours.series, series)
    # aeon lower-cases whole lines; the reader keeps the file's spelling.
    assert [label.lower() for label in ours.labels] == [str(label) for label in labels]


EXPECTED_SHAPES = {  # (train N, test N, C, L, classes), from the archive's descriptions
    "ucr-gunpoint": (50, 150, 1, 150, 2),
    "ucr-arrowhead": (36, 175, 1, 251, 3),
    "ucr-osuleaf": (200, 242, 1, 427, 6),
    "ucr-acsf1": (100, 100, 1, 1460, 10),
    "ucr-italypowerdemand": (67, 1029, 1, 24, 2),
}


@pytest.mark.parametrize("name", list(AEON_BUNDLED))
def test_bundled_ucr_sets_load_with_the_contract(name: str, tmp_path: Path) -> None:
    folder = needs_aeon()
    n_train, n_test, channels, length, classes = EXPECTED_SHAPES[name]
    # tmp_path as the data root: nothing there, so the aeon copy is used.
    train = load_dataset(name, "train", data_dir=tmp_path)
    test = load_dataset(name, "test", data_dir=tmp_path)
    assert (len(train), len(test)) == (n_train, n_test)
    assert train.shape == test.shape == (channels, length) and train.layout == "signal"
    assert train.num_classes == classes and train.name == name
    assert train.mean == test.mean and train.std == test.std  # both from the train split
    # The statistics are those of the stored training values.
    x = train.images.double() / 255
    assert abs(x.mean().item() - train.mean[0]) < 1e-9
    assert abs(x.std(unbiased=False).item() - train.std[0]) < 1e-9
    # Train spans the whole range: its minimum and maximum map to 0 and 255.
    assert int(train.images.min()) == 0 and int(train.images.max()) == 255

    # Against the raw values read by aeon: labels in sorted order, values within half a step.
    from aeon.datasets import load_from_ts_file

    problem = AEON_BUNDLED[name]
    raw, raw_labels = load_from_ts_file(str(folder / problem / f"{problem}_TEST.ts"))
    order = sorted({str(v) for v in raw_labels}, key=float)
    assert train.class_names == tuple(order)
    assert test.labels.tolist() == [order.index(str(v)) for v in raw_labels]
    low, high = test.value_range
    restored = low + test.images[:, 0].double().numpy() / 255 * (high - low)
    inside = (raw[:, 0] >= low) & (raw[:, 0] <= high)
    assert np.abs(restored - raw[:, 0])[inside].max() <= (high - low) / 510 + 1e-9
    assert np.all(test.images[:, 0].numpy()[raw[:, 0] < low] == 0)
    assert np.all(test.images[:, 0].numpy()[raw[:, 0] > high] == 255)


def test_gunpoint_label_counts_match_aeon() -> None:
    needs_aeon()
    train = load_dataset("ucr-gunpoint", "train")
    assert train.class_counts().tolist() == [24, 26]  # '1': 24, '2': 26 (aeon's reader agrees)
    assert train.class_names == ("1", "2")


# ----------------------------------------------------------------------------- scaling, data_dir


def write_problem(folder: Path, problem: str, train: str, test: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{problem}_TRAIN.ts").write_text(train, encoding="utf-8")
    (folder / f"{problem}_TEST.ts").write_text(test, encoding="utf-8")


HEAD = "@problemName Toy\n@univariate true\n@classLabel true 1 2\n@data\n"


def test_data_dir_copy_is_preferred_and_scaled_with_train_statistics(tmp_path: Path) -> None:
    # A "GunPoint" under <root>/ucr/ wins over aeon's: a user's download is never shadowed.
    write_problem(
        tmp_path / "ucr" / "GunPoint",
        "GunPoint",
        HEAD + "0,10,5:1\n10,0,2.5:2\n",
        HEAD + "-5,20,2.5:2\n5,7.5,0:1\n",
    )
    train = load_dataset("ucr-gunpoint", "train", data_dir=tmp_path)
    test = load_dataset("ucr-gunpoint", "test", data_dir=tmp_path)
    assert train.shape == (1, 3) and train.value_range == (0.0, 10.0)
    assert train.images[:, 0].tolist() == [[0, 255, 128], [255, 0, 64]]  # rint(63.75) = 64
    # Out-of-range test values clip to the ends; the scale is the train split's.
    assert test.images[:, 0].tolist() == [[0, 255, 64], [128, 191, 0]]
    assert test.labels.tolist() == [1, 0]
    expected = np.rint(np.array([0, 10, 5, 10, 0, 2.5]) / 10 * 255) / 255
    assert train.mean == pytest.approx((expected.mean(),), abs=1e-12)
    assert test.mean == train.mean and test.std == train.std

    margin = load_dataset("ucr-gunpoint", "test", data_dir=tmp_path, margin=0.25)
    assert margin.value_range == (-2.5, 12.5)
    assert margin.images[0, 0].tolist() == [0, 255, 85]  # (2.5 + 2.5) / 15 * 255 = 85


def test_constant_or_mismatched_splits_are_refused(tmp_path: Path) -> None:
    write_problem(tmp_path / "ucr" / "Flat", "Flat", HEAD + "1,1:1\n1,1:2\n", HEAD + "1,1:1\n")
    with pytest.raises(DataError, match="constant"):
        ucr_module.load_ucr("Flat", "train", data_dir=tmp_path)
    write_problem(tmp_path / "ucr" / "Odd", "Odd", HEAD + "1,2:1\n2,1:2\n", HEAD + "1,2,3:1\n")
    with pytest.raises(DataError, match="not from one problem"):
        ucr_module.load_ucr("Odd", "test", data_dir=tmp_path)


def test_missing_problem_names_the_folders_and_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ucr_module, "aeon_data_dir", lambda: None)
    with pytest.raises(DataError) as info:
        load_dataset("ucr-osuleaf", "train", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "ucr" / "OSULeaf") in message
    assert "aeon-toolkit/OSULeaf.zip" in message and "rlrobust[signals]" in message


def test_signals_go_through_the_batch_loader_but_not_crop_flip(tmp_path: Path) -> None:
    write_problem(tmp_path / "ucr" / "Toy", "Toy", HEAD + "0,1,2:1\n2,1,0:2\n", HEAD + "1,1,1:1\n")
    data = ucr_module.load_ucr("Toy", "train", data_dir=tmp_path)
    (x, y), *_ = list(BatchLoader(data, 8, shuffle=False))
    assert x.shape == (2, 1, 3) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    assert y.tolist() == [0, 1]
    with pytest.raises(ConfigError, match="crop_flip is an image augmentation"):
        BatchLoader(data, 8, shuffle=True, augment="crop_flip")


# ----------------------------------------------------------------------------- ECG downloads


def small_ecg(problem: str, rows: int = 6, length: int = 5) -> tuple[str, str]:
    rng = np.random.default_rng(0)

    def body(n: int) -> str:
        lines = [
            ",".join(f"{v:.4f}" for v in rng.normal(size=length)) + f":{(-1, 1)[i % 2]}"
            for i in range(n)
        ]
        return "\n".join(lines) + "\n"

    head = f"@problemName {problem}\n@univariate true\n@classLabel true -1 1\n@data\n"
    return head + body(rows), head + body(rows)


def make_mirror(tmp_path: Path, problem: str) -> tuple[Path, str]:
    """A folder holding <problem>.zip (with .ts, .txt members as the archive has); its sha256."""
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    train, test = small_ecg(problem)
    with zipfile.ZipFile(mirror / f"{problem}.zip", "w") as zipped:
        zipped.writestr(f"{problem}_TRAIN.ts", train)
        zipped.writestr(f"{problem}_TEST.ts", test)
        zipped.writestr(f"{problem}_TRAIN.txt", "unused")
    digest = hashlib.sha256((mirror / f"{problem}.zip").read_bytes()).hexdigest()
    return mirror, digest


def use_archive(monkeypatch, name: str, archive: UCRArchive) -> None:
    monkeypatch.setitem(ecg_module.ECG_ARCHIVES, name, archive)


def test_pinned_catalogue_entries() -> None:
    assert ECG200_ARCHIVE.urls() == [
        "https://www.timeseriesclassification.com/aeon-toolkit/ECG200.zip"
    ]
    assert len(ECG200_ARCHIVE.sha256) == 64 and int(ECG200_ARCHIVE.sha256, 16) >= 0
    assert ECG5000_ARCHIVE.sha256 is None  # no verified checksum: recorded on first download
    assert {"ecg200", "ecg5000"} <= set(DATASETS.names())


def test_ecg_download_with_pinned_sha256(tmp_path: Path, monkeypatch) -> None:
    mirror, digest = make_mirror(tmp_path, "ECG200")
    use_archive(monkeypatch, "ecg200", UCRArchive("ECG200", digest, (mirror.as_uri() + "/",)))
    root = tmp_path / "data"
    train = load_dataset("ecg200", "train", data_dir=root, download=True)
    test = load_dataset("ecg200", "test", data_dir=root)
    folder = root / "ucr" / "ECG200"
    assert sorted(p.name for p in folder.iterdir()) == [
        "ECG200.zip",
        "ECG200_TEST.ts",
        "ECG200_TEST.ts.sha256",
        "ECG200_TRAIN.ts",
        "ECG200_TRAIN.ts.sha256",
    ]
    assert isinstance(train, ImageData) and train.name == "ecg200"
    assert train.shape == test.shape == (1, 5) and train.class_names == ("-1", "1")
    assert train.labels.tolist() == [0, 1, 0, 1, 0, 1]
    record = (folder / "ECG200_TRAIN.ts.sha256").read_text().split()
    assert record == [hashlib.sha256((folder / "ECG200_TRAIN.ts").read_bytes()).hexdigest(),
                      "ECG200_TRAIN.ts"]  # fmt: skip

    # An extracted file edited later is refused.
    with open(folder / "ECG200_TEST.ts", "a", encoding="utf-8") as handle:
        handle.write("0,0,0,0,0:1\n")
    with pytest.raises(DataError, match="changed since its sha256 was recorded"):
        load_dataset("ecg200", "test", data_dir=root)


def test_ecg_download_with_wrong_checksum_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    mirror, digest = make_mirror(tmp_path, "ECG200")
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    use_archive(monkeypatch, "ecg200", UCRArchive("ECG200", wrong, (mirror.as_uri() + "/",)))
    root = tmp_path / "data"
    with pytest.raises(DataError, match="could not download ECG200.zip"):
        load_dataset("ecg200", "train", data_dir=root, download=True)
    folder = root / "ucr" / "ECG200"
    assert not folder.exists() or not any(folder.iterdir())


def test_corrupted_archive_on_disk_is_caught(tmp_path: Path, monkeypatch) -> None:
    mirror, digest = make_mirror(tmp_path, "ECG200")
    use_archive(monkeypatch, "ecg200", UCRArchive("ECG200", digest, (mirror.as_uri() + "/",)))
    folder = tmp_path / "data" / "ucr" / "ECG200"
    folder.mkdir(parents=True)
    data = bytearray((mirror / "ECG200.zip").read_bytes())
    data[40] ^= 0xFF  # one flipped byte
    (folder / "ECG200.zip").write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted"):
        load_dataset("ecg200", "train", data_dir=tmp_path / "data")
    # With --data.download the bad copy is replaced by a good one.
    train = load_dataset("ecg200", "train", data_dir=tmp_path / "data", download=True)
    assert len(train) == 6


def test_ecg_without_checksum_records_then_verifies(tmp_path: Path, monkeypatch, capsys) -> None:
    mirror, digest = make_mirror(tmp_path, "ECG5000")
    use_archive(monkeypatch, "ecg5000", UCRArchive("ECG5000", None, (mirror.as_uri() + "/",)))
    root = tmp_path / "data"
    load_dataset("ecg5000", "train", data_dir=root, download=True)
    folder = root / "ucr" / "ECG5000"
    assert (folder / "ECG5000.zip.sha256").read_text().split() == [digest, "ECG5000.zip"]
    assert digest in capsys.readouterr().out  # the first download's digest is printed
    # Later corruption of the archive is caught (the .ts files are re-extracted from it).
    for member in ("ECG5000_TRAIN.ts", "ECG5000_TEST.ts"):
        (folder / member).unlink()
    data = bytearray((folder / "ECG5000.zip").read_bytes())
    data[-30] ^= 0xFF
    (folder / "ECG5000.zip").write_bytes(bytes(data))
    with pytest.raises(DataError, match="changed since its sha256 was recorded"):
        load_dataset("ecg5000", "test", data_dir=root)


def test_ecg_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("ecg5000", "train", data_dir=tmp_path)
    message = str(info.value)
    assert "--data.download" in message and "aeon-toolkit/ECG5000.zip" in message
    assert "from --data.data_dir" in message


def test_hand_copied_ts_files_are_recorded_on_first_load(tmp_path: Path) -> None:
    train, test = small_ecg("ECG200")
    write_problem(tmp_path / "ucr" / "ECG200", "ECG200", train, test)
    assert len(load_dataset("ecg200", "test", data_dir=tmp_path)) == 6
    assert (tmp_path / "ucr" / "ECG200" / "ECG200_TEST.ts.sha256").is_file()


def test_extract_zip_members_refuses_escapes_and_missing_members(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("ok.ts", "x")
        zipped.writestr("../evil.ts", "x")
    with pytest.raises(DataError, match="plain file names"):
        extract_zip_members(archive, tmp_path / "out", ["../evil.ts"])
    with pytest.raises(DataError, match="no member"):
        extract_zip_members(archive, tmp_path / "out", ["absent.ts"])
    assert extract_zip_members(archive, tmp_path / "out", ["ok.ts"]) == [tmp_path / "out" / "ok.ts"]
    # A member inside one folder of the archive is found by name and written flat.
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as zipped:
        zipped.writestr("ECG5000/ECG5000_TRAIN.ts", "data")
        zipped.writestr("a/twice.ts", "1")
        zipped.writestr("b/twice.ts", "2")
    written = extract_zip_members(nested, tmp_path / "flat", ["ECG5000_TRAIN.ts"])
    assert written == [tmp_path / "flat" / "ECG5000_TRAIN.ts"] and written[0].read_text() == "data"
    with pytest.raises(DataError, match="2 members named twice.ts"):
        extract_zip_members(nested, tmp_path / "flat", ["twice.ts"])
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="could not be unpacked"):
        extract_zip_members(tmp_path / "junk.zip", tmp_path / "out", ["ok.ts"])
    assert not (tmp_path / "evil.ts").exists()


@pytest.mark.cli
def test_train_command_on_a_signal_set(tmp_path: Path, capsys) -> None:
    """rlrobust train end to end on a UCR set with cnn1d: registration, shapes, model_for."""
    needs_aeon()
    from rlrobust.cli import main

    out = tmp_path / "run"
    argv = ["train", "--data.name", "ucr-italypowerdemand", "--model.name", "cnn1d",
            "--model.options", '{"widths": [8, 8], "kernels": [3, 3]}', "--train.epochs", "1",
            "--train.device", "cpu", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file() and (out / "metrics.csv").is_file()


def test_documented_clipping_share_of_gunpoint() -> None:
    """docs/data.md and ucr.py quote 0.58% of GunPoint's test values clipped; recompute it."""
    folder = needs_aeon()
    train = read_ts(folder / "GunPoint" / "GunPoint_TRAIN.ts").series
    test = read_ts(folder / "GunPoint" / "GunPoint_TEST.ts").series
    share = ((test < train.min()) | (test > train.max())).mean()
    assert round(100 * share, 2) == 0.58
    assert round((train.max() - train.min()) / 510, 4) == 0.0087  # the quoted half step
