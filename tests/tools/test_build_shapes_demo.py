"""tools/build_shapes_demo.py reads its folders from the stage configs, which must chain: checked before any stage
runs, naming the config file and field that breaks the chain."""

import dataclasses

import pytest

from pyramid_jax.errors import UserError
from tools import build_shapes_demo as build


def stages():
    return ([build.stage_config(name) for name in build.VAE_STAGES], build.stage_config(build.RESCALED_VAE_STAGE),
            build.stage_config(build.DIT_STAGE))


def test_the_committed_stage_configs_chain():
    vae_stages, rescaled, dit = stages()
    build.check_stages(vae_stages, rescaled, dit)
    assert [config.vae for config, _ in vae_stages[1:]] == [f"{config.output_dir}/model"
                                                            for config, _ in vae_stages[:-1]]


def test_a_stage_that_reads_another_model_is_named_before_any_stage_runs():
    vae_stages, rescaled, dit = stages()
    clips, path = vae_stages[1]
    vae_stages[1] = dataclasses.replace(clips, vae=clips.output_dir), path
    with pytest.raises(UserError, match=r"configs/train/shapes_vae\.py: vae is .* the build needs .*vae_images/model"):
        build.check_stages(vae_stages, rescaled, dit)


@pytest.mark.parametrize("field, change", [
    ("data.null_text", lambda c: dataclasses.replace(c, data=dataclasses.replace(c.data, null_text="/x/null.npz"))),
    ("snapshot", lambda c: dataclasses.replace(c, snapshot="/elsewhere")),
])
def test_a_dit_stage_off_the_builds_folders_is_named(field, change):
    vae_stages, rescaled, (dit, path) = stages()
    # A DiT snapshot elsewhere leaves the untrained VAE the first stage reads outside it: that stage is named.
    named = "shapes_dit.py: data.null_text" if field == "data.null_text" else "shapes_vae_images.py: vae"
    with pytest.raises(UserError, match=named):
        build.check_stages(vae_stages, rescaled, (change(dit), path))


def test_the_rescaled_decoder_must_leave_the_encoder_and_so_the_latents_alone():
    vae_stages, (rescaled, path), dit = stages()
    with pytest.raises(UserError, match="shapes_vae_rescaled_decoder.py: decoder_only is False"):
        build.check_stages(vae_stages, (dataclasses.replace(rescaled, decoder_only=False), path), dit)
