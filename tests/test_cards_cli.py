from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from tests.test_hub import _ship
from wm_hub.cards import Metric, write_model_card
from wm_hub.cli import main


def test_card_metadata_and_body(tiny_model, cards_dir):
    folder = _ship(tiny_model, cards_dir, "tiny")
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "wm_hub" and data["pipeline_tag"] == "robotics"
    assert data["tags"] == ["wm_hub", "world-model", "test"]
    assert data["datasets"] == ["unit-test"] and data["license"] == "apache-2.0"
    results = card.data.eval_results
    assert [(r.metric_type, r.metric_name, r.metric_value) for r in results] == [
        ("psnr", "PSNR", 31.5), ("ssim", "SSIM", 0.91)]
    assert data["model-index"][0]["name"] == "tiny"
    body = card.text
    assert "| PSNR | 31.5 dB |" in body
    assert "```bash\npytest tests/test_hub.py\n```" in body
    assert "| `hidden_size` | `8` |" in body
    assert not list(folder.glob(".README*")), "temporary card file left behind"


def test_card_refuses_missing_numbers_or_command(tmp_path):
    kwargs = dict(name="x", family="f", pipeline_tag="robotics", summary="s", usage="u", dataset="d",
                  training="t", limitations="l")
    with pytest.raises(ValueError, match="at least one measured metric"):
        write_model_card(tmp_path, metrics=[], command="make bench", **kwargs)
    with pytest.raises(ValueError, match="command that reproduces"):
        write_model_card(tmp_path, metrics=[Metric("a", 1.0, "a", "d")], command=" ", **kwargs)


def test_cli_list_info_demo(tiny_model, cards_dir, capsys):
    assert main(["list"]) == 0
    assert "no checkpoints shipped" in capsys.readouterr().out
    _ship(tiny_model, cards_dir, "tiny")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "test" in out and "0.00M" in out and "PSNR=31.5" in out
    assert main(["info", "tiny"]) == 0
    assert "parameters: 136" in capsys.readouterr().out
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "torch CPU matmul ok" in out and "1 shipped checkpoint(s)" in out


def test_cli_unknown_model_is_a_clear_error(cards_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert main(["info", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wm-hub: error: cannot find model 'no-such-model'")
