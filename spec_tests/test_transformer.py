"""Multi-head attention, feed-forward network, transformer block (pre- and post-norm) and the
tiny GPT, each against PyTorch's own modules loaded with our weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness import torch_twins as tw
from llmref.spec.harness.checks import check_model_against_torch, flatten, oracles
from llmref.spec.harness.tolerances import F64, FD, assert_close, assert_grads_close
from llmref.transformer.gpt import GPTConfig

ACTIVATIONS = st.sampled_from(["relu", "gelu", "gelu_tanh"])


@st.composite
def dims(draw, max_heads=3, max_head_dim=3):
    H = draw(st.integers(1, max_heads))
    return draw(hs.sides(3)), draw(hs.sides(5)), H, H * draw(st.integers(1, max_head_dim))


def _padding(B, T, rng):
    """A key padding mask that may cut through the middle of a sequence (any pattern), never
    hiding position 0, so that no query under the causal mask is left with no key (torch
    returns NaN there; our convention for that case has its own test)."""
    mask = rng.random((B, T)) < 0.4
    mask[:, 0] = False
    return mask


@pytest.mark.claim("L003-qkv-projections")
@pytest.mark.claim("L004-qkv")
@given(dims(), st.booleans(), st.booleans(), hs.seeds)
def test_mha_matches_torch_multihead_attention(impl, d, causal, pad, seed):
    B, T, H, C = d
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, C))
    params = hp.random_mha(C, rng)
    padding = _padding(B, T, rng) if pad else None
    pad_t = None if padding is None else torch.from_numpy(padding)
    check_model_against_torch(
        impl, "mha", x, params, lambda x, p: tw.mha(x, p, H, causal, pad_t), seed,
        {"n_heads": H, "causal": causal, "key_padding_mask": padding})


@pytest.mark.claim("L003-ffn-formula")
@given(dims(), st.integers(1, 9), ACTIVATIONS, hs.seeds)
def test_ffn_matches_torch(impl, d, d_ff, activation, seed):
    B, T, _, C = d
    rng = np.random.default_rng(seed)
    params = hp.random_ffn(C, d_ff, rng, scale=1.0)
    act = tw.ACTIVATIONS[activation]

    def torch_ffn(x, p):
        h = act(F.linear(x, p["fc"]["W"].T, p["fc"]["b"]))
        return F.linear(h, p["proj"]["W"].T, p["proj"]["b"])

    check_model_against_torch(impl, "ffn", rng.standard_normal((B, T, C)), params, torch_ffn,
                              seed, {"activation": activation},
                              rounding_scale=3.0 if activation.startswith("gelu") else 0.0)


@pytest.mark.claim("L003-add-and-norm")
@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
@given(d=dims(), d_ff=st.integers(1, 9), activation=ACTIVATIONS, causal=st.booleans(),
       pad=st.booleans(), eps=st.sampled_from([1e-5, 1e-5, 1e-3, 0.5]), seed=hs.seeds)
def test_block_matches_torch_transformer_encoder_layer(impl, norm_first, d, d_ff, activation,
                                                       causal, pad, eps, seed):
    """Both orders against nn.TransformerEncoderLayer(norm_first=...) with our weights, with
    padding masks that cut through the middle of a sequence and several layer-norm eps."""
    B, T, H, C = d
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, C))
    params = hp.random_block(C, d_ff, rng)
    padding = _padding(B, T, rng) if pad else None
    pad_t = None if padding is None else torch.from_numpy(padding)
    check_model_against_torch(
        impl, "block", x, params,
        lambda x, p: tw.block(x, p, H, norm_first, activation, causal, pad_t, eps), seed,
        {"n_heads": H, "norm_first": norm_first, "activation": activation, "causal": causal,
         "key_padding_mask": padding, "eps": eps},
        rounding_scale=10.0 if activation.startswith("gelu") else 0.0)


@st.composite
def gpt_case(draw):
    H = draw(st.integers(1, 2))
    config = GPTConfig(vocab_size=draw(st.integers(2, 9)), context_len=draw(st.integers(1, 6)),
                       d_model=H * draw(st.integers(1, 3)), n_heads=H,
                       n_layers=draw(st.integers(1, 2)), d_ff=draw(st.integers(1, 6)),
                       activation=draw(ACTIVATIONS), norm_first=draw(st.booleans()),
                       tie_weights=draw(st.booleans()))
    rng = np.random.default_rng(draw(hs.seeds))
    params = hp.random_gpt(config, rng)
    T = draw(st.integers(1, config.context_len))
    ids = rng.integers(0, config.vocab_size, size=(draw(hs.sides(3)), T))
    return config, params, ids


def _rounding(config):
    return 10.0 if config.activation.startswith("gelu") else 0.0


@pytest.mark.claim("L002-autograd")
@pytest.mark.claim("L003-backprop-chain-rule")
@given(gpt_case(), hs.seeds)
def test_gpt_logits_and_gradients_match_torch(impl, case, seed):
    """Logits and every parameter gradient against the torch GPT (TransformerEncoderLayer
    blocks) built from the same parameter dict; tied and untied heads, both norm orders."""
    config, params, ids = case
    check_model_against_torch(impl, "gpt", ids, params,
                              lambda ids, p: tw.gpt_logits(ids, p, config), seed,
                              {"config": config}, rounding_scale=_rounding(config))


@pytest.mark.claim("L002-autograd")
@pytest.mark.claim("L003-backprop-chain-rule")
@pytest.mark.claim("L000-backprop-flow")
@pytest.mark.claim("L004-ce-for-lm")
@given(gpt_case())
def test_gpt_loss_and_grads_match_torch(impl, case):
    """``loss, grads = gpt.loss_and_grads(...)`` for a whole batch: next-token cross-entropy
    and every parameter gradient."""
    config, params, ids = case
    targets = np.roll(ids, -1, axis=1)
    targets[:, -1] = -1                # nothing to predict after the end (a non-default index)
    if np.all(targets == -1):
        targets[0, 0] = ids[0, 0]
    p_t = tw.tensors(params)
    logits = tw.gpt_logits(torch.from_numpy(ids), p_t, config)
    loss_t = F.cross_entropy(logits.reshape(-1, config.vocab_size),
                             torch.from_numpy(targets).reshape(-1), ignore_index=-1)
    loss_t.backward()
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, config, ignore_index=-1)
    assert_close(loss, loss_t.item(), F64, name="loss", reference_scale=_rounding(config))
    assert_grads_close(flatten(grads), flatten(tw.grads(p_t)), F64,
                       np.array(max(1.0, _rounding(config))))


def torch_block_without_residual(x, p, n_heads, norm_first, activation, causal, eps=1e-5):
    """A block with no residual sums, from torch's multi-head attention module and functional
    layer norm and linear layers: pre-norm ``ffn(ln2(mha(ln1(x))))``, post-norm
    ``ln2(ffn(ln1(mha(x))))``."""
    C = x.shape[-1]
    act = tw.ACTIVATIONS[activation]

    def ln(t, q):
        return F.layer_norm(t, (C,), q["gamma"], q["beta"], eps)

    def ffn(t):
        f = p["ffn"]
        return F.linear(act(F.linear(t, f["fc"]["W"].T, f["fc"]["b"])), f["proj"]["W"].T,
                        f["proj"]["b"])

    if norm_first:
        return ffn(ln(tw.mha(ln(x, p["ln1"]), p["attn"], n_heads, causal), p["ln2"]))
    return ln(ffn(ln(tw.mha(x, p["attn"], n_heads, causal), p["ln1"])), p["ln2"])


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
@given(d=dims(), d_ff=st.integers(1, 9), activation=ACTIVATIONS, causal=st.booleans(),
       seed=hs.seeds)
def test_block_without_residual_matches_torch(impl, norm_first, d, d_ff, activation, causal,
                                              seed):
    """residual=False against a torch block assembled without the two residual sums: output,
    input gradient and every parameter gradient (torch's encoder layer always adds them)."""
    B, T, H, C = d
    rng = np.random.default_rng(seed)
    params = hp.random_block(C, d_ff, rng)
    check_model_against_torch(
        impl, "block", rng.standard_normal((B, T, C)), params,
        lambda x, p: torch_block_without_residual(x, p, H, norm_first, activation, causal),
        seed, {"n_heads": H, "norm_first": norm_first, "activation": activation,
               "causal": causal, "residual": False},
        rounding_scale=10.0 if activation.startswith("gelu") else 0.0)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
def test_block_without_residual_finite_differences(impl, norm_first):
    """The second oracle on residual=False: the input gradient against central differences."""
    rng = np.random.default_rng(0)
    params = hp.random_block(4, 3, rng)
    x = rng.standard_normal((1, 3, 4))
    kwargs = {"n_heads": 2, "norm_first": norm_first, "residual": False}
    out, cache = impl("block.forward")(x, params, **kwargs)
    upstream = rng.standard_normal(out.shape)
    grads = impl("block.backward")(upstream, cache)
    expected = oracles.numerical_vjp(
        lambda x: impl("block.forward")(x, params, **kwargs)[0], {"x": x}, upstream, ["x"])
    assert_grads_close({"x": grads["x"]}, expected, FD, upstream)


def torch_gpt_by_blocks(ids, p, config):
    """The GPT assembled block by block from the torch twins above, so that options the
    TorchGPT module lacks (residual=False) are covered; eps comes from the configuration."""
    T = ids.shape[1]
    h = p["wte"]["W"][ids] + p["wpe"]["W"][:T]
    for bp in p["blocks"]:
        if config.residual:
            h = tw.block(h, bp, config.n_heads, config.norm_first, config.activation,
                         eps=config.eps)
        else:
            h = torch_block_without_residual(h, bp, config.n_heads, config.norm_first,
                                             config.activation, True, config.eps)
    h = F.layer_norm(h, (config.d_model,), p["ln_f"]["gamma"], p["ln_f"]["beta"], config.eps)
    head = p["wte"]["W"].T if config.tie_weights else p["lm_head"]["W"]
    return h @ head


@pytest.mark.parametrize("residual", [True, False], ids=["residual", "no-residual"])
@given(case=gpt_case(), eps=st.sampled_from([1e-3, 0.1, 1.0]), seed=hs.seeds)
def test_gpt_with_another_eps_matches_torch(impl, residual, case, eps, seed):
    """GPTConfig's eps (every layer norm, the final one included) and residual options,
    against the GPT assembled from torch blocks: logits and every parameter gradient."""
    config, params, ids = case
    config = GPTConfig(**{**config.__dict__, "eps": eps, "residual": residual})
    check_model_against_torch(impl, "gpt", ids, params,
                              lambda ids, p: torch_gpt_by_blocks(ids, p, config), seed,
                              {"config": config}, rounding_scale=_rounding(config))


# ------------------------------------------------------------------ every option of the layers
# The Llama options (separate or fused q/k/v, grouped-query heads, rotary positions given
# per row, per sequence or by default, no biases, RMSNorm, SwiGLU) mixed with the GPT-2 ones
# (padding masks with holes, no causal mask, post-norm, residual=False, another eps), each
# case against a torch composition built from torch's functional operations.

def _allowed(B, T, causal, padding):
    """(B, 1, T, T) boolean for SDPA: the causal triangle (or everything) less padding keys."""
    allowed = torch.ones(T, T, dtype=torch.bool)
    allowed = (allowed.tril() if causal else allowed)[None, None].expand(B, 1, T, T)
    if padding is not None:
        allowed = allowed & ~torch.from_numpy(padding)[:, None, None, :]
    return allowed


def _rotary_positions(kind, B, T, rng):
    """Rotary positions as the reference takes them ((T,), (B, T) or None) and as (B, T) for
    the torch twin."""
    if kind == "rows":
        positions = rng.integers(0, 50, size=(B, T))
    elif kind == "sequence":
        positions = rng.integers(0, 50, size=T)
    else:
        positions = None
    full = np.arange(T) if positions is None else positions
    return positions, torch.from_numpy(np.broadcast_to(full, (B, T)).copy())


# (n_heads, n_kv_heads, fused, bias, rotary positions, rope_theta, causal)
MHA_OPTIONS = [
    (4, 2, False, False, "rows", 10000.0, True),
    (2, 1, True, True, "sequence", 100.0, False),
    (2, 2, False, True, "default", 7.5, True),
    (3, 1, True, False, None, None, False),
]


@pytest.mark.parametrize("options", MHA_OPTIONS, ids=lambda o: "-".join(map(str, o)))
@given(B=hs.sides(3), T=hs.sides(5), pad=st.booleans(), seed=hs.seeds)
def test_mha_options_with_padding_match_torch(impl, options, B, T, pad, seed):
    """Grouped-query heads, fused or separate projections, biases or none, rotary positions
    per row, per sequence or by default (0 .. T-1) with any base, with or without the causal
    mask, and a padding mask with holes: output, x and every parameter against SDPA."""
    H, H_kv, fused, bias, rotary, theta, causal = options
    C = 2 * H
    rng = np.random.default_rng(seed)
    params = hp.random_mha(C, rng, H, H_kv, fused, bias)
    padding = _padding(B, T, rng) if pad else None
    positions, pos_t = _rotary_positions(rotary, B, T, rng)
    kwargs = {"n_heads": H, "causal": causal, "key_padding_mask": padding,
              "n_kv_heads": H_kv, "rope_theta": theta, "positions": positions}
    allowed = _allowed(B, T, causal, padding)
    check_model_against_torch(
        impl, "mha", rng.standard_normal((B, T, C)), params,
        lambda x, p: tw.attention_layer(x, p, H, H_kv, allowed, pos_t, theta), seed, kwargs)


def torch_block_any(x, p, n_heads, n_kv_heads, norm_first, activation, norm, eps, residual,
                    allowed, positions=None, theta=None):
    """A block with any of the options, from tw.attention_layer, F.layer_norm or F.rms_norm
    and the feed-forward (SwiGLU or not); ``residual=False`` drops both residual sums."""
    def attend(a):
        return tw.attention_layer(a, p["attn"], n_heads, n_kv_heads, allowed, positions, theta)

    def nm(a, name):
        return tw._norm(a, p[name], norm, eps)

    def ff(a):
        return tw.feed_forward(a, p["ffn"], activation)

    def add(branch, skip):
        return branch + skip if residual else branch

    if norm_first:
        h = add(attend(nm(x, "ln1")), x)
        return add(ff(nm(h, "ln2")), h)
    h = nm(add(attend(x), x), "ln1")
    return nm(add(ff(h), h), "ln2")


# (norm, activation, norm_first, residual, eps, n_heads, n_kv_heads, fused, bias, rotary,
#  causal)
BLOCK_OPTIONS = [
    ("rms", "swiglu", True, True, 1e-5, 4, 2, False, False, "rows", True),
    ("rms", "relu", False, False, 0.1, 2, 1, True, True, "default", False),
    ("layer", "swiglu", True, False, 0.5, 2, 2, False, True, None, True),
    ("layer", "gelu", False, True, 1e-3, 2, 1, True, False, "sequence", True),
    ("rms", "gelu_tanh", True, True, 2.0, 1, 1, True, True, None, False),
]


@pytest.mark.parametrize("options", BLOCK_OPTIONS, ids=lambda o: "-".join(map(str, o)))
@given(B=hs.sides(2), T=hs.sides(4), d_ff=hs.sides(5), pad=st.booleans(), seed=hs.seeds)
def test_block_with_any_options_matches_torch(impl, options, B, T, d_ff, pad, seed):
    """RMSNorm or LayerNorm (with or without beta), SwiGLU or a plain activation, pre- or
    post-norm, with or without residual sums, any eps, grouped-query heads, separate q/k/v,
    biases or none, rotary positions, causal or not, padding with holes: output, x and
    every parameter against the torch composition."""
    norm, activation, norm_first, residual, eps, H, H_kv, fused, bias, rotary, causal = options
    C = 2 * H
    config = GPTConfig(vocab_size=2, context_len=4, d_model=C, n_heads=H, n_layers=1,
                       d_ff=d_ff, activation=activation, norm=norm, n_kv_heads=H_kv,
                       bias=bias, fused_qkv=fused)
    rng = np.random.default_rng(seed)
    params = hp.random_block(C, d_ff, rng, config)
    padding = _padding(B, T, rng) if pad else None
    positions, pos_t = _rotary_positions(rotary, B, T, rng)
    theta = None if rotary is None else 50.0
    allowed = _allowed(B, T, causal, padding)
    kwargs = {"n_heads": H, "norm_first": norm_first, "activation": activation,
              "causal": causal, "key_padding_mask": padding, "eps": eps,
              "residual": residual, "norm": norm, "n_kv_heads": H_kv, "rope_theta": theta,
              "positions": positions}
    check_model_against_torch(
        impl, "block", rng.standard_normal((B, T, C)), params,
        lambda x, p: torch_block_any(x, p, H, H_kv, norm_first, activation, norm, eps,
                                     residual, allowed, pos_t, theta),
        seed, kwargs, rounding_scale=10.0 if activation.startswith("gelu") else 0.0)


# ------------------------------------------------------------------ the GPT: options, masks,
# positions, the loss and decoding with a KV cache

GPT_OPTIONS = [
    GPTConfig(vocab_size=7, context_len=6, d_model=8, n_heads=4, n_layers=2, d_ff=6,
              activation="swiglu", tie_weights=False, eps=1e-3, norm="rms", position="rope",
              rope_theta=100.0, n_kv_heads=2, bias=False, fused_qkv=False),
    GPTConfig(vocab_size=5, context_len=6, d_model=4, n_heads=2, n_layers=2, d_ff=3,
              activation="gelu", norm_first=False, eps=0.1, residual=False),
    GPTConfig(vocab_size=6, context_len=6, d_model=4, n_heads=2, n_layers=1,
              activation="relu", norm_first=False, position="rope", rope_theta=30.0,
              n_kv_heads=1, residual=False),
    GPTConfig(vocab_size=6, context_len=6, d_model=4, n_heads=2, n_layers=1, d_ff=5,
              activation="swiglu", tie_weights=False, norm="rms", eps=0.5),
]


def _config_id(config):
    return "-".join(str(getattr(config, f)) for f in ("activation", "norm", "position",
                                                      "norm_first", "residual", "tie_weights"))


def torch_gpt_hidden(ids, p, config, mask=None, position_ids=None):
    """The GPT's final hidden states (before the head) with every option, residual=False
    included, from torch operations: positions from the mask (Hugging Face's rule) unless
    given, padding keys hidden."""
    B, T = ids.shape
    mask_t = None if mask is None else torch.from_numpy(mask)
    positions = tw.padded_positions(mask_t, B, T) if position_ids is None else \
        torch.from_numpy(position_ids)
    allowed = tw.causal_allowed(mask_t, B, T)
    theta = config.rope_theta if config.position == "rope" else None
    h = p["wte"]["W"][torch.from_numpy(ids)]
    if config.position == "learned":
        h = h + p["wpe"]["W"][positions]
    for bp in p["blocks"]:
        h = torch_block_any(h, bp, config.n_heads, config.kv_heads, config.norm_first,
                            config.activation, config.norm, config.eps, config.residual,
                            allowed, positions, theta)
    return tw._norm(h, p["ln_f"], config.norm, config.eps)


def _torch_head(p, config):
    return p["wte"]["W"].T if config.tie_weights else p["lm_head"]["W"]


def _vjp(out, leaves: dict, upstream) -> dict:
    """{name: gradient of sum(upstream * out)} for the torch leaves (zeros where unused)."""
    got = torch.autograd.grad(out, list(leaves.values()), torch.from_numpy(upstream),
                              retain_graph=True, allow_unused=True)
    return {k: np.zeros(tuple(v.shape)) if g is None else g.numpy()
            for (k, v), g in zip(leaves.items(), got, strict=True)}


def _mask_with_holes(rng, B, T):
    """Padding anywhere (holes in the middle, whole rows), except that row 0 is all real, so
    that it fills the context."""
    mask = rng.random((B, T)) < 0.6
    mask[0] = True
    return mask


@pytest.mark.parametrize("config", GPT_OPTIONS, ids=_config_id)
@given(B=hs.sides(3), masked=st.booleans(), explicit=st.booleans(), seed=hs.seeds)
def test_gpt_and_its_trunk_with_masks_and_positions_match_torch(impl, config, B, masked,
                                                                explicit, seed):
    """gpt.forward / backward and gpt.hidden_forward / hidden_backward for a sequence that
    fills the context, with an attention mask with holes (or none) and explicit position ids
    (or the mask's): the outputs at real tokens and every parameter gradient (upstream
    random on real tokens, 0 on padding) against the torch composition."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    T = config.context_len
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    mask = _mask_with_holes(rng, B, T) if masked else None
    real = np.ones((B, T), bool) if mask is None else mask
    position_ids = rng.integers(0, T, size=(B, T)) if explicit else None
    p_t = tw.tensors(params)
    h_t = torch_gpt_hidden(ids, p_t, config, mask, position_ids)
    logits_t = h_t @ _torch_head(p_t, config)
    trunk = {k: v for k, v in flatten(p_t).items() if not k.startswith("lm_head")}
    d_logits = rng.standard_normal(tuple(logits_t.shape)) * real[..., None]
    d_h = rng.standard_normal(tuple(h_t.shape)) * real[..., None]
    scale = 10.0 if config.activation.startswith("gelu") else 1.0
    kwargs = {"attention_mask": mask, "position_ids": position_ids}

    logits, cache = impl("gpt.forward")(ids, params, config, **kwargs)
    assert_close(logits[real], logits_t.detach().numpy()[real], F64, name="logits",
                 reference_scale=scale)
    assert_grads_close(flatten(impl("gpt.backward")(d_logits, cache)),
                       _vjp(logits_t, flatten(p_t), d_logits), F64, d_logits * scale)
    h, cache = impl("gpt.hidden_forward")(ids, params, config, **kwargs)
    assert_close(h[real], h_t.detach().numpy()[real], F64, name="hidden states",
                 reference_scale=scale)
    assert_grads_close(flatten(impl("gpt.hidden_backward")(d_h, cache)),
                       _vjp(h_t, trunk, d_h), F64, d_h * scale)


@pytest.mark.parametrize("config", GPT_OPTIONS, ids=_config_id)
@given(B=hs.sides(3), explicit=st.booleans(), seed=hs.seeds)
def test_gpt_loss_with_a_mask_matches_torch(impl, config, B, explicit, seed):
    """gpt.loss_and_grads with an attention mask with holes (targets at padding count for
    nothing, whatever they hold), a non-default ignore_index and a loss scale dloss: the loss
    and every gradient against torch's cross-entropy over the counted targets."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    T = config.context_len
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    mask = _mask_with_holes(rng, B, T)
    targets = rng.integers(0, config.vocab_size, size=(B, T))
    targets[rng.random((B, T)) < 0.2] = -7
    targets[0, 0] = ids[0, 0]                                   # one target that counts
    position_ids = rng.integers(0, T, size=(B, T)) if explicit else None
    dloss = float(rng.uniform(0.5, 3.0))
    p_t = tw.tensors(params)
    logits_t = torch_gpt_hidden(ids, p_t, config, mask, position_ids) @ _torch_head(p_t,
                                                                                     config)
    counted = torch.from_numpy(mask & (targets != -7))
    loss_t = F.cross_entropy(logits_t[counted], torch.from_numpy(targets)[counted])
    (dloss * loss_t).backward()
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, config, ignore_index=-7,
                                             dloss=dloss, attention_mask=mask,
                                             position_ids=position_ids)
    scale = 10.0 if config.activation.startswith("gelu") else 1.0
    assert_close(loss, loss_t.item(), F64, name="loss", reference_scale=scale)
    assert_grads_close(flatten(grads), flatten(tw.grads(p_t)), F64, np.array(dloss * scale))


