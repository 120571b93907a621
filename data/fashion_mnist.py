"""Find, verify and parse the four original Fashion-MNIST IDX files.

Search order for the directory: an explicit argument (``--data-dir``), ``$FASHION_MNIST_DIR``,
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package), and last a
torchvision download into ``~/.cache/fashion-mnist`` where the network allows.

Each file may be gzipped (``.gz``) or plain. Verification uses the MD5 of the *decompressed*
bytes: those are the original files' checksums and do not change when a distribution
recompresses the archives (Debian's ``.gz`` files differ byte-wise from Zalando's).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_VAR = "FASHION_MNIST_DIR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path.home() / ".cache" / "fashion-mnist"
INSTALL_HINT = (
    "install it with `apt-get install dataset-fashion-mnist`, or point --data-dir / "
    f"${ENV_VAR} at a directory holding the four IDX files"
)

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# name -> (MD5 of the decompressed file, IDX magic number, expected shape)
FILES = {
    "train-images-idx3-ubyte": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", 2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("9018921c3c673c538a1fc5bad174d6f9", 2049, (60000,)),
    "t10k-images-idx3-ubyte": ("8181f5470baa50b63fa0f6fddb340f0a", 2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("15d484375f8d13e6eb1aabb0c3f46965", 2049, (10000,)),
}


class DataError(Exception):
    """A missing, truncated or corrupt dataset file; the message is one line for the user."""


@dataclass(frozen=True)
class RawFashionMNIST:
    """The verified original data as uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: Path


def _file_in(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _complete(directory: Path) -> bool:
    return all(_file_in(directory, name) is not None for name in FILES)


def _download(root: Path) -> Path | None:
    """Last resort for users with internet: torchvision fetches the files into ``root``."""
    try:
        import torchvision  # lazy: only this fallback needs it

        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
    except Exception:  # any failure means "no network"; we report where we looked
        return None
    raw = root / "FashionMNIST" / "raw"
    return raw if _complete(raw) else None


def locate_data_dir(explicit: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return the first directory holding all four files, or raise ``DataError`` saying where
    we looked. An explicit directory is authoritative: if it is given and incomplete, we do not
    silently fall back to another copy."""
    if explicit is not None:
        directory = Path(explicit)
        if directory.exists() and not directory.is_dir():
            raise DataError(
                f"data directory {directory} is a file, not a directory; {INSTALL_HINT}"
            )
        if not directory.is_dir():
            raise DataError(f"data directory {directory} does not exist; {INSTALL_HINT}")
        missing = [name for name in FILES if _file_in(directory, name) is None]
        if missing:
            raise DataError(f"{directory / missing[0]}[.gz] is missing; {INSTALL_HINT}")
        return directory
    looked = []
    candidates = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    candidates += [SYSTEM_DIR, CACHE_DIR / "FashionMNIST" / "raw"]
    for directory in candidates:
        looked.append(str(directory))
        if _complete(directory):
            return directory
    if download:
        looked.append("torchvision download")
        downloaded = _download(CACHE_DIR)
        if downloaded is not None:
            return downloaded
    raise DataError(f"Fashion-MNIST not found (looked in: {', '.join(looked)}); {INSTALL_HINT}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: cannot be read ({exc}); the file is truncated or corrupt"
        ) from None


def _parse_idx(path: Path, name: str, blob: bytes) -> torch.Tensor:
    md5, magic, shape = FILES[name]
    header = 4 + 4 * len(shape)
    expected_size = header + math.prod(shape)
    if len(blob) != expected_size:
        raise DataError(
            f"{path}: {len(blob)} bytes, expected {expected_size} (truncated or wrong file)"
        )
    found_magic = int.from_bytes(blob[:4], "big")
    dims = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(shape)))
    if found_magic != magic or dims != shape:
        raise DataError(f"{path}: IDX header {found_magic=} {dims=}, expected {magic} {shape}")
    if hashlib.md5(blob).hexdigest() != md5:
        raise DataError(f"{path}: MD5 of the content does not match the original file (corrupt)")
    return torch.frombuffer(bytearray(blob[header:]), dtype=torch.uint8).reshape(shape)


def read_raw(directory: Path) -> RawFashionMNIST:
    """Read and verify the four files of ``directory`` (sizes, IDX headers, MD5, label range),
    once per process: gunzip and MD5 of 55 MB take seconds, and a process that runs several
    studies (tests, notebooks) asks again. A file whose size or modification time changed is
    read again. The tensors are shared: callers index them (a copy), never write to them."""
    stamp = []
    for name in FILES:
        path = _file_in(directory, name)
        if path is None:
            raise DataError(f"{directory / name}[.gz] is missing; {INSTALL_HINT}")
        info = path.stat()
        stamp.append((str(path.resolve()), info.st_size, info.st_mtime_ns))
    return _read_verified(Path(directory), tuple(stamp))


@functools.lru_cache(maxsize=2)
def _read_verified(directory: Path, stamp: tuple) -> RawFashionMNIST:
    tensors = {}
    for name in FILES:
        path = _file_in(directory, name)
        if path is None:
            raise DataError(f"{directory / name}[.gz] is missing; {INSTALL_HINT}")
        tensors[name] = _parse_idx(path, name, _read_bytes(path))
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        if int(tensors[name].max()) > 9:  # unreachable with a matching MD5; kept for clarity
            raise DataError(f"{directory / name}: labels outside 0-9")
    return RawFashionMNIST(
        train_images=tensors["train-images-idx3-ubyte"],
        train_labels=tensors["train-labels-idx1-ubyte"].long(),
        test_images=tensors["t10k-images-idx3-ubyte"],
        test_labels=tensors["t10k-labels-idx1-ubyte"].long(),
        source=directory,
    )
