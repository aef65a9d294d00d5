"""Datasets as in-memory tensors, and the paper's imbalanced subsets (SPEC §4-5).

FashionMNIST comes from IDX files (Debian's ``dataset-fashion-mnist`` or any folder), CIFAR-10
from its standard python pickle batches in a folder the user names. Nothing is ever downloaded.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..imbalance import minority_count

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_HELP = ("install Debian's package (as root: apt-get install dataset-fashion-mnist, files in "
                f"{FASHION_MNIST_DIR}) or pass a folder holding train-images-idx3-ubyte[.gz], "
                "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
CIFAR_HELP = ("pass the folder of CIFAR-10's python version (cifar-10-batches-py: data_batch_1..5 and "
              "test_batch); it cannot be downloaded on this machine")
STATS = {"fashion-mnist": ((0.2860,), (0.3530,)),
         "cifar10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))}
MAJORITY_SIZE = {"fashion-mnist": 6000, "cifar10": 5000}
NUM_CLASSES = 10  # both datasets
DATASETS = tuple(STATS)


class DataError(ValueError):
    """A dataset that is missing, truncated or malformed; the message says how to get it right."""


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): unsigned-byte images (magic 2051) or labels (2049)."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc} (corrupt or truncated gzip)") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw) - header} data bytes but its header {dims} announces "
                        f"{expected - header}: the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"FashionMNIST file {stem}[.gz] not found in {root}: {FASHION_HELP}")


@dataclass
class Dataset:
    """Images (uint8, N x C x H x W) and labels (int64) of the train and test splits."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    num_classes: int = NUM_CLASSES


def check_labels(labels: np.ndarray, path, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Labels as int64, refusing any outside 0..num_classes-1 (naming the first such label and its file)."""
    labels = np.asarray(labels).astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataError(f"{path}: label {int(labels[bad[0]])} at position {int(bad[0])} is outside 0..{num_classes - 1} "
                        f"({bad.size} such labels): the file is corrupt or not this dataset")
    return labels


def load_fashion_mnist(root=None) -> Dataset:
    root = Path(root) if root else FASHION_MNIST_DIR
    if not root.is_dir():
        raise DataError(f"FashionMNIST folder {root} does not exist: {FASHION_HELP}")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        label_path = _find(root, f"{prefix}-labels-idx1-ubyte")
        y = read_idx(label_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"FashionMNIST {split} split in {root}: images {x.shape} and labels {y.shape} do not match")
        parts[split] = (x[:, None], check_labels(y, label_path))
    return Dataset("fashion-mnist", *parts["train"], *parts["test"])


class BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 python batch holds (dicts, lists, bytes, numbers, numpy uint8
    arrays): a crafted batch that names any other callable is refused instead of run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds no such object")
        return super().find_class(module, name)


def _cifar_batch(path: Path):
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch {path.name} not found in {path.parent}: {CIFAR_HELP}")
    try:
        d = BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = check_labels(d[b"labels"], path)
    except DataError:
        raise
    except Exception as exc:  # any unpickling or shape failure means a bad batch file
        raise DataError(f"CIFAR-10 batch {path} is corrupt or not a CIFAR-10 python batch: {exc}") from None
    if len(x) != len(y):
        raise DataError(f"CIFAR-10 batch {path}: {len(x)} images but {len(y)} labels")
    return x, y


def load_cifar10(root) -> Dataset:
    if root is None:
        raise DataError(f"CIFAR-10 needs a folder: {CIFAR_HELP}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CIFAR-10 folder {root} does not exist: {CIFAR_HELP}")
    train = [_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    tx, ty = _cifar_batch(root / "test_batch")
    return Dataset("cifar10", np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train]), tx, ty)


def load_dataset(name: str, root=None) -> Dataset:
    if name == "fashion-mnist":
        return load_fashion_mnist(root)
    if name == "cifar10":
        return load_cifar10(root)
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


def to_tensor(images: np.ndarray, dataset: str):
    """uint8 images -> normalised float32 N x C x 32 x 32 (FashionMNIST resized 28 -> 32 bilinearly)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(images, copy=True)).float().div_(255.0)
    if x.shape[-1] != 32:
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in STATS[dataset])
    return (x - mean) / std


def step_subset(labels: np.ndarray, KA: int, R: float, nA: int, seed: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Indices of the paper's step-imbalanced subset: a seeded shuffle, then the first n_A examples
    of classes 0..K_A-1 and the first n_B = n_A // R of the others (R = inf: none)."""
    K = num_classes
    if not (isinstance(KA, int) and 1 <= KA <= K):
        raise ValueError(f"KA must be an integer in 1..{K}, got {KA!r}")
    if not (R >= 1):
        raise ValueError(f"R must be >= 1 (or inf for no minority examples), got {R!r}")
    nB = minority_count(nA, R)
    return _first_of_each(labels, [nA if k < KA else nB for k in range(K)], seed)


def long_tailed_subset(labels: np.ndarray, n_max: int, ratio: float, seed: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Exponential imbalance n_k = floor(n_max * ratio^(-k/(K-1))), same seeded selection."""
    K = num_classes
    wanted = [int(n_max * ratio ** (-k / (K - 1))) for k in range(K)]
    if min(wanted) < 1:
        raise ValueError(f"long-tailed counts floor({n_max} * {ratio:g}^(-k/{K - 1})) reach 0 for the last classes "
                         f"(n_min = {min(wanted)}): use a ratio of at most {n_max} or a larger n_max")
    return _first_of_each(labels, wanted, seed)


def _first_of_each(labels, wanted, seed) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(len(labels))
    picked = []
    for k, n in enumerate(wanted):
        of_k = order[labels[order] == k]
        if n > len(of_k):
            raise ValueError(f"class {k} has {len(of_k)} examples, fewer than the {n} asked for")
        picked.append(of_k[:n])
    return np.sort(np.concatenate(picked))


def stratified_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """A fixed, class-stratified part of a test set: the first ``per_class`` of each class in a
    seeded shuffle (all of a class that has fewer)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.sort(np.concatenate([order[labels[order] == k][:per_class] for k in np.unique(labels)]))


def oversample(indices: np.ndarray, labels: np.ndarray, minority, wr: int) -> np.ndarray:
    """Repeat every minority example ``wr`` times (SPEC §2.7)."""
    if not (isinstance(wr, int) and wr >= 1):
        raise ValueError(f"the oversampling factor w_r must be an integer >= 1, got {wr!r}")
    is_min = np.isin(labels[indices], list(minority))
    return np.sort(np.concatenate([indices[~is_min]] + [indices[is_min]] * wr))
