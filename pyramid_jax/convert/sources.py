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
            with open(path, "rb") as f:
                header_len = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(header_len))
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                if key in self._index:
                    raise ValueError(f"tensor {key!r} appears in both {self._index[key][0]} and {path}")
                start, _ = info["data_offsets"]
                self._index[key] = (path, 8 + header_len + start, info["dtype"], tuple(info["shape"]))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v[3] for k, v in self._index.items()}

    def read(self, key: str) -> np.ndarray:
        path, offset, dtype, shape = self._index[key]
        dtype = ml_dtypes.bfloat16 if dtype == "BF16" else np.dtype(SAFETENSORS_DTYPES[dtype])
        if not shape or 0 in shape:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


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


def open_torch_checkpoint(folder: str, *, allow_pickle: bool = False) -> TensorSource:
    """The weights of a diffusers/transformers model folder: safetensors first, pickled `.bin` only if allowed."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    safetensors = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if safetensors:
        return SafetensorsSource(safetensors)
    bins = sorted(glob.glob(os.path.join(folder, "*.bin")))
    if bins:
        if not allow_pickle:
            raise ValueError(f"{folder} holds only pickled .bin weights ({os.path.basename(bins[0])}); pass "
                             "allow_pickle=True (CLI: --allow-pickle) to read them (tensors only, no code is run)")
        return TorchBinSource(bins)
    raise FileNotFoundError(f"no .safetensors or .bin weights in {folder}")
