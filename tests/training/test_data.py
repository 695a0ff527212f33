"""The data pipeline without a model: bucketing, batch plan, per-host rows, resumable state, broken files."""

import json
import os

import numpy as np
import pytest

from pyramid_jax.parallel.distributed import multi_process_environment
from pyramid_jax.training.data.annotations import read_annotations
from pyramid_jax.training.data.buckets import BatchPlan, closest_resolution
from pyramid_jax.training.data.errors import BadFiles, DataError
from pyramid_jax.training.data.hosts import host_rows
from pyramid_jax.training.data.pipeline import DataPipeline
from pyramid_jax.training.data.readers import LatentReader, TextReader

from latent_dataset import write_dataset


def pipeline(annotation, batch_size=2, max_frames=3, on_error="fail", log=None, **kw):
    bad = BadFiles(on_error, log=log or (lambda _: None))
    return DataPipeline(read_annotations(annotation), LatentReader(max_frames, 4), TextReader(True), batch_size,
                        seed=0, bad=bad, read_threads=2, prefetch=2, log=lambda _: None, **kw), bad


def test_batch_plan_is_bucketed_deterministic_and_endless():
    keys = ["a"] * 5 + ["b"] * 7 + ["c"]
    plan = BatchPlan(keys, batch_size=2, seed=1)
    epoch = plan.epoch(0)
    assert len(epoch) == 2 + 3  # "a": 5 // 2, "b": 7 // 2, "c" never fills a batch
    for batch in epoch:
        assert len(batch) == 2 and len({keys[i] for i in batch}) == 1
    used = np.concatenate(epoch)
    assert len(set(used.tolist())) == len(used) and keys.index("c") not in used  # each sample once per epoch
    assert [plan[k].tolist() for k in range(5)] == [b.tolist() for b in epoch]
    assert plan[5].tolist() == plan.epoch(1)[0].tolist() and plan[12].tolist() == plan.epoch(2)[2].tolist()
    again = BatchPlan(keys, batch_size=2, seed=1)
    assert [again[k].tolist() for k in (11, 3, 7)] == [plan[k].tolist() for k in (11, 3, 7)]
    assert [b.tolist() for b in BatchPlan(keys, 2, seed=2).epoch(0)] != [b.tolist() for b in epoch]
    with pytest.raises(ValueError, match="no bucket holds a whole batch of 8"):
        BatchPlan(keys, batch_size=8, seed=1)


def test_host_rows_split_a_global_batch():
    batch = np.arange(8)
    for count in (1, 2, 4, 8):
        parts = [host_rows(batch, i, count) for i in range(count)]
        np.testing.assert_array_equal(np.concatenate(parts), batch)
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        host_rows(batch, 0, 3)


def test_closest_resolution_by_aspect_ratio():
    buckets = [(384, 640), (512, 512), (640, 384)]
    assert closest_resolution(720, 1280, buckets) == (384, 640)
    assert closest_resolution(1080, 1000, buckets) == (512, 512)
    assert closest_resolution(1920, 1080, buckets) == (640, 384)


def test_multi_process_environment_detection():
    assert not multi_process_environment({})
    assert not multi_process_environment({"SLURM_NTASKS": "1", "TPU_WORKER_HOSTNAMES": "localhost"})
    assert multi_process_environment({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
    assert multi_process_environment({"TPU_WORKER_HOSTNAMES": "t1,t2,t3,t4"})
    assert multi_process_environment({"SLURM_NTASKS": "16"})
    assert multi_process_environment({"OMPI_COMM_WORLD_SIZE": "2"})


def test_length_and_resolution_buckets_per_host_rows_and_resumed_order(tmp_path):
    # T is cut to 3: buckets (3, 8x8), (2, 8x8) and (3, 8x16) with 4 samples each
    shapes = [(3, 8, 8, 4)] * 4 + [(2, 8, 8, 4)] * 4 + [(5, 8, 16, 4)] * 4
    annotation = write_dataset(tmp_path, shapes)
    data, _ = pipeline(annotation)
    iterator = data.iterator()
    first = [next(iterator) for _ in range(4)]
    assert {b.samples.shape for b in first} <= {(2, 3, 8, 8, 4), (2, 2, 8, 8, 4), (2, 3, 8, 16, 4)}
    assert all(b.text.embeds.shape == (2, 8, 32) and b.samples.dtype == np.float32 for b in first)
    state = json.loads(json.dumps(iterator.get_state()))
    assert state["position"] == 4
    rest = [next(iterator) for _ in range(5)]  # crosses into the second epoch (6 batches each)

    resumed = data.iterator(state=state)
    for want in rest:
        got = next(resumed)
        np.testing.assert_array_equal(got.samples, want.samples)
        np.testing.assert_array_equal(got.text.pooled, want.text.pooled)
    np.testing.assert_array_equal(next(data.iterator(start=4)).samples, rest[0].samples)

    hosts = [next(pipeline(annotation, process_index=p, process_count=2)[0].iterator()) for p in range(2)]
    assert hosts[0].samples.shape[0] == 1
    np.testing.assert_array_equal(np.concatenate([h.samples for h in hosts]), first[0].samples)

    other, _ = pipeline(annotation, batch_size=4)
    with pytest.raises(ValueError, match="another plan"):
        other.iterator(state=state)


def test_broken_files_fail_loudly_or_are_skipped_and_counted(tmp_path):
    annotation = write_dataset(tmp_path, [(2, 8, 8, 4)] * 8)
    os.remove(tmp_path / "1.npy")  # missing
    with open(tmp_path / "2.npy", "r+b") as f:  # truncated data
        f.truncate(200)
    (tmp_path / "3.npz").write_bytes(b"not a zip")  # corrupt text features
    with open(annotation, "a") as f:
        f.write(json.dumps({"text": "no latent"}) + "\n")

    with pytest.raises(DataError, match=f"{tmp_path / '1.npy'}: unreadable latent file"):
        pipeline(annotation)
    logged = []
    data, bad = pipeline(annotation, on_error="skip", log=logged.append)
    assert bad.count == 4 and len(data.records) == 5
    for name in ("1.npy", "2.npy", "3.npz", "has no `latent` field"):
        assert any(name in line for line in logged), name

    # a file that disappears after the check: reported when read; skipped, its row repeats another of the batch
    os.remove(tmp_path / "0.npy")
    batch = data.load(np.array([0, 4]))
    assert batch.samples.shape == (2, 2, 8, 8, 4) and bad.count == 5 and str(tmp_path / "0.npy") in logged[-1]
    np.testing.assert_array_equal(batch.samples[0], batch.samples[1])
    strict, _ = pipeline(write_dataset(tmp_path / "strict", [(2, 8, 8, 4)] * 2))
    os.remove(tmp_path / "strict" / "1.npy")
    with pytest.raises(DataError, match=f"{tmp_path / 'strict' / '1.npy'}: unreadable latent file"):
        next(strict.iterator())
