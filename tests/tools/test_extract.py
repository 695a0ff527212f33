"""tools/extract_*.py on the tiny snapshot with generated mp4s, then both data sources over their output:
pre-extracted latents (`latents`) and the raw videos encoded on the fly (`videos`)."""

import json
import os

import jax
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.dit.families import normalize_latents
from pyramid_jax.dit_training.batches import batch_source
from pyramid_jax.io.video import save_frames
from pyramid_jax.training.data import DataConfig, DataError, DataSource
from pyramid_jax.training.data.storage import NULL_TEXT_FILE, load_text
from tools import extract_text_features, extract_video_latents

from conftest import FIXTURES

SNAPSHOT = FIXTURES / "snapshots" / "miniflux_tiny"
# name: (frames, height, width); the 1 + 8k rule and --num-frames 17 give 3, 2 and 2 latent frames
VIDEOS = {"fox": (17, 64, 64), "waves": (9, 48, 80), "city": (12, 72, 64)}
RESOLUTIONS = "64x64,64x128"  # "waves" (5:3) goes to 64x128, the others to 64x64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    with open(folder / "videos.jsonl", "w") as f:
        for name, shape in VIDEOS.items():
            save_frames((rng.random((*shape, 3)) * 255).astype(np.uint8), str(folder / f"{name}.mp4"))
            f.write(json.dumps({"video": f"{name}.mp4", "text": f"a {name}"}) + "\n")
    return folder


def test_extraction_tools_write_latents_text_features_and_annotations(dataset, tmp_path, capsys):
    broken = dataset / "broken.jsonl"  # a file that is not there, then "fox"
    broken.write_text(json.dumps({"video": "nope.mp4", "text": "?"}) + "\n" +
                      (dataset / "videos.jsonl").read_text().splitlines()[0] + "\n")
    video_args = ["--snapshot", str(SNAPSHOT), "--resolutions", RESOLUTIONS, "--num-frames", "17",
                  "--dtype", "float32"]
    with pytest.raises(SystemExit, match="^error: .*nope.mp4: unreadable video"):
        extract_video_latents.main([*video_args, "--annotation", str(broken), "--output-dir", str(tmp_path / "b")])
    with pytest.raises(DataError, match="nope.mp4: unreadable video"):  # --debug: the exception itself
        extract_video_latents.main([*video_args, "--annotation", str(broken), "--output-dir", str(tmp_path / "b"),
                                    "--debug"])
    extract_video_latents.main([*video_args, "--annotation", str(broken), "--output-dir", str(tmp_path / "b"),
                                "--on-error", "skip"])
    assert "wrote 1 of 2 records" in capsys.readouterr().out

    latents_dir, text_dir = tmp_path / "latents", tmp_path / "text"
    extract_video_latents.main([*video_args, "--annotation", str(dataset / "videos.jsonl"),
                                "--output-dir", str(latents_dir)])
    extract_text_features.main(["--snapshot", str(SNAPSHOT), "--annotation", str(latents_dir / "annotation.jsonl"),
                                "--output-dir", str(text_dir), "--dtype", "float32", "--batch-size", "2"])
    records = [json.loads(line) for line in (text_dir / "annotation.jsonl").read_text().splitlines()]
    assert [r["latent"] for r in records] == [f"../latents/{i:08d}.npy" for i in range(3)]
    assert [r["text_fea"] for r in records] == [f"{i:08d}.npz" for i in range(3)]
    shapes = [np.load(text_dir / r["latent"]).shape for r in records]
    assert shapes == [(3, 8, 8, 4), (2, 8, 16, 4), (2, 8, 8, 4)]
    assert np.load(latents_dir / "00000000.npy").dtype == np.float16

    encoder = pyramid_jax.load_text_encoder(str(SNAPSHOT))
    for caption, path in (("a fox", text_dir / "00000000.npz"), ("", text_dir / NULL_TEXT_FILE)):
        want = [np.asarray(x)[0] for x in encoder(caption)]
        for got, w in zip(load_text(str(path)), want):
            np.testing.assert_allclose(got, w, rtol=2e-3, atol=2e-3)  # stored as float16

    mtime = os.path.getmtime(latents_dir / "00000000.npy")
    extract_video_latents.main([*video_args, "--annotation", str(dataset / "videos.jsonl"),
                                "--output-dir", str(latents_dir)])
    assert os.path.getmtime(latents_dir / "00000000.npy") == mtime  # kept: an interrupted run restarts cheaply

    data = DataConfig(source=DataSource.LATENTS, annotation=str(text_dir / "annotation.jsonl"), batch_size=1,
                      frames=2, read_threads=1, prefetch=1)
    batch = next(batch_source(data, pyramid_jax.load_dit(str(SNAPSHOT / "diffusion_transformer_384p")).config,
                              seed=0, mesh=None, family="pyramid_flux", log=lambda _: None)(0))
    row = [i for i, s in enumerate(shapes) if s[1:3] == batch.latents.shape[2:4]]
    candidates = [normalize_latents(np.load(text_dir / records[i]["latent"])[None, :2].astype(np.float32),
                                    "pyramid_flux") for i in row]
    assert any(np.allclose(np.asarray(batch.latents), c, atol=1e-6) for c in candidates)


def test_raw_videos_are_encoded_on_the_fly(dataset):
    vae = pyramid_jax.load_vae(str(SNAPSHOT / "causal_video_vae"))
    dit = pyramid_jax.load_dit(str(SNAPSHOT / "diffusion_transformer_384p")).config
    data = DataConfig(source=DataSource.VIDEOS, annotation=str(dataset / "videos.jsonl"), batch_size=1, frames=2,
                      resolutions=((64, 64), (64, 128)), text_features=False, read_threads=1, prefetch=1)
    encoder = pyramid_jax.load_text_encoder(str(SNAPSHOT))
    source = batch_source(data, dit, seed=0, mesh=None, family="pyramid_flux", vae=vae, text_encoder=encoder,
                          log=lambda _: None)
    first, again = next(source(0)), next(source(0))
    assert first.latents.shape[:2] == (1, 2) and first.latents.shape[2:] in ((8, 8, 4), (8, 16, 4))
    assert first.text.embeds.shape == (1, 128, 32)
    np.testing.assert_array_equal(np.asarray(first.latents), np.asarray(again.latents))  # keyed by plan position
    assert jax.numpy.isfinite(first.latents).all()
