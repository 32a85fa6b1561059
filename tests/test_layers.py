from __future__ import annotations

import pytest
import torch

from wm_hub.layers.attention import RotaryEmbedding, SelfAttention, attention_mask
from wm_hub.layers.distributions import sample_categorical
from wm_hub.layers.maskgit import masked_fraction, maskgit_decode, random_token_mask
from wm_hub.layers.quantizers import VectorQuantizer
from wm_hub.layers.st_transformer import STCache, STTransformer


@pytest.fixture
def st() -> STTransformer:
    torch.manual_seed(0)
    return STTransformer(dim=16, depth=2, num_heads=2).eval()


def test_st_transformer_is_causal_in_time(st):
    x = torch.randn(2, 5, 4, 16)
    y = st(x)
    for k in range(5):
        x2 = x.clone()
        x2[:, k] += torch.randn_like(x2[:, k])
        y2 = st(x2)
        torch.testing.assert_close(y2[:, :k], y[:, :k], rtol=0, atol=1e-6)
        assert not torch.allclose(y2[:, k], y[:, k])


def test_st_cache_matches_full_pass(st):
    x = torch.randn(2, 5, 4, 16)
    full = st(x)
    cache = STCache()
    steps = [st(x[:, t:t + 1], cache=cache) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.position == 5 and cache.kv[0][0].shape == (2 * 4, 2, 5, 8)


def test_st_cache_uncommitted_pass_leaves_cache(st):
    x = torch.randn(1, 3, 4, 16)
    cache = STCache()
    st(x[:, :2], cache=cache)
    before = [k.clone() for k, _ in cache.kv]
    a = st(x[:, 2:], cache=cache, commit=False)
    assert cache.position == 2 and all(torch.equal(k, b) for (k, _), b in zip(cache.kv, before, strict=True))
    torch.testing.assert_close(a, st(x)[:, 2:], rtol=1e-5, atol=1e-5)


def test_st_cache_sliding_window_forgets_old_frames(st):
    """With max_frames = W, each block attends over the last W frames only, so after depth * (W - 1)
    frames a frame no longer influences the output (streaming, like sliding-window attention)."""

    def stream(x):
        cache = STCache(max_frames=2)
        outs = [st(x[:, t:t + 1], cache=cache) for t in range(x.shape[1])]
        assert cache.kv[0][0].shape[2] == 1
        return torch.cat(outs, dim=1)

    x = torch.randn(1, 6, 4, 16)
    x2 = x.clone()
    x2[:, 0] += torch.randn_like(x2[:, 0])  # not a constant shift: LayerNorm would erase that
    a, b = stream(x), stream(x2)
    assert not torch.allclose(a[:, 2], b[:, 2])  # within depth * (W - 1) = 2 frames: still felt
    torch.testing.assert_close(a[:, 3:], b[:, 3:], rtol=0, atol=0)  # beyond: forgotten


@pytest.mark.parametrize("window", [None, 3])
def test_st_cache_deferred_frames_match_committing_them_first(st, window):
    """A rollout that defers each frame to the next forward (one pass per frame) gives the outputs and the
    cache of one that commits each frame by a pass of its own, within and beyond a sliding window."""
    x = torch.randn(2, 7, 4, 16)
    eager, lazy = STCache(max_frames=window), STCache(max_frames=window)
    st(x[:, :2], cache=eager)
    lazy.defer(x[:, :2])
    for t in range(2, 7):
        a = st(x[:, t:t + 1], cache=eager, commit=False)
        st(x[:, t:t + 1], cache=eager)
        b = st(x[:, t:t + 1], cache=lazy, commit=False)
        lazy.defer(x[:, t:t + 1])
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert lazy.position == 6 and eager.position == 7 and lazy.pending.shape[1] == 1
    st(x[:, :1], cache=lazy, commit=False)  # runs the last deferred frame
    assert lazy.position == 7 and lazy.pending is None
    for (ke, ve), (kl, vl) in zip(eager.kv, lazy.kv, strict=True):
        torch.testing.assert_close(kl, ke, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(vl, ve, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="deferred frames"):
        lazy.defer(x[:, :1])
        STTransformer(16, 1, 2, cond_dim=4)(x[:, :1], cache=lazy, cond=torch.zeros(2, 1, 4))


def test_attention_mask_is_causal_within_a_window():
    # 2 new positions after 3 cached ones, each seeing at most 3 positions, itself included
    expected = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(attention_mask(2, 3, causal=True, window=3), expected)
    assert attention_mask(1, 3, causal=True, window=4) is None  # one new position sees everything
    assert attention_mask(4, 0, causal=False, window=None) is None
    assert torch.equal(attention_mask(3, 0, causal=True, window=None), torch.ones(3, 3, dtype=torch.bool).tril())


def test_self_attention_one_new_position_matches_full_pass():
    torch.manual_seed(0)
    attn = SelfAttention(16, 2, causal=True, rotary=True)
    x = torch.randn(5, 4, 16)
    full, _ = attn(x)
    _, past = attn(x[:, :3])
    step, _ = attn(x[:, 3:4], past=past, start=3)
    torch.testing.assert_close(step, full[:, 3:4], rtol=1e-5, atol=1e-5)


def test_rotary_matches_the_rotation_it_stands_for():
    rot = RotaryEmbedding(8)
    positions = torch.tensor([0, 3, 7])
    x = torch.randn(2, 3, 9)[..., 1:]  # an odd storage offset: not viewable as complex without a copy
    angles = positions[:, None].float() * 10000.0 ** (-torch.arange(0, 8, 2).float() / 8)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    expected = torch.stack((x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()), -1)
    torch.testing.assert_close(rot(x, positions), expected.flatten(-2))
    half = rot(x.bfloat16(), positions)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected.flatten(-2), rtol=0.02, atol=0.02)


def test_rotary_is_relative():
    rot = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 8), torch.randn(1, 1, 8)
    dot = lambda a, b: (rot(q, torch.tensor([a])) * rot(k, torch.tensor([b]))).sum()  # noqa: E731
    torch.testing.assert_close(dot(3, 1), dot(10, 8))


