"""Training: the pyramidal flow-matching objective, a sharded jitted train step, checkpoints and the loop."""

from pyramid_jax.training.objective import KeyRandomness, PyramidObjective
from pyramid_jax.training.train_state import TrainState, init_train_state, split_for_training, train_state_shardings
from pyramid_jax.training.train_step import Batch, StepConfig, make_train_step, place_batch

__all__ = ["Batch", "KeyRandomness", "PyramidObjective", "StepConfig", "TrainState", "init_train_state",
           "make_train_step", "place_batch", "split_for_training", "train_state_shardings"]
