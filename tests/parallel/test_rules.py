"""Mesh construction and the logical-axis rule table."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from pyramid_jax.parallel.mesh import make_mesh, parse_mesh_axes
from pyramid_jax.parallel.rules import constrain, logical_to_spec, traced_on


def test_mesh_axes_and_sizes():
    mesh = make_mesh(data=-1, fsdp=2, tensor=2)
    assert mesh.axis_names == ("data", "fsdp", "tensor", "sequence")
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2, "sequence": 1}
    with pytest.raises(ValueError, match="needs 16 devices"):
        make_mesh(data=4, fsdp=2, tensor=2)
    with pytest.raises(ValueError, match="at most one"):
        make_mesh(data=-1, fsdp=-1)


def test_mesh_axes_from_text():
    assert parse_mesh_axes("data=2,fsdp=-1") == dict(data=2, fsdp=-1, tensor=1, sequence=1)
    assert dict(make_mesh(**parse_mesh_axes(" tensor=2, fsdp=4 ")).shape) == dict(data=1, fsdp=4, tensor=2, sequence=1)
    for bad in ("model=2", "data", "data=two"):
        with pytest.raises(ValueError, match="data=2,fsdp=4"):
            parse_mesh_axes(bad)


def test_rules_map_logical_names():
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    assert logical_to_spec(("embed", "mlp"), (64, 256), mesh) == P("fsdp", "tensor")
    assert logical_to_spec(("batch", None), (8, 3), mesh) == P(("data", "fsdp"), None)


def test_indivisible_dimensions_are_replicated():
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    assert logical_to_spec(("embed", "heads"), (3, 5), mesh) == P(None, None)
    assert logical_to_spec(("batch",), (2,), mesh) == P("data")


def test_rule_conflicts_and_unknown_names_fail_loudly():
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    with pytest.raises(ValueError, match="used twice"):
        logical_to_spec(("heads", "mlp"), (8, 8), mesh)
    with pytest.raises(KeyError, match="no sharding rule"):
        logical_to_spec(("embedding",), (8,), mesh)
    assert jax.device_count() == 8


def test_constrain_applies_under_a_traced_mesh_only():
    """Tokens over `sequence` where it divides their count (12), replicated where not (10); nothing off a mesh."""

    def tokens(x):
        return constrain(x * 2, ("batch", "length", None))

    args = jnp.ones((2, 12, 3)), jnp.ones((2, 10, 3))
    mesh = make_mesh(data=2, sequence=4)
    assert "sharding_constraint" not in jax.jit(tokens).lower(args[0]).as_text()
    on_mesh = jax.jit(traced_on(mesh, tokens))
    assert '<@mesh, [{"data"}, {"sequence"}, {}]>' in on_mesh.lower(args[0]).as_text()
    assert '<@mesh, [{"data"}, {}, {}]>' in on_mesh.lower(args[1]).as_text()
