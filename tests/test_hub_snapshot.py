"""Hub ids: `owner/name` resolves through huggingface_hub's cache, offline here (a cache folder built from the tiny
fixture in the hub's layout: models--owner--name/snapshots/<commit>/..., refs/main)."""

import shutil

from huggingface_hub import constants as hub_constants
import pytest

import sample
from conftest import FIXTURES
from pyramid_jax.pipeline import PyramidFlowPipeline
from pyramid_jax.snapshot import Snapshot

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline hub cache holding `tiny/miniflux` (a copy of the tiny miniFLUX snapshot)."""
    repo = tmp_path / "hub" / "models--tiny--miniflux"
    shutil.copytree(FIXTURES / "snapshots" / "miniflux_tiny", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return repo / "snapshots" / COMMIT


def test_a_hub_id_resolves_to_its_cached_snapshot(hub_cache):
    assert Snapshot("tiny/miniflux").path == str(hub_cache)
    pipe = PyramidFlowPipeline.from_pretrained("tiny/miniflux")  # checks every config; loads no model yet
    assert pipe.family == "pyramid_flux"
    args = sample.parse_args(["--snapshot", "tiny/miniflux"])
    sample.fill_defaults(args)
    assert args.snapshot == str(hub_cache)


def test_a_hub_id_neither_cached_nor_downloadable_is_a_clear_error(hub_cache):
    with pytest.raises(FileNotFoundError, match=r"snapshot tiny/unknown is not a folder, and as a hub id it is "
                                                r"neither in huggingface_hub's cache \(.*hub\) nor downloadable"):
        Snapshot("tiny/unknown")
    with pytest.raises(SystemExit, match="snapshot tiny/unknown is not a folder"):
        sample.main(["--snapshot", "tiny/unknown", "--no-compile-cache"])
    with pytest.raises(FileNotFoundError, match="snapshot folder no/such/folder does not exist"):
        Snapshot("no/such/folder")  # not a hub id: two slashes
