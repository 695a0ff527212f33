"""Read torch checkpoints tensor by tensor: `.safetensors` (single or sharded) and, when opted in, pickled `.bin`."""

from __future__ import annotations

import glob
import json
import os
from typing import Protocol

import ml_dtypes
import numpy as np

from pyramid_jax.convert.torch_file import StoredTensor, TorchFile, TorchFileError

SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64",
                      "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


class TensorSource(Protocol):
    """A torch state dict that is read one tensor at a time."""

    def shapes(self) -> dict[str, tuple[int, ...]]: ...

    def read(self, key: str) -> np.ndarray: ...


class SafetensorsSource:
    """One or more `.safetensors` files (sharded checkpoints list several); tensors are memory-mapped one at a time.

    The header is parsed here because numpy has no bfloat16: bf16 tensors come back as `ml_dtypes.bfloat16`.
    """

    def __init__(self, files: list[str]):
        self._index: dict[str, tuple[str, int, str, tuple[int, ...]]] = {}
        for path in files:
            header_len, header = _read_header(path)
            size = os.path.getsize(path)
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                if key in self._index:
                    raise ValueError(f"tensor {key!r} appears in both {self._index[key][0]} and {path}")
                start, end, dtype, shape = _entry(path, key, info)
                if 8 + header_len + end > size:
                    raise ValueError(f"{path} is truncated: tensor {key!r} ends at byte {8 + header_len + end}, the "
                                     f"file has {size}")
                self._index[key] = (path, 8 + header_len + start, dtype, shape)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v[3] for k, v in self._index.items()}

    def read(self, key: str) -> np.ndarray:
        path, offset, dtype, shape = self._index[key]
        dtype = ml_dtypes.bfloat16 if dtype == "BF16" else np.dtype(SAFETENSORS_DTYPES[dtype])
        if not shape or 0 in shape:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _read_header(path: str) -> tuple[int, dict]:
    """(header length, parsed JSON header) of a safetensors file, or a ValueError naming the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if size < 8 or header_len > size - 8:
            raise ValueError(f"{path} is not a safetensors file, or is truncated: its header would be {header_len} "
                             f"bytes, the file has {size}")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"{path} is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: its header is not a JSON object")
    return header_len, header


def _entry(path: str, key: str, info) -> tuple[int, int, str, tuple[int, ...]]:
    """(start, end, dtype, shape) of a header entry, each checked: a malformed header fails naming the tensor."""
    try:
        (start, end), dtype, shape = info["data_offsets"], info["dtype"], tuple(int(d) for d in info["shape"])
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{path}: malformed header entry for tensor {key!r}: {info!r}") from None
    if dtype != "BF16" and dtype not in SAFETENSORS_DTYPES:
        raise ValueError(f"{path}: tensor {key!r} has unknown dtype {dtype!r}")
    itemsize = 2 if dtype == "BF16" else np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
    if min(shape, default=0) < 0 or end - start != itemsize * int(np.prod(shape)) or start < 0:
        raise ValueError(f"{path}: tensor {key!r} {dtype} {list(shape)} does not fit its byte range {start}..{end}")
    return start, end, dtype, shape


class TorchBinSource:
    """Pickled torch `.bin` state dicts, read without torch by the restricted unpickler of `torch_file.py` (it loads
    tensors and nothing else); tensors are read one at a time."""

    def __init__(self, files: list[str]):
        self._index: dict[str, tuple[TorchFile, StoredTensor]] = {}
        for path in files:
            file = TorchFile(path)
            if not isinstance(file.obj, dict) or not all(isinstance(t, StoredTensor) for t in file.obj.values()):
                raise TorchFileError(f"{path} is not a state dict (a dict of tensors)")
            for key, tensor in file.obj.items():
                if key in self._index:
                    raise ValueError(f"tensor {key!r} appears in more than one of {files}")
                self._index[key] = (file, tensor)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: t.shape for k, (_, t) in self._index.items()}

    def read(self, key: str) -> np.ndarray:
        file, tensor = self._index[key]
        return file.read(tensor)


def weight_files(folder: str, *, allow_pickle: bool = False) -> tuple[str, list[str]]:
    """("safetensors" or "bin", the files) of a model folder: safetensors first, pickled `.bin` only if allowed."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    safetensors = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if safetensors:
        return "safetensors", safetensors
    bins = sorted(glob.glob(os.path.join(folder, "*.bin")))
    if bins:
        if not allow_pickle:
            raise ValueError(f"{folder} holds only pickled .bin weights ({os.path.basename(bins[0])}); pass "
                             "allow_pickle=True (CLI: --allow-pickle) to read them (tensors only, no code is run)")
        return "bin", bins
    raise FileNotFoundError(f"no .safetensors or .bin weights in {folder}")


def open_torch_checkpoint(folder: str, *, allow_pickle: bool = False) -> TensorSource:
    """The weights of a diffusers/transformers model folder: safetensors first, pickled `.bin` only if allowed."""
    kind, files = weight_files(folder, allow_pickle=allow_pickle)
    return SafetensorsSource(files) if kind == "safetensors" else TorchBinSource(files)
