from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoModel

from tests.conftest import OtherModel, TinyModel
from wm_hub.checkpoint import CheckpointError, atomic_directory


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)


def test_save_load_round_trip_identical(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "a temporary folder was left behind"
    loaded = TinyModel.from_pretrained(tmp_path / "ckpt")
    x, a = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, a), tiny_model(x, a), rtol=0, atol=0)


def test_auto_model_loads_registered_family(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is TinyModel
    x, a = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, a), tiny_model(x, a), rtol=0, atol=0)


def test_saving_again_keeps_other_files(tiny_model, tmp_path):
    (tmp_path / "README.md").write_text("card")
    tiny_model.save_pretrained(tmp_path)
    tiny_model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]


@pytest.mark.parametrize("cut", [0.5, 0.01])
def test_corrupt_weights_clear_error(tiny_model, tmp_path, cut):
    tiny_model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: max(1, int(len(blob) * cut))])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt or truncated"):
        TinyModel.from_pretrained(tmp_path)


def test_missing_weights_and_pickle_refused(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    os.replace(tmp_path / "model.safetensors", tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle files are never loaded"):
        TinyModel.from_pretrained(tmp_path)


def test_missing_config_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.json"):
        TinyModel.from_pretrained(tmp_path)


def test_wrong_family_config_clear_error(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="holds a 'wm_test_tiny' checkpoint .*OtherModel loads 'wm_test_other'"):
        OtherModel.from_pretrained(tmp_path)


def test_config_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        TinyModel.from_pretrained(tmp_path)


def test_atomic_directory_failure_leaves_target_untouched(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "config.json").write_text(json.dumps({"old": True}))
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("half")
        raise RuntimeError("crash while saving")
    assert json.loads((target / "config.json").read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_directory_replace_swaps_whole_folder(tmp_path):
    target = tmp_path / "ds"
    target.mkdir()
    (target / "stale.arrow").write_text("old shard")
    with atomic_directory(target, replace=True) as tmp:
        (tmp / "new.arrow").write_text("new shard")
    assert [p.name for p in target.iterdir()] == ["new.arrow"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_saved_folders_get_default_permissions(tiny_model, tmp_path):
    umask = os.umask(0o022)
    try:
        tiny_model.save_pretrained(tmp_path / "ckpt")
    finally:
        os.umask(umask)
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "ckpt" / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    from wm_hub.checkpoint import atomic_file

    target = tmp_path / "sub" / "table.md"
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["table.md"]