@pytest.mark.parametrize("config", GPT_OPTIONS, ids=_config_id)
@given(B=hs.sides(3), seed=hs.seeds)
def test_decoding_in_chunks_with_padding_anywhere_equals_the_forward(impl, config, B, seed):
    """Prefill, then chunks of 1..3 new tokens whose masks may hold padding anywhere (the
    prompt's, or a step's): every real token's logits equal gpt.forward's on the whole
    sequence with the whole mask, and the cache holds every key so far ((B, H_kv, S, D) per
    layer), the whole mask and each row's count of real tokens.  Row 0 is all real and ends
    exactly at the context length."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    T = config.context_len
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    mask = _mask_with_holes(rng, B, T)
    full, _ = impl("gpt.forward")(ids, params, config, attention_mask=mask)
    scale = 10.0 if config.activation.startswith("gelu") else 0.0
    start, cache = 0, None
    while start < T:
        end = min(T, start + int(rng.integers(1, 4)))
        new = mask[:, start:end]
        logits, cache = impl("gpt.decode")(ids[:, start:end], params, config, cache,
                                           attention_mask=None if new.all() else new)
        assert_close(logits[new], full[:, start:end][new], F64,
                     name=f"tokens {start}..{end - 1}", reference_scale=scale)
        np.testing.assert_array_equal(cache["mask"], mask[:, :end])
        np.testing.assert_array_equal(cache["next_position"], mask[:, :end].sum(axis=1))
        shape = (B, config.kv_heads, end, config.head_dim)
        assert [k.shape for k in cache["k"]] == [v.shape for v in cache["v"]] == \
            [shape] * config.n_layers
        start = end


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_embeddings_and_head_pieces_match_torch(impl, position):
    """The GPT's public pieces one by one: embed_forward (token plus learned position rows
    0 .. T-1, or token rows only with rotary positions) and embed_backward (the position
    gradient summed over the batch; none with rotary positions); head_backward against
    torch; head and add_head_grad, tied (the token table's transpose, a view; the head's
    gradient added to the table's in place) and untied (lm_head, stored)."""
    config = GPTConfig(vocab_size=5, context_len=6, d_model=4, n_heads=2, n_layers=1,
                       position=position)
    rng = np.random.default_rng(5)
    params = hp.random_gpt(config, rng)
    ids = rng.integers(0, 5, size=(3, 4))
    p_t = tw.tensors(params)
    h_t = p_t["wte"]["W"][torch.from_numpy(ids)]
    if position == "learned":
        h_t = h_t + p_t["wpe"]["W"][:4]
    h0, cache = impl("gpt.embed_forward")(ids, params, config)
    assert_close(h0, h_t.detach().numpy(), F64, name="embeddings")
    dh = rng.standard_normal(h0.shape)
    h_t.backward(torch.from_numpy(dh))
    expected = {k: v for k, v in flatten(tw.grads(p_t)).items() if k.split(".")[0] in
                ("wte", "wpe")}
    assert_grads_close(flatten(impl("gpt.embed_backward")(dh, cache)), expected, F64, dh)

    h = rng.standard_normal((3, 4, 4))
    head_w = rng.standard_normal((4, 5))
    dlogits = rng.standard_normal((3, 4, 5))
    h_t, w_t = (torch.tensor(a, requires_grad=True) for a in (h, head_w))
    (h_t @ w_t).backward(torch.from_numpy(dlogits))
    dh, d_head = impl("gpt.head_backward")(dlogits, h, head_w)
    assert_grads_close({"h": dh, "head": d_head}, {"h": h_t.grad.numpy(),
                                                   "head": w_t.grad.numpy()}, F64, dlogits)

    head = impl("gpt.head")(params, config)
    np.testing.assert_array_equal(head, params["wte"]["W"].T)
    assert np.shares_memory(head, params["wte"]["W"])
    grads = {"wte": {"W": rng.standard_normal((5, 4))}, "blocks": [], "ln_f": {}}
    if position == "learned":
        grads["wpe"] = {"W": rng.standard_normal((6, 4))}
    table = grads["wte"]["W"].copy()
    assert impl("gpt.add_head_grad")(grads, d_head, config) is grads
    assert_close(grads["wte"]["W"], table + d_head.T, F64, name="tied table gradient")
    untied = GPTConfig(**{**config.__dict__, "tie_weights": False})
    untied_params = {**params, "lm_head": {"W": head_w}}
    assert impl("gpt.head")(untied_params, untied) is head_w
    grads["wte"]["W"] = table.copy()
    impl("gpt.add_head_grad")(grads, d_head, untied)
    np.testing.assert_array_equal(grads["wte"]["W"], table)
    np.testing.assert_array_equal(grads["lm_head"]["W"], d_head)


def test_positions_from_mask_count_real_tokens_only(impl):
    """max(cumsum(mask) - 1, 0): holes keep the count, padding before the first real token
    and a row of padding get 0."""
    mask = np.array([[False, True, False, True, True], [True] * 5, [False] * 5,
                     [True, False, False, False, True]])
    expected = [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0] * 5, [0, 0, 0, 0, 1]]
    np.testing.assert_array_equal(impl("gpt.positions_from_mask")(mask), expected)


