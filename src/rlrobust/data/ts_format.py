"""A small, strict reader for the ``.ts`` time-series format of the UCR/UEA archive and aeon.

The format (https://www.aeon-toolkit.org, "Loading data into aeon"): ``#`` lines are comments,
then header lines, then ``@data`` and one sample per line::

    @problemName GunPoint
    @timeStamps false
    @missing false
    @univariate true
    @equalLength true
    @seriesLength 150
    @classLabel true 1 2
    @data
    -0.6478854,-0.64199155,...,-0.64173:2

Values of one dimension are comma separated; dimensions (for multivariate problems) and the
class label at the end are separated by ``:``. Header keys are case-insensitive (the archive
spells them both ways). The headers ``@equalLength`` and ``@seriesLength`` are optional (the
ArrowHead files omit them); when present they are checked against the data.

Only what a fixed-shape classifier can take is accepted: classification problems with equal
length series, no missing values and no time stamps. Anything else raises a DataError that
says which line is wrong and why. Multivariate problems are read as channels, (N, C, L).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlrobust.errors import DataError

_BOOLEANS = {"true": True, "false": False}
# Header keys this reader understands (lower case); any other key is refused, not ignored.
_KNOWN = {
    "@problemname",
    "@timestamps",
    "@missing",
    "@univariate",
    "@dimensions",
    "@equallength",
    "@serieslength",
    "@classlabel",
    "@targetlabel",
    "@data",
}


@dataclass(frozen=True)
class TsProblem:
    """The contents of one ``.ts`` file.

    Attributes:
        name: the ``@problemName`` value.
        series: float64 array of shape (N, C, L); C = 1 for univariate problems.
        labels: the raw class label of each sample, as written in the file (length N).
        class_labels: the labels declared by ``@classLabel true ...``, in file order.
    """

    name: str
    series: np.ndarray
    labels: tuple[str, ...]
    class_labels: tuple[str, ...]


def read_ts(path: str | os.PathLike) -> TsProblem:
    """Parse the ``.ts`` file at ``path`` (UTF-8, a leading byte-order mark is allowed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not a UTF-8 text file ({error}); is it a .ts file?") from error
    return parse_ts(text, source=str(path))


def parse_ts(text: str, source: str = "<text>") -> TsProblem:
    """Parse ``.ts`` text; ``source`` names the file in error messages."""
    header: dict[str, str] = {}
    rows: list[tuple[int, str]] = []
    in_data = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if in_data:
            if line.startswith("@"):
                raise DataError(f"{source}:{number}: header line {line.split()[0]!r} after @data")
            rows.append((number, line))
            continue
        if not line.startswith("@"):
            raise DataError(
                f"{source}:{number}: expected a @header line or @data before the values, got "
                f"{line[:40]!r}; is this a .ts file?"
            )
        key, _, value = line.partition(" ")
        key = key.lower()
        if key not in _KNOWN:
            raise DataError(
                f"{source}:{number}: unknown header {key!r}; this reader knows "
                f"{', '.join(sorted(_KNOWN))}"
            )
        if key == "@data":
            in_data = True
            continue
        if key in header and key != "@problemname":  # UnitTest_TEST.ts names itself twice
            raise DataError(f"{source}:{number}: header {key!r} is given twice")
        header.setdefault(key, value.strip())
    if not in_data:
        raise DataError(f"{source}: no @data line; the file is not a complete .ts file")
    dims, length, class_labels = _check_header(header, source)
    series, labels = _parse_rows(rows, dims, length, set(class_labels), source)
    return TsProblem(header.get("@problemname", ""), series, labels, class_labels)


def _flag(header: dict[str, str], key: str, default: bool, source: str) -> bool:
    if key not in header:
        return default
    word = header[key].split()[0].lower() if header[key] else ""
    if word not in _BOOLEANS:
        raise DataError(f"{source}: {key} must be true or false, got {header[key]!r}")
    return _BOOLEANS[word]


def _check_header(
    header: dict[str, str], source: str
) -> tuple[int | None, int | None, tuple[str, ...]]:
    """(dimensions or None, series length or None, declared class labels)."""
    if _flag(header, "@timestamps", False, source):
        raise DataError(
            f"{source}: @timeStamps true is not supported; only fixed-step series "
            "(values without time stamps) can be fed to a fixed-shape classifier"
        )
    if _flag(header, "@missing", False, source):
        raise DataError(
            f"{source}: @missing true: the series have missing values; impute them (or take an "
            "archive version without gaps) before training a fixed-shape classifier"
        )
    if not _flag(header, "@equallength", True, source):
        raise DataError(
            f"{source}: @equalLength false: the series have different lengths; pad or resample "
            "them to one length (the archive ships '_eq' versions of some problems)"
        )
    if "@targetlabel" in header and _flag(header, "@targetlabel", False, source):
        raise DataError(f"{source}: @targetlabel true is a regression problem; a class is needed")
    label_words = header.get("@classlabel", "").split()
    if not label_words or label_words[0].lower() != "true" or len(label_words) < 3:
        raise DataError(
            f"{source}: needs '@classLabel true <label> <label> ...' with at least two classes; "
            "the file is unlabelled or not a classification problem"
        )
    class_labels = tuple(label_words[1:])
    if len(set(class_labels)) != len(class_labels):
        raise DataError(f"{source}: @classLabel repeats a label: {' '.join(class_labels)}")
    univariate = _flag(header, "@univariate", True, source)
    dims: int | None = 1 if univariate else None
    if "@dimensions" in header:
        dims_given = _positive_int(header["@dimensions"], "@dimensions", source)
        if univariate and dims_given != 1:
            raise DataError(f"{source}: @univariate true but @dimensions {dims_given}")
        dims = dims_given
    length = None
    if "@serieslength" in header:
        length = _positive_int(header["@serieslength"], "@seriesLength", source)
    return dims, length, class_labels


def _positive_int(text: str, key: str, source: str) -> int:
    try:
        value = int(text.split()[0])
    except (ValueError, IndexError):
        raise DataError(f"{source}: {key} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise DataError(f"{source}: {key} must be a positive integer, got {value}")
    return value


def _parse_rows(
    rows: list[tuple[int, str]],
    dims: int | None,
    length: int | None,
    allowed: set[str],
    source: str,
) -> tuple[np.ndarray, tuple[str, ...]]:
    if not rows:
        raise DataError(f"{source}: @data is followed by no samples")
    samples: list[list[list[float]]] = []
    labels: list[str] = []
    for number, line in rows:
        *parts, label = line.split(":")
        label = label.strip()
        where = f"{source}:{number}"
        if not parts:
            raise DataError(f"{where}: no ':' before a class label; each row is values:label")
        if dims is None:  # multivariate without @dimensions: the first row decides
            dims = len(parts)
        if len(parts) != dims:
            raise DataError(
                f"{where}: {len(parts)} dimension(s), expected {dims}; dimensions are separated "
                "by ':' and the class label comes last"
            )
        if label not in allowed:
            raise DataError(
                f"{where}: class label {label!r} is not declared by @classLabel "
                f"({' '.join(sorted(allowed))})"
            )
        channels = [_values(part, where) for part in parts]
        for channel in channels:
            if length is None:
                length = len(channel)
            if len(channel) != length:
                raise DataError(
                    f"{where}: a series of length {len(channel)}, expected {length}; unequal "
                    "lengths are not supported (pad or resample to one length)"
                )
        samples.append(channels)
        labels.append(label)
    return np.asarray(samples, dtype=np.float64), tuple(labels)


def _values(part: str, where: str) -> list[float]:
    values: list[float] = []
    for word in part.split(","):
        word = word.strip()
        if word == "?" or word.lower() == "nan":
            raise DataError(
                f"{where}: a missing value ({word!r}); impute missing values before loading"
            )
        try:
            value = float(word)
        except ValueError:
            raise DataError(f"{where}: {word!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: value {word!r} is not finite")
        values.append(value)
    return values


def label_order(class_labels: tuple[str, ...]) -> tuple[str, ...]:
    """The declared labels sorted: numerically when every label is a number, else as text.

    Label index k of a loaded data set is the k-th entry, so "1 2" maps to 0, 1 and
    "-1 1" to 0, 1, and "1 10 2" sorts as 1, 2, 10 (not as text).
    """
    try:
        return tuple(sorted(class_labels, key=float))
    except ValueError:
        return tuple(sorted(class_labels))
