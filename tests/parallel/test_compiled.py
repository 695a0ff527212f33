"""Model programs (`parallel/compiled.py`): state and inputs placed by the rules, one program per shape shared by
every caller, traced on the model's mesh, and their count and compile seconds reported."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

from pyramid_jax.layers.linear import dense
from pyramid_jax.parallel.compiled import ModelProgram, PlacedModel
from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.parallel.rules import constrain


class Tiny(nnx.Module):
    def __init__(self):
        self.proj = dense(8, 16, ("embed", "mlp"), rngs=nnx.Rngs(0))


@ModelProgram
def forward(model: Tiny, x: jax.Array) -> jax.Array:
    return constrain(model.proj(x), ("batch", "mlp"))


def test_program_matches_the_module_and_compiles_once_per_shape():
    model = Tiny()
    x = jax.random.normal(jax.random.key(1), (4, 8))
    before, seconds = forward.num_programs(), forward.compile_seconds()
    np.testing.assert_allclose(np.asarray(forward(PlacedModel(model), x)), np.asarray(model.proj(x)), rtol=1e-6)
    forward(PlacedModel(model), x + 1)  # a new split of the same module, same shapes: the same program
    assert forward.num_programs() == before + 1 and forward.compile_seconds() > seconds
    forward(PlacedModel(model), x[:2])
    assert forward.num_programs() == before + 2


def test_state_inputs_and_outputs_follow_the_rules_on_a_mesh():
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    model = Tiny()
    placed = PlacedModel(model, mesh)
    assert placed.state["proj"]["kernel"].get_value().sharding.spec == P("fsdp", "tensor")
    again = PlacedModel(nnx.merge(placed.graphdef, placed.state), mesh)  # already placed: the arrays are kept
    assert again.state["proj"]["kernel"].get_value() is placed.state["proj"]["kernel"].get_value()
    x = placed.place(jnp.ones((4, 8)))
    assert x.sharding.spec == P(("data", "fsdp"), None)
    out = forward(placed, x)
    assert out.sharding.spec == P(("data", "fsdp"), "tensor")  # traced on the mesh: `constrain` applied
    np.testing.assert_allclose(np.asarray(out), np.asarray(model.proj(jnp.ones((4, 8)))), rtol=1e-6)
    assert PlacedModel(model).place(x) is x  # no mesh: inputs stay where they are


def test_compile_returns_a_runner_for_new_inputs():
    model = Tiny()
    run = ModelProgram(lambda m, x: m.proj(x)).compile(PlacedModel(model), jnp.zeros((2, 8)))
    x = jnp.ones((2, 8))
    np.testing.assert_allclose(np.asarray(run(x)), np.asarray(model.proj(x)), rtol=1e-6)