def test_the_smallest_sizes_are_accepted(impl):
    """Every size may be 1: one token of a one-word vocabulary, width 1, one head, one layer,
    a feed-forward of width 1 (the initialisers and the GPT against torch)."""
    rng = np.random.default_rng(6)
    assert impl("mha.init")(1, 1, rng)["qkv"]["W"].shape == (1, 3)
    assert impl("ffn.init")(1, 1, rng)["fc"]["W"].shape == (1, 1)
    assert impl("block.init")(1, 1, 1, rng)["ffn"]["proj"]["W"].shape == (1, 1)
    impl("mha.check_heads")("test", 1, 1, 1)
    config = GPTConfig(vocab_size=1, context_len=1, d_model=1, n_heads=1, n_layers=1, d_ff=1)
    params = hp.random_gpt(config, rng)
    check_model_against_torch(impl, "gpt", np.zeros((1, 1), dtype=np.int64), params,
                              lambda ids, p: tw.gpt_logits(ids, p, config), 6,
                              {"config": config})


# ------------------------------------------------------------------ bad input: whole messages

def _gpt_parts(**options):
    config = GPTConfig(**{"vocab_size": 5, "context_len": 4, "d_model": 4, "n_heads": 2,
                          "n_layers": 2, **options})
    return config, hp.random_gpt(config, np.random.default_rng(0))