def test_attention_shape_errors():
    with pytest.raises(ValueError, match="not divisible"):
        SelfAttention(10, 3)


def test_vector_quantizer_straight_through_and_usage():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4)
    z = torch.randn(2, 10, 4, requires_grad=True)
    out = vq(z)
    assert out.indices.shape == (2, 10) and out.quantized.shape == (2, 10, 4)
    torch.testing.assert_close(out.quantized.detach(), vq.lookup(out.indices))
    (out.quantized.sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert 1 <= out.perplexity <= 16 and 0 < out.codes_used <= 1


def test_vector_quantizer_restarts_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, usage_decay=0.5).train()
    z = torch.randn(64, 4)
    z[:, 0] += 10  # every input near one direction: most codes go unused
    first = vq(z).codes_used
    for _ in range(20):
        out = vq(z + 0.1 * torch.randn_like(z))
    assert out.codes_used > first, "dead codes were not restarted onto the data"
    with torch.no_grad():  # no restarts outside training
        weights = vq.codebook.weight.clone()
        vq(torch.randn(64, 4))
        assert torch.equal(weights, vq.codebook.weight)


def test_vector_quantizer_restarts_onto_the_worst_served_inputs():
    # Three tight clusters of inputs, codes 0 and 1 on the first two, the rest far from all: a restarted
    # code must land on the third cluster (served by nobody), not split one of the first two.
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 3, usage_decay=0.0).train()
    centres = torch.eye(3)
    with torch.no_grad():
        far = [-centres[2] - centres[0], -centres[2] - centres[1]]
        vq.codebook.weight.copy_(torch.stack([centres[0], centres[1], *far]))
    z = torch.cat([c + 0.01 * torch.randn(20, 3) for c in centres])  # 60 inputs
    vq(z)
    codes = vq.codes()
    served = [(z[20 * i: 20 * (i + 1)] @ codes.T).max(-1).values.mean().item() for i in range(3)]
    assert min(served) > 0.99, served  # the third cluster now has a code of its own
    assert (codes @ centres[0]).gt(0.99).sum() == 1 and (codes @ centres[1]).gt(0.99).sum() == 1  # no duplicates


def test_random_token_mask_rates():
    g = torch.Generator().manual_seed(0)
    mask = random_token_mask((4000, 64), 0.5, 1.0, generator=g)
    rates = mask.float().mean(1)
    assert rates.min() > 0.3 and rates.max() <= 1.0
    assert abs(rates.mean().item() - 0.75) < 0.01


def test_maskgit_decode_keeps_tokens_and_runs_all_steps():
    calls = []
    V, N, mask_id = 5, 12, 5

    def logits_fn(tokens):
        calls.append(tokens.clone())
        return torch.randn(tokens.shape[0], N, V, generator=torch.Generator().manual_seed(len(calls)))

    out = maskgit_decode(logits_fn, 2, N, mask_id, steps=4, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 4 and (calls[0] == mask_id).all()
    assert out.shape == (2, N) and (out != mask_id).all() and out.max() < V
    for before, after in zip(calls, calls[1:] + [out], strict=True):
        kept = before != mask_id
        assert torch.equal(after[kept], before[kept]), "a decided token changed"
    assert [int((c == mask_id).sum(1)[0]) for c in calls] == [N] + [int(N * masked_fraction(s, 4)) for s in range(3)]


def test_sample_categorical_follows_the_distribution():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3]).expand(3, 20000, 4)
    ids = sample_categorical(probs, torch.Generator().manual_seed(0))
    assert ids.shape == (3, 20000)
    share = torch.bincount(ids.flatten(), minlength=4).float() / ids.numel()
    assert share[1] == 0, "a zero-probability id was drawn"
    torch.testing.assert_close(share, probs[0, 0], atol=0.01, rtol=0)
    again = sample_categorical(probs, torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)


