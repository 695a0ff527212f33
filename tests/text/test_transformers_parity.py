"""Our CLIP and T5 against transformers' torch models built from random tiny configs (fp32, tight tolerance).

Each model is saved with `save_pretrained` (also as bf16/fp16 and as index-json shards) and read back with our
loader, so the conversion tables and the checkpoint reader are tested together with the forward pass.
"""

import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pyramid_jax.text.load import load_text_model  # noqa: E402
from pyramid_jax.text.t5 import relative_position_buckets  # noqa: E402

ATOL = 1e-5


def _randomize(model, seed: int, std: float = 0.3):
    """Every weight random (norm scales around 1), so no parameter can be silently skipped or transposed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1 + 0.1 * noise if "norm" in name and name.endswith("weight") else std * noise)
    return model.eval()


def _save(model, path, dtype=torch.float32, **kw) -> str:
    model.to(dtype).save_pretrained(path, **kw)
    model.float()  # the reference then runs on exactly the (possibly rounded) saved weights
    return str(path)


def _ids(batch: int, length: int, vocab: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, vocab, (batch, length))


def test_clip_text_model_legacy_eos(tmp_path):
    """CLIPTextModel, quick_gelu, eos_token_id == 2: pooled at the largest id; shorter than max positions."""
    config = transformers.CLIPTextConfig(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                         num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                                         eos_token_id=2)
    ref = _randomize(transformers.CLIPTextModel(config), 0)
    path = _save(ref, tmp_path / "clip", torch.float16)  # an fp16 source, computed in fp32
    ids = _ids(3, 12, 99, 0)
    ids[1, 5] = 98  # a unique max mid-sequence

    out = load_text_model(path)(jnp.asarray(ids))
    with torch.no_grad():
        expected = ref(torch.from_numpy(ids))
    np.testing.assert_allclose(out.last_hidden_state, expected.last_hidden_state.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.pooler_output, expected.pooler_output.numpy(), atol=ATOL, rtol=0)
    assert out.text_embeds is None


def test_clip_with_projection_first_eos(tmp_path):
    """CLIPTextModelWithProjection, exact gelu, a real eos_token_id: pooled at its first occurrence."""
    config = transformers.CLIPTextConfig(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=3,
                                         num_attention_heads=2, projection_dim=24, max_position_embeddings=10,
                                         hidden_act="gelu", eos_token_id=7)
    ref = _randomize(transformers.CLIPTextModelWithProjection(config), 1)
    path = _save(ref, tmp_path / "clip")
    ids = _ids(3, 10, 99, 1)
    ids[ids == 7] = 8
    ids[0, 4:] = 7  # eos used as padding: the first one counts
    ids[1, 2], ids[1, 6] = 7, 7
    ids[2, 9] = 7

    out = load_text_model(path)(jnp.asarray(ids))
    with torch.no_grad():
        expected = ref(torch.from_numpy(ids))
    np.testing.assert_allclose(out.last_hidden_state, expected.last_hidden_state.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.text_embeds, expected.text_embeds.numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("ffn,dtype,shards", [("gated-gelu", torch.bfloat16, "2KB"), ("relu", torch.float32, None)])
def test_t5_encoder(tmp_path, ffn, dtype, shards):
    """T5EncoderModel with padding; gated-gelu from a bf16 index-json sharded source, relu from one fp32 file."""
    config = transformers.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=40, num_layers=3, num_heads=4,
                                   relative_attention_num_buckets=8, relative_attention_max_distance=12,
                                   feed_forward_proj=ffn, dropout_rate=0.0)
    ref = _randomize(transformers.T5EncoderModel(config), 2, std=0.15)  # T5 logits are unscaled: keep them O(1)
    path = _save(ref, tmp_path / "t5", dtype, **({"max_shard_size": shards} if shards else {}))
    if shards:
        index = json.loads((tmp_path / "t5" / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 1
    ids = _ids(3, 20, 64, 2)
    mask = np.ones_like(ids)
    mask[0, 7:] = 0
    mask[1, 1:] = 0
    ids[mask == 0] = 0

    out = load_text_model(path)(jnp.asarray(ids), jnp.asarray(mask))
    with torch.no_grad():
        expected = ref(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    np.testing.assert_allclose(out, expected.numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 12)])
def test_relative_position_buckets_match_transformers(num_buckets, max_distance):
    length = 300
    relative = torch.arange(length)[None, :] - torch.arange(length)[:, None]
    expected = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        relative, bidirectional=True, num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(relative_position_buckets(length, num_buckets, max_distance), expected.numpy())