def _mha_odd_head(impl, separate):
    rng = np.random.default_rng(0)
    params = hp.random_mha(6, rng, 2, fused=not separate)
    return impl("mha.forward")(rng.standard_normal((1, 2, 6)), params, 2, rope_theta=1e4)


def _block_odd_head(impl):
    rng = np.random.default_rng(0)
    return impl("block.forward")(rng.standard_normal((1, 2, 6)), hp.random_block(6, 3, rng),
                                 2, rope_theta=1e4)


def _mha_with(impl, params, n_heads, C, **kwargs):
    return impl("mha.forward")(np.zeros((1, 2, C)), params, n_heads, **kwargs)


def _gpt_with(impl, fn="gpt.forward", ids=None, edit=None, **kwargs):
    config, params = _gpt_parts()
    if edit is not None:
        edit(params)
    ids = np.zeros((1, 2), dtype=np.int64) if ids is None else ids
    if "targets" in kwargs:                                 # loss_and_grads(ids, targets, ...)
        return impl(fn)(ids, kwargs.pop("targets"), params, config, **kwargs)
    return impl(fn)(ids, params, config, **kwargs)


def _gpt_untied_with(impl, edit):
    """gpt.forward of a model with its own head (tie_weights=False), params edited."""
    config, params = _gpt_parts(tie_weights=False)
    edit(params)
    return impl("gpt.forward")(np.zeros((1, 2), np.int64), params, config)


def _decode_twice(impl, edit, B=1, new=1):
    """Prefill 3 tokens of B rows, then decode ``new`` tokens of one row with the edited
    cache."""
    config, params = _gpt_parts()
    _, cache = impl("gpt.decode")(np.zeros((B, 3), dtype=np.int64), params, config)
    return impl("gpt.decode")(np.zeros((1, new), dtype=np.int64), params, config, edit(cache))


def _block_with_proj(C, C_out):
    params = hp.random_block(C, 3, np.random.default_rng(0))
    params["attn"]["proj"] = hp.random_linear(C, C_out, np.random.default_rng(1))
    return params


