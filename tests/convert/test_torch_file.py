"""The torch-free reader of `torch.save` files: every tensor dtype the reference writes, views, and refusals."""

import collections
import os
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from pyramid_jax.convert.torch_file import StoredTensor, TorchFileError, read_torch_file


class Mkdir:
    """Pickles as a call of `os.mkdir`: loading it with `torch.load(weights_only=False)` creates `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_reads_tensors_of_every_dtype_and_layout(tmp_path):
    base = torch.randn(3, 5)
    saved = collections.OrderedDict(
        bf16=torch.randn(1, 4, 2, 3, 3).bfloat16(), fp16=torch.randn(2, 3).half(), fp32=torch.randn(2, 2),
        int64=torch.arange(6).reshape(1, 6), int32=torch.arange(4, dtype=torch.int32), flag=torch.tensor([True, False]),
        transposed=base.t(), sliced=base[1:, 2:4], empty=torch.zeros(0, 3),
        nested=[1.5, "text", (torch.ones(2),)])
    path = str(tmp_path / "features.pt")
    torch.save(saved, path)

    loaded = read_torch_file(path)
    assert type(loaded) is collections.OrderedDict and list(loaded) == list(saved)
    assert loaded["bf16"].dtype == ml_dtypes.bfloat16 and loaded["fp16"].dtype == np.float16
    assert loaded["int64"].dtype == np.int64 and loaded["int32"].dtype == np.int32 and loaded["flag"].dtype == bool
    for name, tensor in saved.items():
        if isinstance(tensor, torch.Tensor):
            np.testing.assert_array_equal(loaded[name].astype(np.float32), tensor.float().numpy(), err_msg=name)
    assert loaded["nested"][:2] == [1.5, "text"] and loaded["nested"][2][0].tolist() == [1.0, 1.0]

    header = read_torch_file(path, arrays=False)["sliced"]
    assert isinstance(header, StoredTensor) and header.shape == (2, 2) and header.dtype == np.float32


def test_refuses_other_pickled_objects(tmp_path):
    for name, obj in {"counter": collections.Counter("ab"), "mkdir": Mkdir(str(tmp_path / "pwned"))}.items():
        path = str(tmp_path / f"{name}.pt")
        torch.save({"x": torch.ones(1), "y": obj}, path)
        with pytest.raises(TorchFileError, match="refusing to load `(collections.Counter|posix.mkdir)`"):
            read_torch_file(path)
    assert not (tmp_path / "pwned").exists()

    legacy = str(tmp_path / "legacy.pt")
    torch.save(torch.ones(2), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(TorchFileError, match="legacy"):
        read_torch_file(legacy)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("a/b/data.pkl", b"")
    with pytest.raises(TorchFileError, match="one `<name>/data.pkl`"):
        read_torch_file(str(tmp_path / "other.zip"))
