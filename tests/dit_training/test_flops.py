"""The analytic DiT FLOP count: a hand count for the tiny miniFLUX, and every matmul of both families' traced
forward (the jaxpr's dot_general and conv ops, counted independently of the formula)."""

import math

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import pyramid_jax
from pyramid_jax.dit.config import MMDiTConfig
from pyramid_jax.dit.load import dit_family
from pyramid_jax.dit_training.flops import dit_forward_flops, train_step_flops

from conftest import FIXTURES

TINY_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"
# AR-style call: three history clips at 1/4, 1/2, full resolution, then the current clip; and an image column
SAMPLE = [[(2, 2, 2, 2, 4), (2, 1, 4, 4, 4), (2, 1, 8, 8, 4), (2, 1, 8, 8, 4)], [(2, 1, 4, 4, 4)]]


def test_hand_count_for_the_tiny_miniflux():
    """D = 64, text 8 tokens of 32, pooled 24, 4 latent channels, 2 double + 2 single blocks; one 4x4 image (4
    tokens), so 12 tokens per sequence."""
    config = pyramid_jax.load_dit(str(TINY_DIT)).config
    d, text, image, seq = 64, 8, 4, 12
    embed = 2 * (256 * d + d * d) + 2 * (24 * d + d * d) + 2 * text * 32 * d + 2 * image * 16 * d
    double = (2 * 2 * 6 * d * d  # AdaLN-Zero of both streams
              + 2 * seq * 3 * d * d  # q, k, v of both streams
              + 2 * seq * d * d + 2 * seq * 8 * d * d  # output projections and MLPs of both streams
              + 2 * 2 * seq * seq * d)  # q k^T and p v
    single = 2 * 3 * d * d + 2 * seq * (3 + 4 + 5) * d * d + 2 * 2 * seq * seq * d
    last = (2 * 3 * d * d + 2 * seq * 2 * d * d  # the last single block: k, v of every token,
            + 2 * image * (1 + 4 + 5) * d * d + 2 * 2 * image * seq * d)  # the rest for the image tokens only
    final = 2 * 2 * d * d + 2 * image * d * 16
    want = embed + 2 * double + single + last + final
    assert want == 4_549_632
    assert dit_forward_flops(config, [[(1, 1, 4, 4, 4)]], text) == want
    assert train_step_flops(config, [[(3, 1, 4, 4, 4)]], text) == 3 * 3 * want


def jaxpr_flops(jaxpr) -> int:
    """2 x multiply-adds of every dot_general and convolution, sub-programs (scan bodies x length) included."""
    total = 0
    for eqn in jaxpr.eqns:
        out = eqn.outvars[0].aval.shape if eqn.outvars else ()
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(out) * math.prod(lhs[d] for d in contracting)
        elif eqn.primitive.name == "conv_general_dilated":
            kernel = eqn.invars[1].aval.shape
            out_features = kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += 2 * math.prod(out) * math.prod(kernel) // out_features
        repeat = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += repeat * jaxpr_flops(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += repeat * jaxpr_flops(sub)
    return total


def tiny_mmdit():
    config = MMDiTConfig(sample_size=16, num_layers=3, attention_head_dim=16, num_attention_heads=2,
                         caption_projection_dim=32, pooled_projection_dim=24, pos_embed_max_size=16,
                         joint_attention_dim=40, in_channels=4, pos_embed_type="sincos", use_temporal_causal=True,
                         add_temp_pos_embed=True, temp_pos_embed_type="rope", interp_condition_pos=True,
                         attention_backend="xla")
    return dit_family(config)[0](config, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("family", ["pyramid_flux", "pyramid_mmdit"])
def test_formula_counts_every_matmul_of_the_traced_forward(family):
    # the dense backend: the formula counts the whole score matrix, which chunked / blockwise partly skip
    model = pyramid_jax.load_dit(str(TINY_DIT), attention_backend="xla") if family == "pyramid_flux" else tiny_mmdit()
    config, text = model.config, 8
    rows = SAMPLE[0][0][0] * len(SAMPLE)
    args = ([[jnp.zeros(shape) for shape in clips] for clips in SAMPLE],
            jnp.zeros((rows, text, config.joint_attention_dim)), jnp.ones((rows, text), jnp.int32),
            jnp.zeros((rows, config.pooled_projection_dim)), jnp.full((rows,), 500.0))
    traced = jax.make_jaxpr(lambda *a: model(*a))(*args)
    assert dit_forward_flops(config, SAMPLE, text) == jaxpr_flops(traced.jaxpr)