def _gpt_bias_free(impl, edit, **options):
    config, params = _gpt_parts(bias=False, **options)
    edit(params)
    return impl("gpt.forward")(np.zeros((1, 2), np.int64), params, config)


def _gpt_extra_key(impl, path, key, **options):
    """A bias-free GPT whose params['blocks'][path[0]][path[1]]... holds an extra ``key``."""
    def edit(params):
        part = params["blocks"]
        for k in path:
            part = part[k]
        part[key] = np.zeros(1)
    return _gpt_bias_free(impl, edit, **options)


def _block_with(impl, part, sub, value):
    """block.forward (C = 4, two heads) with params[part] (or params[part][sub]) replaced."""
    params = hp.random_block(4, 3, np.random.default_rng(0))
    if sub is None:
        params[part] = value
    else:
        params[part][sub] = value
    return impl("block.forward")(np.zeros((1, 2, 4)), params, 2)


def _ffn_with(impl, part, value):
    """ffn.forward (C = 4, d_ff = 3) with params[part] replaced (None: left out)."""
    params = hp.random_ffn(4, 3, np.random.default_rng(0))
    if value is None:
        del params[part]
    else:
        params[part] = value
    return impl("ffn.forward")(np.zeros((1, 2, 4)), params)


def _add_head_grad(impl, d_head, wte_grad=None):
    """gpt.add_head_grad for a GPT-2 config (V = 5, C = 4) and trunk gradients."""
    config = _gpt_parts()[0]
    grads = {"wte": {"W": np.zeros((5, 4)) if wte_grad is None else wte_grad},
             "wpe": {"W": np.zeros((4, 4))}, "blocks": [], "ln_f": {}}
    return impl("gpt.add_head_grad")(grads, d_head, config)


