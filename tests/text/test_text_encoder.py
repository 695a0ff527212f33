"""The two pipeline wrappers against the reference fixtures (tests/fixtures/text), plus loading edge cases."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from pyramid_jax.config import ConfigError
from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.snapshot_conversion import convert_snapshot
from pyramid_jax.text.config import CLIPTextConfig, T5EncoderConfig, text_config_from_dict
from pyramid_jax.text.encoder import load_text_encoder

FAMILIES = {"flux": ("pyramid_flux", "miniflux_tiny"), "sd3": ("pyramid_mmdit", "sd3_tiny")}
ATOL = 1e-5


@pytest.fixture(scope="module")
def cases(fixtures_dir):
    return dict(np.load(fixtures_dir / "text" / "cases.npz"))


@pytest.fixture(scope="module")
def prompts(fixtures_dir):
    return json.loads((fixtures_dir / "text" / "meta.json").read_text())["prompts"]


@pytest.fixture(scope="module")
def encoders(fixtures_dir):
    return {k: load_text_encoder(str(fixtures_dir / "snapshots" / snap), family) for k, (family, snap) in
            FAMILIES.items()}


def _check_outputs(outputs, cases, key, atol=ATOL):
    embeds, mask, pooled = map(np.asarray, outputs)
    np.testing.assert_array_equal(mask, cases[f"{key}/prompt_attention_mask"])
    np.testing.assert_allclose(embeds.astype(np.float32), cases[f"{key}/prompt_embeds"], atol=atol, rtol=0)
    np.testing.assert_allclose(pooled.astype(np.float32), cases[f"{key}/pooled_prompt_embeds"], atol=atol, rtol=0)


@pytest.mark.parametrize("key", FAMILIES)
def test_matches_reference_wrapper(encoders, cases, prompts, key):
    """Token ids, T5 last hidden state, mask and pooled vectors of FluxTextEncoderWithMask/SD3TextEncoderWithMask
    for a short, an empty, an over-long (truncated) and a punctuation-heavy prompt."""
    encoder = encoders[key]
    tokens = encoder.tokenize(prompts)
    clip_keys = ["flux/clip_input_ids"] if key == "flux" else ["sd3/clip_l_input_ids", "sd3/clip_g_input_ids"]
    for ids, clip_key in zip(tokens.clip_ids, clip_keys):
        np.testing.assert_array_equal(ids, cases[clip_key])
    np.testing.assert_array_equal(tokens.t5_ids, cases[f"{key}/t5_input_ids"])
    _check_outputs(encoder(prompts), cases, key)


def test_truncation_and_empty_prompt(encoders, prompts):
    """An over-long prompt keeps 77 CLIP tokens ending in EOS and 128 T5 tokens ending in </s>; "" is BOS+EOS/</s>."""
    encoder = encoders["flux"]
    empty, long = prompts[1], prompts[2]
    tokens = encoder.tokenize([empty, long])
    clip_tok = encoder.clip_tokenizers[0]
    assert tokens.clip_ids[0].shape == (2, 77) and tokens.t5_ids.shape == (2, 128)
    assert list(tokens.clip_ids[0][0, :2]) == [clip_tok.bos_token_id, clip_tok.eos_token_id]
    assert tokens.clip_ids[0][1, -1] == clip_tok.eos_token_id
    assert tokens.t5_mask[0].sum() == 1 and tokens.t5_ids[0, 0] == encoder.t5_tokenizer.eos_token_id
    assert tokens.t5_mask[1].all() and tokens.t5_ids[1, -1] == encoder.t5_tokenizer.eos_token_id
    embeds, mask, pooled = encoder("")  # a bare string is one prompt
    assert embeds.shape == (1, 128, 32) and mask.shape == (1, 128) and pooled.shape == (1, 24)


def test_sharded_equals_single_device(fixtures_dir, encoders, prompts):
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    sharded = load_text_encoder(str(fixtures_dir / "snapshots" / "sd3_tiny"), "pyramid_mmdit", mesh=mesh)
    assert sharded.t5.blocks[0].attention.q.kernel.sharding.spec == P("fsdp", "tensor")
    assert sharded.clips[1].layers[0].mlp.wo.kernel.sharding.spec == P("tensor", "fsdp")
    outputs = sharded(prompts)
    assert outputs[0].sharding.spec[0] == ("data", "fsdp")
    for got, want in zip(outputs, encoders["sd3"](prompts)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=ATOL, rtol=0)


def test_bf16(encoders, fixtures_dir, cases, prompts):
    encoder = load_text_encoder(str(fixtures_dir / "snapshots" / "miniflux_tiny"), "pyramid_flux", jnp.bfloat16)
    assert encoder.t5.blocks[0].ffn.wo.kernel.dtype == jnp.bfloat16
    outputs = encoder(prompts)
    assert outputs[0].dtype == jnp.bfloat16 and outputs[2].dtype == jnp.bfloat16
    _check_outputs(outputs, cases, "flux", atol=0.1)


def test_converted_snapshot(tmp_path, fixtures_dir, cases, prompts):
    """convert_torch_weights' 'text' component: flux has no *_3 folders; the converted snapshot encodes the same."""
    written = convert_snapshot(str(fixtures_dir / "snapshots" / "miniflux_tiny"), str(tmp_path / "conv"), ["text"])
    assert sorted(written) == ["text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"]
    _check_outputs(load_text_encoder(str(tmp_path / "conv"), "pyramid_flux")(prompts), cases, "flux")