def test_maskgit_decode_is_reproducible():
    logits = torch.randn(1, 10, 7)

    def run(seed):
        return maskgit_decode(lambda t: logits, 1, 10, 7, steps=3, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(1), run(1))
    with pytest.raises(ValueError, match="steps >= 1"):
        maskgit_decode(lambda t: logits, 1, 10, 7, steps=0)


def test_fsq_round_trip_codes_and_gradient():
    from wm_hub.layers.quantizers import FiniteScalarQuantizer

    fsq = FiniteScalarQuantizer((8, 5, 5, 3))
    assert fsq.codebook_size == 600 and fsq.dim == 4
    z = (torch.randn(2, 7, 4) * 3).requires_grad_()
    q, ids = fsq(z)
    assert q.shape == (2, 7, 4) and ids.shape == (2, 7) and ids.min() >= 0 and ids.max() < 600
    assert q.abs().max() <= 1
    torch.testing.assert_close(fsq.indices_to_codes(ids), q.detach())
    every = torch.arange(600)
    assert torch.equal(fsq.codes_to_indices(fsq.indices_to_codes(every)), every)  # all codes reachable, distinct
    q.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[0, 600\)"):
        fsq.indices_to_codes(torch.tensor([600]))
    with pytest.raises(ValueError, match="levels >= 2"):
        FiniteScalarQuantizer((1, 4))


def test_conditioned_st_transformer_modulates_per_frame():
    torch.manual_seed(0)
    model = STTransformer(dim=16, depth=2, num_heads=2, cond_dim=8).eval()
    x, cond = torch.randn(2, 3, 4, 16), torch.randn(2, 3, 8)
    other = cond.clone()
    other[:, 1] = torch.randn(2, 8)
    with torch.no_grad():
        a, b = model(x, cond=cond), model(x, cond=other)
        torch.testing.assert_close(a[:, 0], b[:, 0])  # frame 1's condition does not reach frame 0
        assert (a[:, 1:] - b[:, 1:]).abs().min() > 0  # nor is it ignored by frame 1 and after
        cache = STCache()
        streamed = torch.cat([model(x[:, t: t + 1], cache=cache, cond=cond[:, t: t + 1]) for t in range(3)], 1)
        torch.testing.assert_close(streamed, a, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cond_dim=8"):
        model(x)
    with pytest.raises(ValueError, match=r"expected cond \(2, 3, 8\)"):
        model(x, cond=torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="cond_dim=None"):
        STTransformer(dim=16, depth=1, num_heads=2)(x, cond=cond)


def test_rotary_3d_depends_on_relative_grid_positions():
    from wm_hub.layers.attention import RotaryEmbedding3D

    rope = RotaryEmbedding3D(12)
    assert rope.dims == (4, 4, 4)
    q, k = torch.randn(12), torch.randn(12)
    grid = (3, 4, 5)

    def score(a: tuple[int, int, int], b: tuple[int, int, int]) -> torch.Tensor:
        x = torch.zeros(60, 12)
        ia, ib = (a[0] * 4 + a[1]) * 5 + a[2], (b[0] * 4 + b[1]) * 5 + b[2]  # (t, h, w) token order
        x[ia], x[ib] = q, k
        r = rope(x, grid)
        return r[ia] @ r[ib]

    torch.testing.assert_close(score((0, 1, 2), (1, 2, 0)), score((1, 2, 3), (2, 3, 1)))  # same offset
    assert (score((0, 1, 2), (1, 2, 0)) - score((0, 1, 2), (2, 2, 0))).abs() > 1e-4  # another offset
    torch.testing.assert_close(rope(torch.ones(60, 12), grid).norm(dim=-1), torch.full((60,), 12**0.5))
    with pytest.raises(ValueError, match=r"expected 3\*4\*5 = 60 tokens, got 59"):
        rope(torch.zeros(59, 12), grid)


def test_cross_attention_ignores_masked_context():
    from wm_hub.layers.attention import Attention

    torch.manual_seed(0)
    attention = Attention(16, 2, context_dim=8)
    x, context = torch.randn(1, 3, 16), torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, False, False]])
    changed = context.clone()
    changed[:, 2:] = torch.randn(1, 2, 8)  # only padding changes
    torch.testing.assert_close(attention(x, context, context_mask=mask), attention(x, changed, context_mask=mask))
    assert (attention(x, context) - attention(x, changed)).abs().max() > 1e-4