BAD_INPUT = {
    "mha: odd head dimension with rotary positions (fused)": (
        lambda impl: _mha_odd_head(impl, False), ValueError,
        "mha.forward: rotary embeddings need an even head dimension, got 3"),
    "mha: odd head dimension with rotary positions (separate q/k/v)": (
        lambda impl: _mha_odd_head(impl, True), ValueError,
        "mha.forward: rotary embeddings need an even head dimension, got 3"),
    "block: odd head dimension with rotary positions": (
        _block_odd_head, ValueError,
        "block.forward: rotary embeddings need an even head dimension, got 3"),
    "mha: fused width not a multiple of 3 H": (
        lambda impl: _mha_with(impl, {"qkv": hp.random_linear(6, 10, np.random.default_rng(0)),
                                      "proj": hp.random_linear(6, 6, np.random.default_rng(0))},
                               2, 6), ValueError,
        "mha.forward: argument params['qkv']['W'] must have a number of columns divisible by "
        "3 * n_heads = 6, got shape (6, 10)"),
    "mha: fused width not a multiple of H + 2 H_kv": (
        lambda impl: _mha_with(impl, {"qkv": hp.random_linear(6, 10, np.random.default_rng(0)),
                                      "proj": hp.random_linear(6, 6, np.random.default_rng(0))},
                               2, 6, n_kv_heads=1), ValueError,
        "mha.forward: argument params['qkv']['W'] must have a number of columns divisible by "
        "n_heads + 2 * n_kv_heads = 4, got shape (6, 10)"),
    "mha: separate q width not a multiple of H": (
        lambda impl: _mha_with(impl, {**hp.random_mha(8, np.random.default_rng(0), 4,
                                                      fused=False),
                                      "q": hp.random_linear(8, 6, np.random.default_rng(0))},
                               4, 8), ValueError,
        "mha.forward: argument params['q']['W'] must have a number of columns divisible by "
        "n_heads = 4, got shape (8, 6)"),
    "mha: rotary positions of another length": (
        lambda impl: _mha_with(impl, hp.random_mha(4, np.random.default_rng(0), 2), 2, 4,
                               rope_theta=1e4, positions=np.arange(3)), ValueError,
        "mha.forward: argument 'positions' must have shape (T,) = (2,) or (B, T) = (1, 2), got "
        "shape (3,)"),
    "check_heads: n_heads not dividing d_model": (
        lambda impl: impl("mha.check_heads")("caller", 6, 4), ValueError,
        "caller: argument 'n_heads' must divide d_model = 6, got n_heads = 4"),
    "check_heads: n_kv_heads not dividing n_heads": (
        lambda impl: impl("mha.check_heads")("caller", 8, 4, 3), ValueError,
        "caller: argument 'n_kv_heads' must divide n_heads = 4, got n_kv_heads = 3"),
    "block: unknown norm": (
        lambda impl: impl("block.forward")(np.zeros((1, 2, 4)),
                                           hp.random_block(4, 3, np.random.default_rng(0)), 2,
                                           norm="batch"), ValueError,
        "block.forward: argument 'norm' must be one of ['layer', 'rms'], got 'batch'"),
    "GPTConfig: odd head dimension with rotary positions": (
        lambda impl: impl("gpt.GPTConfig")(5, 4, 6, 2, 1, position="rope"), ValueError,
        "GPTConfig: rotary embeddings need an even head dimension, got d_model / n_heads = 3"),
    "GPTConfig: unknown position": (
        lambda impl: impl("gpt.GPTConfig")(5, 4, 4, 2, 1, position="alibi"), ValueError,
        "GPTConfig: argument 'position' must be one of ['learned', 'rope'], got 'alibi'"),
    "GPTConfig: an int for a flag": (
        lambda impl: impl("gpt.GPTConfig")(5, 4, 4, 2, 1, fused_qkv=1), TypeError,
        "GPTConfig: argument 'fused_qkv' must be a bool, got 1"),
    "gpt: fewer blocks than n_layers": (
        lambda impl: _gpt_with(impl, edit=lambda p: p["blocks"].pop()), ValueError,
        "gpt.forward: argument params['blocks'] must be a list of n_layers = 2 block parameter "
        "dicts, got 1"),
    "gpt: blocks not a list": (
        lambda impl: _gpt_with(impl, edit=lambda p: p.update(blocks={})), ValueError,
        "gpt.forward: argument params['blocks'] must be a list of n_layers = 2 block parameter "
        "dicts, got dict"),
    "gpt: a leaf of the wrong shape": (
        lambda impl: _gpt_with(impl, edit=lambda p: p["blocks"][1]["attn"]["qkv"].update(
            W=np.zeros((4, 13)))), ValueError,
        "gpt.forward: argument params['blocks'][1]['attn']['qkv']['W'] must have shape (4, 12) "
        "(set by the config), got shape (4, 13)"),
    "gpt: ids longer than the context": (
        lambda impl: _gpt_with(impl, "gpt.hidden_forward", ids=np.zeros((1, 5), np.int64)),
        ValueError, "gpt.hidden_forward: argument 'ids' has sequence length 5, longer than the "
        "context length 4"),
    "gpt: a mask row with more real tokens than the context": (
        lambda impl: _gpt_with(impl, ids=np.zeros((2, 5), np.int64),
                               attention_mask=np.array([[True] * 4 + [False], [True] * 5])),
        ValueError, "gpt.forward: argument 'attention_mask' has a row of 5 real tokens, longer "
        "than the context length 4"),
    "gpt: ids without a batch axis": (
        lambda impl: _gpt_with(impl, "gpt.embed_forward", ids=np.zeros(3, np.int64)),
        ValueError, "gpt.embed_forward: argument 'ids' must have shape (B, T), got (3,)"),
    "decode: a row past the context": (
        lambda impl: _decode_twice(impl, lambda c: c, new=2), ValueError,
        "gpt.decode: a row would reach 5 tokens, more than the context length 4"),
    "decode: a cache of another batch": (
        lambda impl: _decode_twice(impl, lambda c: c, B=2), ValueError,
        "gpt.decode: argument kv_cache['mask'] must have shape (B, S) with B = 1 (the batch of "
        "'ids'), got shape (2, 3)"),
    "decode: a cache with fewer layers": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "v": c["v"][:1]}), ValueError,
        "gpt.decode: argument kv_cache['v'] must be a list of n_layers = 2 arrays, got 1"),
    "positions_from_mask: a 1-D mask": (
        lambda impl: impl("gpt.positions_from_mask")(np.ones(5, bool)), ValueError,
        "gpt.positions_from_mask: argument 'attention_mask' must have shape (B, T), got shape "
        "(5,)"),
    "shapes: not a config": (
        lambda impl: impl("gpt.shapes")(3), TypeError,
        "gpt.shapes: argument 'config' must be a GPTConfig, got int"),
    "shapes: flat not a bool": (
        lambda impl: impl("gpt.shapes")(_gpt_parts()[0], flat=1), TypeError,
        "gpt.shapes: argument 'flat' must be True or False, got 1"),
    "head_backward: h of another width": (
        lambda impl: impl("gpt.head_backward")(np.ones((2, 3, 5)), np.ones((2, 3, 5)),
                                               np.ones((4, 5))), ValueError,
        "gpt.head_backward: argument 'h' must have shape (B, T, C) with C = 4 (the rows of "
        "'head_w'), got shape (2, 3, 5)"),
    "mha: separate k of another width than H_kv D": (
        lambda impl: _mha_with(impl, {**hp.random_mha(8, np.random.default_rng(0), 4, 2,
                                                      fused=False),
                                      "k": hp.random_linear(8, 6, np.random.default_rng(0))},
                               4, 8, n_kv_heads=2), ValueError,
        "mha.forward: argument params['k']['W'] must have shape (8, 4), got shape (8, 6)"),
    "mha: output projection rows other than H D": (
        lambda impl: _mha_with(impl, {**hp.random_mha(8, np.random.default_rng(0), 2),
                                      "proj": hp.random_linear(6, 8, np.random.default_rng(0))},
                               2, 8), ValueError,
        "mha.forward: argument params['proj']['W'] must have shape (8, any), got shape (6, 8)"),
    "block: attention output of another width than the residual": (
        lambda impl: impl("block.forward")(np.zeros((1, 2, 4)), _block_with_proj(4, 5), 2),
        ValueError, "block.forward: argument params['attn']['proj']['W'] must have shape "
        "(any, 4), got shape (4, 5)"),
    "gpt: a beta in a bias-free model": (
        lambda impl: _gpt_bias_free(impl, lambda p: p["ln_f"].update(beta=np.zeros(4))),
        ValueError, "gpt.forward: argument params['ln_f'] has unknown key(s) ['beta']; "
        "allowed keys ['gamma']"),
    "gpt: a bias in a bias-free model": (
        lambda impl: _gpt_bias_free(impl, lambda p: p["blocks"][1]["ffn"]["fc"].update(
            b=np.zeros(16))), ValueError, "gpt.forward: argument params['blocks'][1]['ffn']"
        "['fc'] has unknown key(s) ['b']; allowed keys ['W']"),
    "gpt: fused q/k/v for a model with separate ones": (
        lambda impl: impl("gpt.forward")(np.zeros((1, 2), np.int64), _gpt_parts()[1],
                                         _gpt_parts(fused_qkv=False)[0]), ValueError,
        "gpt.forward: argument params['blocks'][0]['attn'] is missing key(s) ['k', 'q', 'v']; "
        "expected keys ['k', 'proj', 'q', 'v'], got ['proj', 'qkv']"),
    "GPTConfig: n_kv_heads not dividing n_heads": (
        lambda impl: impl("gpt.GPTConfig")(5, 4, 8, 4, 1, n_kv_heads=3), ValueError,
        "GPTConfig: argument 'n_kv_heads' must divide n_heads = 4, got n_kv_heads = 3"),
    "decode: a next position past the cached keys": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "next_position": np.array([4])}),
        ValueError, "gpt.decode: argument kv_cache['next_position'] must hold values in "
        "[0, 4), got 4 (and 1 out-of-range value(s) in all)"),
    "decode: cached keys of another length": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "k": [c["k"][0], c["k"][1][:, :, :2]]}),
        ValueError, "gpt.decode: argument kv_cache['k'][1] must have shape (1, 2, 3, 2), got "
        "shape (1, 2, 2, 2)"),
    "decode: cached keys not in a list": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "k": tuple(c["k"])}), ValueError,
        "gpt.decode: argument kv_cache['k'] must be a list of n_layers = 2 arrays, got "
        "<class 'tuple'>"),
    "decode: a cache without its mask": (
        lambda impl: _decode_twice(impl, lambda c: {k: v for k, v in c.items() if k != "mask"}),
        ValueError, "gpt.decode: argument 'kv_cache' is missing key(s) ['mask']; expected keys "
        "['k', 'mask', 'next_position', 'v'], got ['k', 'next_position', 'v']"),
    "decode: a cache mask of ints": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "mask": c["mask"].astype(int)}),
        TypeError, "gpt.decode: argument kv_cache['mask'] must be a boolean NumPy array (True = "
        "real token), got dtype int64; convert a 0/1 mask with mask.astype(bool)"),
    "decode: a cache mask as a list": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "mask": c["mask"].tolist()}),
        TypeError, "gpt.decode: argument kv_cache['mask'] must be a boolean NumPy array (True = "
        "real token), got list [[True, True, True]]; convert a 0/1 mask with mask.astype(bool)"),
    "decode: a 1-D cache mask": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "mask": c["mask"][0]}), ValueError,
        "gpt.decode: argument kv_cache['mask'] must have shape (B, S) with B = 1 (the batch of "
        "'ids'), got shape (3,)"),
    "decode: cached keys of another rank": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "k": [c["k"][0], c["k"][1][0]]}),
        ValueError, "gpt.decode: argument kv_cache['k'][1] must have 4 dimension(s), got shape "
        "(2, 3, 2)"),
    "decode: cached values of ints": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "v": [c["v"][0],
                                                               c["v"][1].astype(np.int64)]}),
        TypeError, "gpt.decode: argument kv_cache['v'][1] must have a floating-point dtype, got "
        "dtype int64"),
    "decode: next positions of another batch": (
        lambda impl: _decode_twice(impl, lambda c: {**c, "next_position": np.array([3, 3])}),
        ValueError, "gpt.decode: argument kv_cache['next_position'] must have shape (1,), got "
        "shape (2,)"),
    "mha: fused projection of another input width": (
        lambda impl: _mha_with(impl, {"qkv": hp.random_linear(5, 12, np.random.default_rng(0)),
                                      "proj": hp.random_linear(4, 4, np.random.default_rng(0))},
                               2, 4), ValueError,
        "mha.forward: argument params['qkv']['W'] must have shape (4, any), got shape (5, 12)"),
    "mha: fused parameters without proj": (
        lambda impl: _mha_with(impl, {"qkv": hp.random_linear(4, 12, np.random.default_rng(0))},
                               2, 4), ValueError,
        "mha.forward: argument 'params' is missing key(s) ['proj']; expected keys ['proj', "
        "'qkv'], got ['qkv']"),
    "mha: separate q of another input width": (
        lambda impl: _mha_with(impl, {**hp.random_mha(4, np.random.default_rng(0), 2,
                                                      fused=False),
                                      "q": hp.random_linear(5, 4, np.random.default_rng(0))},
                               2, 4), ValueError,
        "mha.forward: argument params['q']['W'] must have shape (4, any), got shape (5, 4)"),
    "mha: separate v of another width": (
        lambda impl: _mha_with(impl, {**hp.random_mha(4, np.random.default_rng(0), 2,
                                                      fused=False),
                                      "v": hp.random_linear(4, 6, np.random.default_rng(0))},
                               2, 4), ValueError,
        "mha.forward: argument params['v']['W'] must have shape (4, 4), got shape (4, 6)"),
    "mha: separate parameters without v": (
        lambda impl: _mha_with(impl, {k: v for k, v in hp.random_mha(
            4, np.random.default_rng(0), 2, fused=False).items() if k != "v"}, 2, 4), ValueError,
        "mha.forward: argument 'params' is missing key(s) ['v']; expected keys ['k', 'proj', "
        "'q', 'v'], got ['k', 'proj', 'q']"),
    "gpt: a b in qkv of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (0, "attn", "qkv"), "b"),
        ValueError, "gpt.forward: argument params['blocks'][0]['attn']['qkv'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in proj of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (1, "attn", "proj"), "b"),
        ValueError, "gpt.forward: argument params['blocks'][1]['attn']['proj'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in q of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (1, "attn", "q"), "b", fused_qkv=False),
        ValueError, "gpt.forward: argument params['blocks'][1]['attn']['q'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in k of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (0, "attn", "k"), "b", fused_qkv=False),
        ValueError, "gpt.forward: argument params['blocks'][0]['attn']['k'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in v of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (1, "attn", "v"), "b", fused_qkv=False),
        ValueError, "gpt.forward: argument params['blocks'][1]['attn']['v'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in gate of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (0, "ffn", "gate"), "b", activation="swiglu"),
        ValueError, "gpt.forward: argument params['blocks'][0]['ffn']['gate'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in up of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (0, "ffn", "up"), "b", activation="swiglu"),
        ValueError, "gpt.forward: argument params['blocks'][0]['ffn']['up'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: a b in down of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (1, "ffn", "down"), "b", activation="swiglu"),
        ValueError, "gpt.forward: argument params['blocks'][1]['ffn']['down'] has unknown "
        "key(s) ['b']; allowed keys ['W']"),
    "gpt: an extra key in a SwiGLU feed-forward": (
        lambda impl: _gpt_extra_key(impl, (0, "ffn"), "w3", activation="swiglu"),
        ValueError, "gpt.forward: argument params['blocks'][0]['ffn'] has unknown key(s) "
        "['w3']; allowed keys ['down', 'gate', 'up']"),
    "gpt: a beta in ln1 of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (1, "ln1"), "beta"),
        ValueError, "gpt.forward: argument params['blocks'][1]['ln1'] has unknown "
        "key(s) ['beta']; allowed keys ['gamma']"),
    "gpt: a beta in ln2 of a bias-free model": (
        lambda impl: _gpt_extra_key(impl, (0, "ln2"), "beta"),
        ValueError, "gpt.forward: argument params['blocks'][0]['ln2'] has unknown "
        "key(s) ['beta']; allowed keys ['gamma']"),
    "block: feed-forward of another input width": (
        lambda impl: _block_with(impl, "ffn", "fc", hp.random_linear(5, 3,
                                                                 np.random.default_rng(1))),
        ValueError, "block.forward: argument params['ffn']['fc']['W'] must have shape (4, any), "
        "got shape (5, 3)"),
    "block: first norm of another width": (
        lambda impl: _block_with(impl, "ln1", None, hp.random_norm(5, np.random.default_rng(1))),
        ValueError, "block.forward: argument params['ln1']['gamma'] must have shape (4,), got "
        "shape (5,)"),
    "block: second norm of another width": (
        lambda impl: _block_with(impl, "ln2", None, hp.random_norm(5, np.random.default_rng(1))),
        ValueError, "block.forward: argument params['ln2']['gamma'] must have shape (4,), got "
        "shape (5,)"),
    "ffn: output projection of another hidden width": (
        lambda impl: _ffn_with(impl, "proj", hp.random_linear(2, 4, np.random.default_rng(1))),
        ValueError, "ffn.forward: argument params['proj']['W'] must have shape (3, 4), got "
        "shape (2, 4)"),
    "ffn: output projection of another output width": (
        lambda impl: _ffn_with(impl, "proj", hp.random_linear(3, 5, np.random.default_rng(1))),
        ValueError, "ffn.forward: argument params['proj']['W'] must have shape (3, 4), got "
        "shape (3, 5)"),
    "ffn: first layer of another input width": (
        lambda impl: _ffn_with(impl, "fc", hp.random_linear(5, 3, np.random.default_rng(1))),
        ValueError, "ffn.forward: argument params['fc']['W'] must have shape (4, any), got "
        "shape (5, 3)"),
    "ffn: parameters without proj": (
        lambda impl: _ffn_with(impl, "proj", None), ValueError,
        "ffn.forward: argument 'params' is missing key(s) ['proj']; expected keys ['fc', "
        "'proj'], got ['fc']"),
    "add_head_grad: a 1-D head gradient": (
        lambda impl: _add_head_grad(impl, np.zeros(4)), ValueError,
        "gpt.add_head_grad: argument 'd_head' must have 2 dimension(s), got shape (4,)"),
    "add_head_grad: a transposed head gradient": (
        lambda impl: _add_head_grad(impl, np.zeros((5, 4))), ValueError,
        "gpt.add_head_grad: argument 'd_head' must have shape (4, 5), got shape (5, 4)"),
    "add_head_grad: a token-table gradient of another shape": (
        lambda impl: _add_head_grad(impl, np.zeros((4, 5)), np.zeros((4, 4))), ValueError,
        "gpt.add_head_grad: argument grads['wte']['W'] must have shape (5, 4), got shape "
        "(4, 4)"),
    "head_backward: a 1-D head": (
        lambda impl: impl("gpt.head_backward")(np.ones((2, 3, 5)), np.ones((2, 3, 4)),
                                               np.ones(4)), ValueError,
        "gpt.head_backward: argument 'head_w' must have 2 dimension(s), got shape (4,)"),
    "loss_and_grads: targets of another shape": (
        lambda impl: _gpt_with(impl, "gpt.loss_and_grads", targets=np.zeros((1, 3), np.int64)),
        ValueError, "gpt.loss_and_grads: argument 'targets' must have shape (1, 2), got shape "
        "(1, 3)"),
    # parts of a tree are named by their path, from the trunk down to the feed-forward
    "gpt: a block without its second norm": (
        lambda impl: _gpt_with(impl, edit=lambda p: p["blocks"][0].pop("ln2")), ValueError,
        "gpt.forward: argument params['blocks'][0] is missing key(s) ['ln2']; expected keys "
        "['attn', 'ffn', 'ln1', 'ln2'], got ['attn', 'ffn', 'ln1']"),
    "gpt: a feed-forward without its first layer": (
        lambda impl: _gpt_with(impl, edit=lambda p: p["blocks"][1]["ffn"].pop("fc")),
        ValueError, "gpt.forward: argument params['blocks'][1]['ffn'] is missing key(s) "
        "['fc']; expected keys ['fc', 'proj'], got ['proj']"),
    "gpt: fused attention without its output projection": (
        lambda impl: _gpt_with(impl, edit=lambda p: p["blocks"][0]["attn"].pop("proj")),
        ValueError, "gpt.forward: argument params['blocks'][0]['attn'] is missing key(s) "
        "['proj']; expected keys ['proj', 'qkv'], got ['qkv']"),
    "gpt: a config that is a string": (
        lambda impl: impl("gpt.forward")(np.zeros((1, 2), np.int64), _gpt_parts()[1], "config"),
        TypeError, "gpt.forward: argument 'config' must be a GPTConfig, got str"),
    "block: fused q/k/v of another input width": (
        lambda impl: _block_with(impl, "attn", "qkv", hp.random_linear(
            5, 12, np.random.default_rng(1))), ValueError,
        "block.forward: argument params['attn']['qkv']['W'] must have shape (4, any), got "
        "shape (5, 12)"),
    "block: a key padding mask of another batch": (
        lambda impl: impl("block.forward")(np.zeros((1, 2, 4)), hp.random_block(
            4, 3, np.random.default_rng(0)), 2, key_padding_mask=np.ones((2, 2), bool)),
        ValueError, "block.forward: argument 'key_padding_mask' must have shape (1, 2), got "
        "shape (2, 2)"),
    "block: an unknown activation (swiglu is one of the choices)": (
        lambda impl: impl("block.forward")(np.zeros((1, 2, 4)), hp.random_block(
            4, 3, np.random.default_rng(0)), 2, activation="tanh"), ValueError,
        "block.forward: argument 'activation' must be one of ['gelu', 'gelu_tanh', 'relu', "
        "'swiglu'], got 'tanh'"),
    "GPTConfig: an unknown activation": (
        lambda impl: impl("gpt.GPTConfig")(5, 4, 4, 2, 1, activation="tanh"), ValueError,
        "GPTConfig: argument 'activation' must be one of ['gelu', 'gelu_tanh', 'relu', "
        "'swiglu'], got 'tanh'"),
    "GPTConfig: an unknown norm": (
        lambda impl: impl("gpt.GPTConfig")(5, 4, 4, 2, 1, norm="batch"), ValueError,
        "GPTConfig: argument 'norm' must be one of ['layer', 'rms'], got 'batch'"),
    "check_heads: a caller's name that is not a str": (
        lambda impl: impl("mha.check_heads")(3, 8, 2), TypeError,
        "mha.check_heads: argument 'where' must be a str, got int 3"),
    "gpt: a token table that is not a dict": (
        lambda impl: _gpt_with(impl, edit=lambda p: p.update(wte=p["wte"]["W"])), TypeError,
        "gpt.forward: argument params['wte'] must be a dict of arrays, got array of shape "
        "(5, 4) and dtype float64"),
    "gpt: a position table with a bias": (
        lambda impl: _gpt_with(impl, edit=lambda p: p["wpe"].update(b=np.zeros(4))),
        ValueError, "gpt.forward: argument params['wpe'] has unknown key(s) ['b']; allowed "
        "keys ['W']"),
    "gpt: a head of ints": (
        lambda impl: _gpt_untied_with(impl, lambda p: p["lm_head"].update(
            W=p["lm_head"]["W"].astype(np.int64))), TypeError,
        "gpt.forward: argument params['lm_head']['W'] must have a floating-point dtype, got "
        "dtype int64"),
    "gpt: a missing norm before a head of the wrong shape": (
        # every leaf's shape is checked before any key: the head is named, not the norm
        lambda impl: _gpt_untied_with(impl, lambda p: (p["blocks"][0].pop("ln1"), p[
            "lm_head"].update(W=np.zeros((4, 6))))), ValueError,
        "gpt.forward: argument params['lm_head']['W'] must have shape (4, 5) (set by the "
        "config), got shape (4, 6)"),
    "gpt: position ids of another length": (
        lambda impl: _gpt_with(impl, position_ids=np.zeros((1, 3), np.int64)), ValueError,
        "gpt.forward: argument 'position_ids' must have shape (1, 2), got shape (1, 3)"),
}


