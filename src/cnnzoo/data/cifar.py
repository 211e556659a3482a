"""CIFAR-10/100 in the standard "python version" layout, read through a restricted unpickler.

The batch files are pickles, and a pickle can run any code when loaded. torchvision guards the official files with
their md5; a user-supplied CIFAR-format folder has no such guard. ``RestrictedUnpickler`` resolves only the globals
that a real batch needs (numpy's array reconstruction, ``numpy.dtype`` and the ``_codecs.encode`` that protocol-2
pickles use for bytes), checks their arguments, and refuses everything else, so a malicious file raises
:class:`CifarFormatError` before anything of it runs. The loaded dict is then checked against the real layout.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .sources import Data, TensorSource, channel_stats, check_class_names, to_channels

LAYOUTS = {  # folder name, train files, test file, meta file, label key, label-names key
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta",
                "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", "fine_labels", "fine_label_names"),
}


class CifarFormatError(UserError):
    """A CIFAR-format file that is not the real layout (or tries to run code); the message names the file."""


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in a pickle: usable as ``_reconstruct``'s subtype, not callable."""


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") followed by __setstate__ with the real data,
    # which checks the data's length against the shape, so nothing larger than the file is ever allocated
    if subtype is not _NdarrayType or tuple(np.atleast_1d(shape).tolist()) != (0,):
        raise pickle.UnpicklingError("array reconstruction other than numpy's own _reconstruct(ndarray, (0,), ...)")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("array of objects")
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    dtype = np.dtype(str(spec))
    if dtype.hasobject or dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"dtype {spec!r} is not a plain number type")
    return dtype


def _encode(text: Any, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than latin-1 bytes")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # written by numpy 1.x (the official files)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # written by numpy 2.x
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR batch needs; anything else is an ``UnpicklingError``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def read_batch(path: Path) -> dict[str, Any]:
    """One batch file as a dict with str keys; refuses code, non-dicts and odd key types."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CifarFormatError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
        # ndarray.__setstate__ (BUILD opcode) only ever receives plain data from the allowed globals above
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CifarFormatError(f"{path}: not a CIFAR-format batch, refused ({exc})") from None
    if not isinstance(obj, dict) or not all(isinstance(k, (str, bytes)) for k in obj):
        raise CifarFormatError(f"{path}: not a CIFAR-format batch (expected a dict with string keys)")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _images_and_labels(path: Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    batch = read_batch(path)
    images, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        raise CifarFormatError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or len(labels) != len(images) or not all(type(v) is int for v in labels):
        raise CifarFormatError(f"{path}: {label_key!r} must be a list of {len(images)} ints")
    return images, labels


def _class_names(path: Path, names_key: str, count: int) -> tuple[str, ...]:
    """The class names of the meta file, one per label ``0..count - 1``: a list of another length is refused (fewer
    names would leave labels without a class, more would give the network outputs no label ever trains)."""
    if not path.is_file():
        return tuple(str(i) for i in range(count))
    names = read_batch(path).get(names_key)
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise CifarFormatError(f"{path}: {names_key!r} must be a list of strings")
    if len(names) != count:
        raise CifarFormatError(f"{path}: {names_key!r} lists {len(names)} class names; the labels are 0..{count - 1} "
                               f"({count} classes)")
    names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    try:
        return check_class_names(names, f"{path}: {names_key!r}")
    except UserError as exc:
        raise CifarFormatError(str(exc)) from None


def find_root(kind: str, path: str | Path) -> Path:
    """The folder holding the batch files: PATH itself or PATH/cifar-10-batches-py (torchvision's layout)."""
    folder, train_files, *_ = LAYOUTS[kind]
    root = Path(path).expanduser()
    for candidate in (root, root / folder):
        if (candidate / train_files[0]).is_file():
            return candidate
    return root / folder


def load_cifar(kind: str, path: str, *, in_channels: int = 3, download: bool = False) -> Data:
    folder, train_files, test_file, meta_file, label_key, names_key = LAYOUTS[kind]
    root = find_root(kind, path)
    if download and not (root / train_files[0]).is_file():
        _download(kind, Path(path).expanduser())
        root = find_root(kind, path)
    missing = [f for f in [*train_files, test_file] if not (root / f).is_file()]
    if missing:
        raise UserError(f"{kind}:{path}: missing {', '.join(missing)} in {root} (use --download when online)")
    parts = [_images_and_labels(root / f, label_key) for f in train_files]
    test_images, test_labels = _images_and_labels(root / test_file, label_key)
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = [v for p in parts for v in p[1]]
    num_classes = 10 if kind == "cifar10" else 100
    bad = [v for v in train_labels + test_labels if not 0 <= v < num_classes]
    if bad:
        raise CifarFormatError(f"{root}: label {bad[0]} outside 0..{num_classes - 1}")
    classes = _class_names(root / meta_file, names_key, num_classes)

    def tensor(images: np.ndarray) -> torch.Tensor:  # rows are 1024 R, 1024 G, 1024 B values of a 32x32 image
        return to_channels(torch.from_numpy(images.copy()).view(-1, 3, 32, 32), in_channels)

    train = TensorSource(tensor(train_images), torch.tensor(train_labels))
    mean, std = channel_stats(train.images)
    val = TensorSource(tensor(test_images), torch.tensor(test_labels))
    return Data(f"{kind}:{path}", classes, train, val, in_channels, mean, std)


def _download(kind: str, root: Path) -> None:
    """torchvision's downloader (md5-checked archive); only the download is used, never its unpickling."""
    from torchvision.datasets import CIFAR10, CIFAR100
    from torchvision.datasets.utils import download_and_extract_archive

    cls = CIFAR10 if kind == "cifar10" else CIFAR100
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
    except Exception as exc:  # offline, proxy, disk full
        raise UserError(f"{kind}: download to {root} failed ({type(exc).__name__}: {exc})") from None
