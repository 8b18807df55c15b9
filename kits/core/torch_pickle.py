"""Read PyTorch checkpoint files into numpy arrays without importing torch.

Both layouts are supported: the legacy stream (torch < 1.6, e.g. torch 0.3 checkpoints: a few
pickles followed by raw storage bytes) and the zip archive of newer versions. The unpickler is
restricted: it never executes code from the file. It resolves only the torch tensor/storage
rebuild names and ``collections.OrderedDict`` to local stand-ins, and any other global (for
example ``os.system``) raises :class:`CheckpointError` naming it before anything is called.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np

from .errors import CheckpointError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net")


class _StorageType:
    """Stand-in for ``torch.<X>Storage``: only carries the element type."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A flat typed buffer; legacy files fill ``data`` after the object pickle is read."""

    def __init__(self, kind: _StorageType, numel: int, data: np.ndarray | None = None):
        self.kind, self.numel, self.data = kind, int(numel), data

    def view(self, offset: int, size: int) -> "_Storage":
        view = _Storage(self.kind, size)
        view.base, view.offset = self, offset
        return view

    def array(self) -> np.ndarray:
        if self.data is None and hasattr(self, "base"):
            return self.base.array()[self.offset:self.offset + self.numel]
        if self.data is None:
            raise CheckpointError("a tensor refers to storage bytes missing from the file")
        return self.data


class _LazyTensor:
    """What a rebuild call returns; turned into an ndarray once every storage is read."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        if not isinstance(storage, _Storage):
            raise CheckpointError(f"malformed tensor record: storage is {type(storage).__name__}")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def materialise(self) -> np.ndarray:
        flat = self.storage.array()
        if not self.size:
            return flat[self.offset:self.offset + 1].reshape(()).copy()
        extent = self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, flat.dtype)
        if extent > flat.size:
            raise CheckpointError(f"tensor of shape {self.size} reads past its storage ({flat.size} elements)")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.array(view, copy=True, order="C")


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    # requires_grad, backward hooks and metadata do not matter for weights
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
}
_ALLOWED.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})


class _RestrictedUnpickler(pickle.Unpickler):
    """Maps the allowed torch names to local stand-ins and refuses every other global."""

    def __init__(self, fh: BinaryIO, storage_for):
        super().__init__(fh, encoding="latin1")
        self._storage_for = storage_for

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"refusing to load global '{module}.{name}': only torch tensor/storage records and "
                "collections.OrderedDict are allowed in a weight file") from None

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"unsupported persistent record {pid!r:.80}")
        return self._storage_for(*pid[1:])


def _unpickle(fh: BinaryIO, storage_for=None) -> Any:
    def refuse(*_args):
        raise CheckpointError("unexpected storage record in a header pickle")

    try:
        return _RestrictedUnpickler(fh, storage_for or refuse).load()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"corrupt torch pickle: {exc}") from exc


def _decode(raw: bytes, kind: _StorageType, numel: int, big_endian: bool = False) -> np.ndarray:
    if len(raw) < numel * kind.itemsize:
        raise CheckpointError(f"storage truncated: {len(raw)} bytes for {numel} x {kind.name}")
    raw = raw[:numel * kind.itemsize]
    if kind.dtype == "bfloat16":
        # bfloat16 is the upper half of a float32
        bits = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    dtype = np.dtype(kind.dtype).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(kind.dtype).newbyteorder("="))


def _load_legacy(fh: BinaryIO) -> Any:
    if _unpickle(fh) != LEGACY_MAGIC:
        raise CheckpointError("not a torch checkpoint (bad magic number)")
    _unpickle(fh)  # protocol version
    sys_info = _unpickle(fh)
    big_endian = isinstance(sys_info, Mapping) and not sys_info.get("little_endian", True)
    storages: dict[str, _Storage] = {}

    def storage_for(kind, key, _location, numel, view=None):
        root = storages.setdefault(str(key), _Storage(kind, numel))
        if view is None:
            return root
        view_key, offset, size = view
        return storages.setdefault(str(view_key), root.view(int(offset), int(size)))

    obj = _unpickle(fh, storage_for)
    for key in _unpickle(fh):
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointError(f"storage '{key}' listed but never referenced")
        header = fh.read(8)
        if len(header) != 8:
            raise CheckpointError(f"file ends before storage '{key}'")
        count = struct.unpack(">q" if big_endian else "<q", header)[0]
        storage.data = _decode(fh.read(count * storage.kind.itemsize), storage.kind, count, big_endian)
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError(f"{path}: zip file without data.pkl is not a torch checkpoint")
        prefix = pkl[: -len("data.pkl")]
        order = prefix + "byteorder"
        big_endian = order in names and archive.read(order).strip() == b"big"
        storages: dict[str, _Storage] = {}

        def storage_for(kind, key, _location, numel, *_rest):
            key = str(key)
            if key not in storages:
                raw = archive.read(f"{prefix}data/{key}")
                storages[key] = _Storage(kind, numel, _decode(raw, kind, int(numel), big_endian))
            return storages[key]

        return _unpickle(io.BytesIO(archive.read(pkl)), storage_for)


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, Mapping):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _flatten(obj: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, np.ndarray):
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
    return out


def load_torch_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Read a torch ``.pth``/``.pt`` file (legacy or zip) into ``{name: ndarray}``.

    This never executes code from the file: only tensor records are rebuilt, with numpy. A
    checkpoint that wraps its weights (``{'state_dict': {...}, 'epoch': ...}``) is unwrapped;
    nested dicts are flattened with dotted names and non-tensor entries are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"torch weight file not found: {path}")
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as fh:
            obj = _load_legacy(fh)
    obj = _materialise(obj)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    for key in _CONTAINER_KEYS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    return _flatten(obj)