@pytest.mark.component("mha", "ffn", "block", "gpt")
@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_messages_of_the_transformer(impl, case):
    """The whole message of each refusal: the function, the argument, what was expected (with
    the numbers it follows from) and what was given."""
    call, error, message = BAD_INPUT[case]
    with pytest.raises(error) as info:
        call(impl)
    assert str(info.value) == message


@pytest.mark.parametrize("config", [GPT_OPTIONS[0], GPT_OPTIONS[1]], ids=_config_id)
def test_float32_parameters_decode_in_float32(impl, config):
    """float32 in, float32 out: with float32 parameters, gpt.forward and gpt.decode (prefill
    and one more token) give float32 logits and keep float32 keys and values, and decoding
    agrees with the forward pass to float32 rounding (rotary tables included)."""
    from llmref.spec.harness.tolerances import F32

    rng = np.random.default_rng(7)
    params = impl("params.map_tree")(lambda a: a.astype(np.float32),
                                     hp.random_gpt(config, rng))
    ids = rng.integers(0, config.vocab_size, size=(2, 4))
    full, _ = impl("gpt.forward")(ids, params, config)
    first, cache = impl("gpt.decode")(ids[:, :3], params, config)
    step, cache = impl("gpt.decode")(ids[:, 3:], params, config, cache)
    assert full.dtype == first.dtype == step.dtype == np.float32
    assert all(a.dtype == np.float32 for a in cache["k"] + cache["v"])
    assert_close(np.concatenate([first, step], axis=1), full, F32, name="decoded logits")


