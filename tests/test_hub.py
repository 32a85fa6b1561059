from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import wm_hub
from tests.conftest import TinyModel
from wm_hub import hub
from wm_hub.cards import Metric, write_model_card

REPO = Path(__file__).resolve().parents[1]


def _ship(model, cards_dir: Path, name: str) -> Path:
    folder = cards_dir / name
    model.save_pretrained(folder)
    write_model_card(
        folder, name=name, family="test", pipeline_tag="robotics", summary="A tiny test model.",
        metrics=[Metric("PSNR", 31.5, "psnr", "unit-test", "dB"), Metric("SSIM", 0.91, "ssim", "unit-test")],
        command="pytest tests/test_hub.py", usage="model = TinyModel.from_pretrained(...)",
        dataset="unit-test", training="None.", limitations="Tests only.", config=model.config.to_dict(),
    )
    return folder


def test_resolver_order_local_folder_first(tiny_model, cards_dir, tmp_path, monkeypatch):
    _ship(tiny_model, cards_dir, "tiny")
    local = tmp_path / "work" / "tiny"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert hub.resolve("tiny") == Path("tiny")  # the local folder wins over the shipped name


def test_resolver_order_shipped_before_hub(tiny_model, cards_dir, tmp_path, monkeypatch):
    _ship(tiny_model, cards_dir, "tiny")
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda **kw: calls.append(kw) or str(tmp_path))
    assert hub.resolve("tiny") == cards_dir / "tiny"
    assert calls == []
    assert hub.resolve("someone/some-model", revision="v1") == tmp_path
    assert calls[0]["repo_id"] == "someone/some-model" and calls[0]["revision"] == "v1"


def test_from_pretrained_by_shipped_name(tiny_model, cards_dir, tmp_path, monkeypatch):
    _ship(tiny_model, cards_dir, "tiny")
    monkeypatch.chdir(tmp_path)
    loaded = TinyModel.from_pretrained("tiny")
    x = torch.ones(1, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, x), tiny_model(x, x), rtol=0, atol=0)
    assert type(wm_hub.load("tiny")) is TinyModel


def test_offline_error_names_model_places_and_remedy(cards_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO / "src")}
    code = "import wm_hub\nwm_hub.resolve('someone/not-cached')"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    err = proc.stderr
    assert "ModelNotFoundError: cannot find model 'someone/not-cached'" in err
    assert "1. a local folder" in err and f"2. checkpoints shipped in {cards_dir}" in err
    assert "3. the Hugging Face Hub repo 'someone/not-cached': offline (HF_HUB_OFFLINE=1)" in err
    assert "unset HF_HUB_OFFLINE" in err and "hf download someone/not-cached" in err


def test_unknown_name_lists_shipped(tiny_model, cards_dir, monkeypatch, tmp_path):
    _ship(tiny_model, cards_dir, "tiny")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hub.ModelNotFoundError, match=r"shipped: tiny\)") as info:
        hub.resolve("not a valid/repo/id")
    assert "not a valid repo id" in str(info.value)


def test_list_models_reads_cards(tiny_model, cards_dir):
    _ship(tiny_model, cards_dir, "tiny-b")
    _ship(tiny_model, cards_dir, "tiny-a")
    models = wm_hub.list_models()
    assert [m.name for m in models] == ["tiny-a", "tiny-b"]
    info = models[0]
    assert info.family == "test" and info.pipeline_tag == "robotics"
    assert info.parameters == sum(p.numel() for p in tiny_model.parameters()) == 16 * 8 + 8
    assert info.metrics == {"PSNR": 31.5, "SSIM": 0.91}


def test_push_uploads_the_folder(tiny_model, cards_dir):
    folder = _ship(tiny_model, cards_dir, "tiny")

    class FakeApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, **kw):
            self.calls.append(("create_repo", kw))
            return f"https://huggingface.co/{kw['repo_id']}"

        def upload_folder(self, **kw):
            sent = sorted(p.name for p in Path(kw["folder_path"]).iterdir())
            self.calls.append(("upload_folder", {**kw, "sent": sent}))

    api = FakeApi()
    url = wm_hub.push("tiny", "me/tiny", api=api)
    assert url == "https://huggingface.co/me/tiny"
    (name, create), (_, upload) = api.calls
    assert create["repo_id"] == "me/tiny" and create["exist_ok"] and not create["private"]
    assert upload["repo_id"] == "me/tiny" and Path(upload["folder_path"]) == folder
    assert upload["sent"] == ["README.md", "config.json", "model.safetensors"]
    assert (folder / "README.md").read_text().startswith("---\n")


def test_push_refuses_folder_without_card(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "x")
    with pytest.raises(wm_hub.CheckpointError, match="no README.md"):
        wm_hub.push(tmp_path / "x", "me/x", api=object())


def test_import_is_lazy_and_auto_hook_registers_families(tmp_path):
    """`import wm_hub` loads neither torch nor transformers; loading transformers' AutoModel
    afterwards registers every family found under wm_hub.models."""
    family = tmp_path / "fakefam"
    family.mkdir()
    (family / "__init__.py").write_text("")
    (family / "configuration_fakefam.py").write_text(textwrap.dedent("""
        from transformers import PretrainedConfig
        __all__ = ["FakeConfig"]
        class FakeConfig(PretrainedConfig):
            model_type = "wm_fake"
    """))
    (family / "modeling_fakefam.py").write_text(textwrap.dedent("""
        import torch
        from wm_hub.modeling_utils import WorldModelPreTrainedModel
        from wm_hub.models.fakefam.configuration_fakefam import FakeConfig
        __all__ = ["FakeModel"]
        class FakeModel(WorldModelPreTrainedModel):
            config_class = FakeConfig
            def __init__(self, config):
                super().__init__(config)
                self.w = torch.nn.Linear(2, 2)
                self.post_init()
    """))
    code = textwrap.dedent(f"""
        import sys
        import wm_hub, wm_hub.models
        assert "torch" not in sys.modules and "transformers" not in sys.modules, "import wm_hub is not lazy"
        wm_hub.models.__path__.append({str(tmp_path)!r})
        from transformers import AutoModel, AutoConfig
        cfg = AutoConfig.for_model("wm_fake")
        model = AutoModel.from_config(cfg)
        print(type(model).__name__)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FakeModel"


def test_importing_a_transformers_model_first_thing_still_registers_families():
    """`from transformers import T5EncoderModel` (what the Cosmos pipelines import) half-imports transformers'
    `modeling_layers` while it loads `AutoModel`: registration waits until nothing is half-imported."""
    code = textwrap.dedent("""
        from wm_hub.models.cosmos.pipeline_cosmos import Text2WorldPipeline
        from transformers import AutoConfig
        print(type(AutoConfig.for_model("world_models_vae")).__name__)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ConvVAEConfig"
