"""Genie evaluation, card, demo and CLI on a tiny pipeline and a tiny held-out dataset."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from wm_hub.cli import main
from wm_hub.data import record_episodes, save_dataset
from wm_hub.envs.platformer import ACTION_NAMES, ExplorationPolicy, PlatformerEnv
from wm_hub.models.genie.configuration_genie import DynamicsConfig, GenieTokenizerConfig, LatentActionConfig
from wm_hub.models.genie.evaluation_genie import action_agreement, code_usage, evaluate, latent_action_counts
from wm_hub.models.genie.modeling_genie import DynamicsModel, LatentActionModel, VideoTokenizer
from wm_hub.models.genie.pipeline_genie import GeniePipeline


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "platformer-eval"
    save_dataset(record_episodes(PlatformerEnv(), 3, policy=ExplorationPolicy(1), max_steps=40, seed=1_000_000,
                                 progress=False), path)
    return path


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    small = {"hidden_size": 16, "encoder_layers": 1, "decoder_layers": 1, "num_heads": 2, "code_dim": 8}
    tok = VideoTokenizer(GenieTokenizerConfig(**small, patch_size=16, codebook_size=16, max_frames=3))
    lam = LatentActionModel(LatentActionConfig(**small, patch_size=16, num_actions=4))
    dyn = DynamicsModel(DynamicsConfig(vocab_size=16, grid_size=4, num_actions=4, hidden_size=16, num_layers=1,
                                       num_heads=2, maskgit_steps=2, max_frames=3))
    return GeniePipeline(tokenizer=tok, dynamics=dyn, lam=lam)


def test_evaluate_reports_every_card_number(pipe, held_out):
    metrics = {re.sub(r" \(code \d\)$", "", m.name): m.value for m in evaluate(pipe, held_out, count=4)}
    assert set(metrics) == {
        "tokenizer reconstruction PSNR", "ΔtPSNR (t=4)", "16-frame rollout PSNR (inferred actions)",
        "16-frame PSNR of repeating the first frame (baseline)",
        *[f"latent-action agreement: {a}" for a in ACTION_NAMES],
        "latent-action codes used (share of the codebook)", "latent-action perplexity",
    }  # each agreement names its action's most frequent code, e.g. "latent-action agreement: right (code 4)"
    assert all(math.isfinite(v) or math.isnan(v) for v in metrics.values())
    assert 0 < metrics["tokenizer reconstruction PSNR"] < 60


def test_agreement_is_share_of_most_frequent_code(pipe, held_out, monkeypatch):
    # A LAM that always answers code 2 agrees perfectly with every action, and uses one code of four.
    monkeypatch.setattr(pipe, "infer_actions", lambda video: torch.full((video.shape[0], video.shape[1] - 1), 2))
    codes = latent_action_counts(pipe, held_out, count=8)
    assert all(v == 1.0 for v in action_agreement(codes).values() if not np.isnan(v))
    assert code_usage(codes, 4) == (0.25, 1.0)


def test_agreement_and_usage_by_hand():
    from collections import Counter

    codes = {a: Counter() for a in range(len(ACTION_NAMES))}
    codes[1].update({0: 3, 1: 1})  # left: 3 of 4 on code 0
    codes[2].update({1: 2})  # right: all on code 1
    shares = action_agreement(codes)
    assert shares["left"] == 0.75 and shares["right"] == 1.0 and np.isnan(shares["noop"])
    used, perplexity = code_usage(codes, 4)  # codes 0 and 1, each half the transitions
    assert used == 0.5 and perplexity == pytest.approx(2.0)


def test_cli_eval_writes_card_and_demo_plays(pipe, held_out, tmp_path, monkeypatch, capsys):
    cards = tmp_path / "model_cards"
    pipe.save_pretrained(cards / "genie-tiny")
    monkeypatch.setenv("WM_HUB_MODEL_CARDS", str(cards))
    notes = tmp_path / "notes.md"
    notes.write_text("Tiny random parts, no training.")
    folder = str(cards / "genie-tiny")  # not yet a shipped name: it has no card
    assert main(["eval", folder, "--data", str(held_out), "--count", "4"]) == 0
    assert "ΔtPSNR (t=4)" in capsys.readouterr().out
    assert main(["eval", folder, "--data", str(held_out), "--count", "4", "--write-card"]) == 2
    assert "--training-notes" in capsys.readouterr().err
    assert main(["eval", folder, "--data", str(held_out), "--count", "4", "--write-card",
                 "--training-notes", str(notes)]) == 0
    card = ModelCard.load(cards / "genie-tiny" / "README.md")
    assert card.data.pipeline_tag == "image-to-video" and len(card.data.eval_results) == 12
    assert f"wm-hub eval genie-tiny --data {held_out} --count 4" in card.text  # named as shipped
    assert "Tiny random parts, no training." in card.text
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "genie-tiny: played 20 frames" in out
    gif = tmp_path / "demo" / "genie-tiny.gif"
    import imageio.v3 as iio

    assert iio.imread(gif, index=None).shape == (20, 256, 256, 3)