def test_gpt_config_defaults_are_gpt2s(impl):
    """A GPTConfig given only its sizes is GPT-2: feed-forward width 4C, the tanh GELU,
    pre-norm, a head tied to the token table, LayerNorm with eps 1e-5 and biases, residual
    connections, learned positions, one fused Q/K/V projection with a key/value head per
    query head; RoPE's base, used only by rotary configurations, is 10000."""
    cls = impl("gpt.GPTConfig")
    config = cls(vocab_size=5, context_len=4, d_model=8, n_heads=2, n_layers=1)
    assert config == cls(vocab_size=5, context_len=4, d_model=8, n_heads=2, n_layers=1,
                         d_ff=None, activation="gelu_tanh", norm_first=True, tie_weights=True,
                         eps=1e-5, residual=True, norm="layer", position="learned",
                         rope_theta=10000.0, n_kv_heads=None, bias=True, fused_qkv=True)
    assert (config.hidden, config.kv_heads, config.head_dim) == (32, 2, 4)


def _float32_model_check(impl, component, x, params, torch_fn, kwargs):
    """float32 input and parameters: the output and every gradient are float32 and agree with
    the float64 torch oracle run on the same float32-rounded values."""
    from llmref.spec.harness.tolerances import F32

    rng = np.random.default_rng(8)
    x32 = x.astype(np.float32)
    p32 = impl("params.map_tree")(lambda a: a.astype(np.float32), params)
    x_t = torch.tensor(x32, dtype=torch.float64, requires_grad=True)
    p_t = tw.tensors(p32)
    out_t = torch_fn(x_t, p_t)
    upstream = rng.standard_normal(tuple(out_t.shape)).astype(np.float32)
    out_t.backward(torch.from_numpy(upstream.astype(np.float64)))
    out, cache = impl(f"{component}.forward")(x32, p32, **kwargs)
    assert out.dtype == np.float32, out.dtype
    assert_close(out, out_t.detach().numpy(), F32, name=f"{component} float32 output")
    grads = impl(f"{component}.backward")(upstream, cache)
    got = flatten(grads)
    assert all(g.dtype == np.float32 for g in got.values()), {k: g.dtype for k, g in
                                                             got.items()}
    expected = {"x": x_t.grad.numpy(), **flatten(tw.grads(p_t))}
    assert_grads_close(got, expected, F32, upstream)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "separate"])
def test_float32_layers_stay_float32(impl, fused):
    """float32 in, float32 out for the attention layer (grouped-query, rotary, fused or
    separate q/k/v), the feed-forward and a Llama-style block."""
    rng = np.random.default_rng(9)
    B, T, H, H_kv, C = 2, 3, 4, 2, 8
    x = rng.standard_normal((B, T, C))
    allowed = _allowed(B, T, True, None)
    pos_t = torch.arange(T).expand(B, T)
    _float32_model_check(
        impl, "mha", x, hp.random_mha(C, rng, H, H_kv, fused),
        lambda x, p: tw.attention_layer(x, p, H, H_kv, allowed, pos_t, 100.0),
        {"n_heads": H, "n_kv_heads": H_kv, "rope_theta": 100.0})
    _float32_model_check(impl, "ffn", x, hp.random_ffn(C, 5, rng),
                         lambda x, p: tw.feed_forward(x, p, "relu"), {"activation": "relu"})
    config = GPTConfig(vocab_size=2, context_len=4, d_model=C, n_heads=H, n_layers=1, d_ff=5,
                       activation="swiglu", norm="rms", n_kv_heads=H_kv, bias=False,
                       fused_qkv=fused)
    _float32_model_check(
        impl, "block", x, hp.random_block(C, 5, rng, config),
        lambda x, p: torch_block_any(x, p, H, H_kv, True, "swiglu", "rms", 1e-5, True,
                                     allowed, pos_t, 100.0),
        {"n_heads": H, "activation": "swiglu", "norm": "rms", "n_kv_heads": H_kv,
         "rope_theta": 100.0})


def test_ffn_of_a_single_position(impl):
    """A 1-D input (one position of width C) is a valid input: its output and gradients are
    those of the same position as a batch of one."""
    rng = np.random.default_rng(12)
    params = hp.random_ffn(6, 10, rng)
    x = rng.standard_normal(6)
    dy = rng.standard_normal(6)
    y, cache = impl("ffn.forward")(x, params)
    y2, cache2 = impl("ffn.forward")(x[None], params)
    np.testing.assert_array_equal(y, y2[0])
    g, g2 = impl("ffn.backward")(dy, cache), impl("ffn.backward")(dy[None], cache2)
    np.testing.assert_array_equal(g["x"], g2["x"][0])
    for name, leaf in flatten({k: v for k, v in g.items() if k != "x"}).items():
        np.testing.assert_allclose(leaf, flatten(g2)[name], rtol=1e-14, err_msg=name)
