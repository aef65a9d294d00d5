"""Small learnable datasets written in the real on-disk formats (IDX, CIFAR-10 python batches)."""
import gzip
import pickle

import numpy as np


def images(n, K, shape, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    rng.shuffle(labels)
    protos = rng.integers(0, 256, size=(K, *shape))
    noise = rng.integers(-40, 41, size=(n, *shape))
    return np.clip(protos[labels] + noise, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def write_fashion(folder, n_train=600, n_test=200, K=10, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = images(n, K, (28, 28), seed)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


def write_cifar(folder, per_batch=60, K=10):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x, y = images(per_batch, K, (3, 32, 32), 10 + i)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": x.reshape(per_batch, -1), b"labels": y.tolist()}, fh)
    return folder