def test_missing_tokenizer_folder(tmp_path, fixtures_dir):
    snapshot = fixtures_dir / "snapshots" / "miniflux_tiny"
    for name in ("tokenizer", "text_encoder", "text_encoder_2"):
        os.symlink(snapshot / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no tokenizer_2/ folder"):
        load_text_encoder(str(tmp_path), "pyramid_flux")


def test_wrong_family(tmp_path, fixtures_dir):
    with pytest.raises(ValueError, match="needs a T5EncoderModel .*text_encoder_2; its config.json describes a "
                                         "CLIPTextModelWithProjection"):
        load_text_encoder(str(fixtures_dir / "snapshots" / "sd3_tiny"), "pyramid_flux")
    snapshots = fixtures_dir / "snapshots"
    for name in os.listdir(snapshots / "sd3_tiny"):  # SD3 layout with the miniFLUX CLIP (no projection)
        os.symlink(snapshots / ("miniflux_tiny" if name == "text_encoder" else "sd3_tiny") / name, tmp_path / name)
    with pytest.raises(ValueError, match="needs a CLIPTextModelWithProjection .*describes a CLIPTextModel$"):
        load_text_encoder(str(tmp_path), "pyramid_mmdit")


def test_released_configs_parse():
    """Config keys of the released CLIP-L / T5-XXL folders (transformers 4.x) are known or explicitly ignored."""
    clip = text_config_from_dict({
        "_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu",
        "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072,
        "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model",
        "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.3", "vocab_size": 49408})
    assert clip == CLIPTextConfig()
    t5 = text_config_from_dict({
        "_name_or_path": "google/t5-v1_1-xxl", "architectures": ["T5EncoderModel"], "classifier_dropout": 0.0,
        "d_ff": 10240, "d_kv": 64, "d_model": 4096, "decoder_start_token_id": 0, "dense_act_fn": "gelu_new",
        "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
        "is_encoder_decoder": True, "is_gated_act": True, "layer_norm_epsilon": 1e-06, "model_type": "t5",
        "num_decoder_layers": 24, "num_heads": 64, "num_layers": 24, "output_past": True, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.3", "use_cache": True, "vocab_size": 32128})
    assert t5 == T5EncoderConfig() and t5.gated and t5.activation == "gelu_new"
    with pytest.raises(ConfigError, match="hidden_dropout"):
        text_config_from_dict({"model_type": "t5", "hidden_dropout": 0.1})
    with pytest.raises(ConfigError, match="model_type"):
        text_config_from_dict({"model_type": "bert"})


def test_fp16_t5_keeps_wo_in_fp32(fixtures_dir, cases, prompts):
    """fp16 like transformers: `wo` in float32 (the residual stream follows), overflow clamp before that."""
    encoder = load_text_encoder(str(fixtures_dir / "snapshots" / "miniflux_tiny"), "pyramid_flux", jnp.float16)
    assert encoder.t5.blocks[0].ffn.wo.kernel.dtype == jnp.float32
    outputs = encoder(prompts)
    assert jnp.isfinite(outputs[0]).all()
    _check_outputs(outputs, cases, "flux", atol=0.05)
