"""A VAE loaded onto a mesh (8 fake CPU devices) gives the single-device result: batch and height splits."""

import jax
import pytest
from jax.sharding import PartitionSpec

import pyramid_jax
from pyramid_jax.vae.load import load_vae
from vae_testing import VAE_DIR, assert_close, case, tiny_vae, unoptimized_compiles  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")


@pytest.fixture(scope="module")
def sharded_vae():
    mesh = pyramid_jax.make_mesh(data=2, fsdp=2, sequence=2)
    return load_vae(str(VAE_DIR / "model"), mesh=mesh)


def test_inputs_are_split_by_batch_and_height(sharded_vae):
    placed = sharded_vae.place(case("encode_image/x"))  # [2, 1, 48, 80, 3]
    assert placed.sharding.spec == PartitionSpec("data", None, "sequence", None, None)


def test_sharded_encode_equals_single_device(sharded_vae):
    x = case("encode_image/x")
    mean = sharded_vae.encode(x).mean
    assert tuple(mean.sharding.spec)[:3] == ("data", None, "sequence")  # computed split, not gathered
    assert_close(mean, tiny_vae().encode(x).mean, rtol=1e-5)


def test_sharded_decode_equals_single_device(sharded_vae):
    z = case("decode_image/z")  # [2, 1, 4, 6, 4]: batch over `data`, latent rows over `sequence`
    video = sharded_vae.decode(z)
    assert tuple(video.sharding.spec)[:3] == ("data", None, "sequence")
    assert_close(video, tiny_vae().decode(z), rtol=1e-5)
