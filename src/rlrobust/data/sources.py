"""Where each data set comes from: canonical URLs, file names and md5 sums.

The md5 sums are the ones torchvision checks for the same files, so a folder prepared by
torchvision (or copied from any canonical mirror) is accepted byte for byte. The MNIST and
Fashion-MNIST sums were checked against real copies of the files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its name on disk, its md5, and the mirrors to try in order."""

    filename: str
    md5: str
    mirrors: tuple[str, ...]  # base URLs ending in "/"; the file name is appended

    def urls(self) -> list[str]:
        return [mirror + self.filename for mirror in self.mirrors]


# The S3 mirror is the one torchvision tries first; yann.lecun.com is the original home.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
CIFAR_MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)

# IDX files: split -> (images file, labels file).
IDX_SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

MNIST_FILES: dict[str, RemoteFile] = {
    name: RemoteFile(name, md5, MNIST_MIRRORS) for name, md5 in MNIST_MD5.items()
}
FASHION_MNIST_FILES: dict[str, RemoteFile] = {
    name: RemoteFile(name, md5, FASHION_MNIST_MIRRORS) for name, md5 in FASHION_MNIST_MD5.items()
}

# CIFAR ships as one tarball per data set; the batch files inside are checked as well.
CIFAR10_TARBALL = RemoteFile(
    "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", CIFAR_MIRRORS
)
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

CIFAR100_TARBALL = RemoteFile(
    "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", CIFAR_MIRRORS
)
CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_SPLIT_FILES: dict[str, tuple[str, ...]] = {"train": ("train",), "test": ("test",)}
CIFAR100_MD5: dict[str, str] = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}

# UCR/UEA time-series archive: one zip per problem holding <Name>_TRAIN.ts / _TEST.ts (plus
# .arff and .txt copies that are not used here). aeon's own loader downloads from this folder.
UCR_MIRRORS: tuple[str, ...] = ("https://www.timeseriesclassification.com/aeon-toolkit/",)


@dataclass(frozen=True)
class UCRArchive:
    """One problem's zip in the UCR archive.

    ``sha256`` is the archive's published digest, or None where none could be verified: those
    archives are recorded on first download and verified on every later load
    (``download.record_or_verify``).
    """

    problem: str
    sha256: str | None
    mirrors: tuple[str, ...] = UCR_MIRRORS

    @property
    def filename(self) -> str:
        return f"{self.problem}.zip"

    def urls(self) -> list[str]:
        return [mirror + self.filename for mirror in self.mirrors]


# ECG200.zip: the same sha256 is pinned by two independent public projects that download this
# URL and check it (a UCR loader that refuses a mismatch, and a validation report listing the
# archive digests of the runs it made). No md5 of these archives could be verified, and none is
# invented here.
ECG200_ARCHIVE = UCRArchive(
    "ECG200", "755937ea37849346ea20033666b19d17345bb039971e8fa33458b16b62c09380"
)
# ECG5000.zip: no published checksum could be verified; recorded on first download.
ECG5000_ARCHIVE = UCRArchive("ECG5000", None)
