"""Models run as jitted pure functions of (graphdef, state): the one place that splits an nnx module, places its
state and inputs on a mesh by the logical-axis rules, jits, and counts the compiled programs.

- `PlacedModel(module, mesh)`: the module split into a static graphdef and its state, the state placed by the
  parameters' `logical_axes` (a no-op for a model loaded onto the mesh), and `place(inputs)` for its inputs.
- `ModelProgram(fn)`: `fn(model, *inputs, **options)` jitted over (graphdef, state, inputs) once per process and
  traced on the model's mesh, so `constrain` (activations and outputs held to their logical axes) and the
  attention backends' per-device paths apply. Every caller shares the compiled programs (one per graphdef, option
  values and input shapes); `num_programs()` and `compile_seconds()` count them.
- `state_step(step)`: a training step over a whole train state (DiT or VAE), jitted with the state donated and,
  on a mesh, traced on it with the state's layout kept.

Without a mesh nothing moves: inputs stay where they are and the state is used as it is.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Sequence

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from pyramid_jax import compile_cache
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules, logical_to_spec, state_shardings, traced_on


def place_inputs(tree, mesh: Mesh | None, axes: Sequence[str | None] | None = None,
                 rules: Rules = LOGICAL_AXIS_RULES):
    """Every array of `tree` on `mesh`, split by the logical `axes` of its dimensions (default: the leading one is
    the batch, the rest replicated); `tree` as is without a mesh."""
    if mesh is None:
        return tree

    def put(x):
        names = ("batch",) + (None,) * (x.ndim - 1) if axes is None else axes
        return jax.device_put(x, NamedSharding(mesh, logical_to_spec(names, x.shape, mesh, rules)))

    return jax.tree.map(put, tree)


class PlacedModel:
    """A module (or a tuple of modules) split into `graphdef` and `state` for a `ModelProgram`; with a `mesh`, the
    state is placed on it by `rules` and `place` splits inputs over it."""

    def __init__(self, module, mesh: Mesh | None = None, rules: Rules = LOGICAL_AXIS_RULES):
        graphdef, state = nnx.split(module)
        if mesh is not None:
            state = jax.device_put(state, state_shardings(state, mesh, rules))
        self._set(graphdef, state, mesh, rules)

    @classmethod
    def from_split(cls, graphdef: nnx.GraphDef, state: nnx.State, mesh: Mesh | None = None,
                   rules: Rules = LOGICAL_AXIS_RULES) -> PlacedModel:
        """A split made elsewhere, used as it is: e.g. an abstract state whose leaves carry their shardings, to
        `ModelProgram.lower` a program without allocating the model."""
        model = cls.__new__(cls)
        model._set(graphdef, state, mesh, rules)
        return model

    def _set(self, graphdef, state, mesh, rules) -> None:
        self.graphdef, self.state, self.mesh = graphdef, state, mesh
        self.rules = tuple(rules)  # hashable: programs may take the rules as a static option

    def place(self, tree, axes: Sequence[str | None] | None = None):
        """`place_inputs` on this model's mesh and rules."""
        return place_inputs(tree, self.mesh, axes, self.rules)

    def traced(self):
        """The context the model's programs are traced in: its mesh (as an abstract mesh), if any."""
        if self.mesh is None:
            return contextlib.nullcontext()
        return jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh)


class ModelProgram:
    """`fn(model, *inputs, **options)` as a jitted pure function of a `PlacedModel`'s (graphdef, state) and the
    inputs; `static_argnames` are options that select a program, `donate_argnames` inputs whose buffers the program
    may reuse. Inputs keep the shardings they are given (`PlacedModel.place`), and outputs follow the program's
    `constrain` calls. Usable as a decorator: `ModelProgram(fn)` or `functools.partial(ModelProgram, ...)`."""

    def __init__(self, fn: Callable, *, static_argnames: Sequence[str] = (), donate_argnames: Sequence[str] = ()):
        @functools.wraps(fn)
        def pure(graphdef, state, *args, **kwargs):
            return fn(nnx.merge(graphdef, state), *args, **kwargs)

        self._jitted = jax.jit(pure, static_argnums=0, static_argnames=tuple(static_argnames),
                               donate_argnames=tuple(donate_argnames))
        self.name = f"jit({fn.__name__})"  # how jax names its compilations

    def __call__(self, model: PlacedModel, *args, **kwargs):
        compile_cache.track_compile_times()
        with model.traced():
            return self._jitted(model.graphdef, model.state, *args, **kwargs)

    def lower(self, model: PlacedModel, *args, **kwargs) -> jax.stages.Lowered:
        """The program for these inputs, lowered (`.compile()` it for its memory analysis or to time compiling)."""
        compile_cache.track_compile_times()
        with model.traced():
            return self._jitted.lower(model.graphdef, model.state, *args, **kwargs)

    def compile(self, model: PlacedModel, *args, **kwargs) -> Callable:
        """Compiles the program for these inputs now (e.g. to time compiling apart from running); returns
        `run(*inputs)`, which runs it on the model with new inputs of the same shapes (no static options)."""
        compiled = self.lower(model, *args, **kwargs).compile()
        return lambda *inputs: compiled(model.state, *inputs)

    def num_programs(self) -> int:
        """Programs compiled (or loaded) in this process, all callers together."""
        return self._jitted._cache_size()

    def compile_seconds(self) -> float:
        """Seconds spent compiling (or loading from the persistent cache) this function's programs so far."""
        return sum(r.seconds for r in compile_cache.compile_records() if r.name == self.name)


def state_step(step: Callable, state_shardings=None, compiler_options: dict | None = None) -> Callable:
    """A training step `step(state, *inputs) -> (state, metrics)` jitted with the state donated. With
    `state_shardings` (the state's layout on a mesh) it is traced on that mesh, so the models' `constrain` calls
    place activations, and the new state keeps the layout across steps. `compiler_options`: XLA options."""
    if state_shardings is None:
        return jax.jit(step, donate_argnums=0, compiler_options=compiler_options)
    mesh = jax.tree.leaves(state_shardings)[0].mesh
    return jax.jit(traced_on(mesh, step), donate_argnums=0, out_shardings=(state_shardings, None),
                   compiler_options=compiler_options)
