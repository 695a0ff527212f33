"""Reading what `torch.save` wrote (its zip format), without torch and without running arbitrary pickled code.

The archive holds `<name>/data.pkl`, a pickle whose tensors refer to raw storages `<name>/data/<key>`. The pickle
is read with an unpickler that knows only tensors, their storages and OrderedDict (plus plain containers and
scalars, which need no globals); anything else is refused with a `TorchFileError`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import pickle
import zipfile

import ml_dtypes
import numpy as np

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchFileError(ValueError):
    """Not a torch zip file, or one holding something this reader does not load."""


@dataclasses.dataclass(frozen=True)
class StoredTensor:
    """A tensor of the file, not yet read: a strided view (in elements) of storage `key`."""

    key: str
    dtype: np.dtype
    numel: int  # elements in the storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: StoredTensor, offset, shape, stride, requires_grad=False, hooks=None, *metadata):
    return dataclasses.replace(storage, offset=int(offset), shape=tuple(shape), stride=tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return np.dtype(STORAGE_DTYPES[name])
        raise TorchFileError(f"refusing to load `{module}.{name}`: only tensors ({', '.join(STORAGE_DTYPES)}) "
                             "in dicts, lists and tuples are read from torch files")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], np.dtype)):
            raise TorchFileError(f"unknown persistent id {pid!r} (only tensor storages are read)")
        _, dtype, key, _, numel = pid
        return StoredTensor(str(key), dtype, int(numel), 0, (int(numel),), (1,))


def _read_array(archive: zipfile.ZipFile, prefix: str, tensor: StoredTensor) -> np.ndarray:
    data, itemsize = archive.read(f"{prefix}data/{tensor.key}"), tensor.dtype.itemsize
    if len(data) < tensor.numel * itemsize:
        raise TorchFileError(f"storage {tensor.key} holds {len(data)} bytes, {tensor.numel} x {tensor.dtype} expected")
    storage = np.frombuffer(data, tensor.dtype, count=tensor.numel)
    if math.prod(tensor.shape) == 0:
        return np.zeros(tensor.shape, tensor.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if tensor.offset < 0 or min(tensor.stride, default=0) < 0 or last >= tensor.numel:
        raise TorchFileError(f"tensor {tensor.shape} with strides {tensor.stride} at offset {tensor.offset} "
                             f"does not fit storage {tensor.key} of {tensor.numel} elements")
    view = np.lib.stride_tricks.as_strided(storage[tensor.offset:], tensor.shape,
                                           [s * itemsize for s in tensor.stride], writeable=False)
    return np.array(view)


def _map_tensors(obj, fn):
    if isinstance(obj, StoredTensor):
        return fn(obj)
    if isinstance(obj, dict):
        return type(obj)((k, _map_tensors(v, fn)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


class TorchFile:
    """An open `torch.save` file: `obj` is its object with each tensor as a `StoredTensor` (only the pickle is
    read); `read` reads one tensor's data. Use as a context manager, or `close()`."""

    def __init__(self, path: str):
        try:
            self._archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise TorchFileError(f"{path}: not a torch zip file (the legacy pre-1.6 `torch.save` format is not "
                                 "read)") from None
        names = self._archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            self.close()
            raise TorchFileError(f"{path}: a torch zip file has one `<name>/data.pkl`, found {pickles}")
        self._prefix = pickles[0][:-len("data.pkl")]
        self._little = (f"{self._prefix}byteorder" not in names
                        or self._archive.read(f"{self._prefix}byteorder").strip() == b"little")
        with self._archive.open(pickles[0]) as f:
            try:
                self.obj = _Unpickler(f).load()
            except pickle.UnpicklingError as e:
                self.close()
                raise TorchFileError(f"{path}: broken pickle ({e})") from None

    def read(self, tensor: StoredTensor) -> np.ndarray:
        if not self._little:
            raise TorchFileError("only little-endian torch files are read")
        return _read_array(self._archive, self._prefix, tensor)

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> "TorchFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_torch_file(path: str, arrays: bool = True):
    """The object `torch.save` wrote to `path`, each tensor as a numpy array (same shape and dtype, bfloat16 as
    `ml_dtypes.bfloat16`); with `arrays=False` as a `StoredTensor` (shape and dtype), reading only the pickle."""
    with TorchFile(path) as f:
        return _map_tensors(f.obj, f.read) if arrays else f.obj
