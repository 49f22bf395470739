"""RLHF: preference pairs and the Bradley-Terry loss, the reward model, KL estimators and
penalty, GAE, PPO's losses and controller, DPO, and the KL-regularised optimum."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness import torch_twins as tw
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_model_against_torch,
    flatten,
)
from llmref.spec.harness.draws import LARGEST_DRAW, generator_giving
from llmref.spec.harness.tolerances import F64, assert_close
from llmref.spec.test_initialisers import _std_close
from llmref.transformer.gpt import GPTConfig

N = st.integers(1, 12)


def _vec(seed, n, scale=1.0, offset=0):
    return np.random.default_rng(seed + offset).standard_normal(n) * scale


@pytest.mark.claim("L003-ranking-pairs")
def test_pairs_from_a_ranking(impl, claim, claim_figures):
    pairs = impl("preference.pairs_from_ranking")(["C", "A", "B", "D"])
    assert len(pairs) == claim["value"]
    assert pairs == [("C", "A"), ("C", "B"), ("C", "D"), ("A", "B"), ("A", "D"), ("B", "D")]
    counts = [len(impl("preference.pairs_from_ranking")(range(k))) for k in range(1, 8)]
    assert counts == [k * (k - 1) // 2 for k in range(1, 8)]
    claim_figures.record(pairs_from_4_responses=len(pairs),
                         pairs=", ".join(f"{a} > {b}" for a, b in pairs),
                         pairs_from_1_to_7_responses=counts)


@given(N, hs.scales, hs.seeds)
def test_bradley_terry_loss_matches_torch(impl, n, scale, seed):
    inputs = {"r_chosen": _vec(seed, n, scale), "r_rejected": _vec(seed, n, scale, 1)}
    check_against_torch(impl, "preference", inputs,
                        lambda a: ((a["r_chosen"], a["r_rejected"]), {}),
                        lambda r_chosen, r_rejected: -F.logsigmoid(r_chosen - r_rejected).mean(),
                        seed)


@given(N, st.floats(-50, 50), hs.seeds)
def test_bradley_terry_is_log2_at_a_tie_and_shift_invariant(impl, n, shift, seed):
    r = _vec(seed, n)
    tie, _ = impl("preference.forward")(r, r.copy())
    assert abs(tie - np.log(2)) < 1e-12
    rc, rr = _vec(seed, n, offset=2), _vec(seed, n, offset=3)
    a, _ = impl("preference.forward")(rc, rr)
    b, _ = impl("preference.forward")(rc + shift, rr + shift)
    assert abs(a - b) < 1e-12 * max(1.0, abs(shift))


@given(st.booleans(), hs.seeds)
def test_reward_model_matches_torch(impl, norm_first, seed):
    """Scalar head on the last real token of right-padded sequences, against the torch GPT
    trunk: rewards and every parameter gradient."""
    config = GPTConfig(vocab_size=9, context_len=6, d_model=4, n_heads=2, n_layers=2,
                       norm_first=norm_first)
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    params["reward_head"] = hp.random_linear(4, 1, rng)
    ids = rng.integers(0, 9, size=(3, 6))
    lengths = rng.integers(1, 7, size=3)

    def torch_rm(ids_t, p):
        trunk = {k: v for k, v in p.items() if k != "reward_head"}
        h = _torch_hidden(ids_t, trunk, config)
        last = h[torch.arange(3), torch.from_numpy(lengths - 1)]
        return (last @ p["reward_head"]["W"])[:, 0] + p["reward_head"]["b"][0]

    check_model_against_torch(impl, "reward_model", ids, params, torch_rm, seed,
                              {"lengths": lengths, "config": config}, rounding_scale=10.0)


def _torch_hidden(ids, p, config):
    """Final hidden states of the torch GPT twin: its logits' input, ln_f(h_N)."""
    module = tw.TorchGPT(config, dtype=torch.float64)
    state = tw.gpt_state(p)
    captured = {}
    module.ln_f.register_forward_hook(lambda m, i, o: captured.setdefault("h", o))
    torch.func.functional_call(module, state, (ids,))
    return captured["h"]


def test_reward_model_ignores_padding(impl):
    config = GPTConfig(vocab_size=9, context_len=6, d_model=4, n_heads=2, n_layers=1)
    rng = np.random.default_rng(0)
    params = hp.random_gpt(config, rng)
    params["reward_head"] = hp.random_linear(4, 1, rng)
    ids = rng.integers(0, 9, size=(1, 6))
    other = ids.copy()
    other[0, 3:] = (ids[0, 3:] + 1) % 9
    a, _ = impl("reward_model.forward")(ids, params, config, np.array([3]))
    b, _ = impl("reward_model.forward")(other, params, config, np.array([3]))
    assert a[0] == b[0]


def test_reward_model_in_float32(impl):
    """A float32 reward model and float32 upstream gradient: float32 rewards and gradients,
    close to the float64 run of the same numbers (the gradient buffer follows the inputs'
    dtype, not float64)."""
    config = GPTConfig(vocab_size=9, context_len=6, d_model=4, n_heads=2, n_layers=1)
    rng = np.random.default_rng(1)
    params = {**hp.random_gpt(config, rng), "reward_head": hp.random_linear(4, 1, rng)}
    ids, lengths = rng.integers(0, 9, size=(2, 6)), np.array([6, 4])
    up = rng.standard_normal(2)
    runs = {}
    for dtype in (np.float32, np.float64):
        tree = impl("params.map_tree")(lambda a, dtype=dtype: a.astype(dtype), params)
        rewards, cache = impl("reward_model.forward")(ids, tree, config, lengths)
        runs[dtype] = rewards, flatten(impl("reward_model.backward")(up.astype(dtype), cache))
    assert runs[np.float32][0].dtype == np.float32
    assert {g.dtype for g in runs[np.float32][1].values()} == {np.dtype(np.float32)}
    np.testing.assert_allclose(runs[np.float32][0], runs[np.float64][0], rtol=1e-5, atol=1e-6)
    for name, g in runs[np.float32][1].items():
        np.testing.assert_allclose(g, runs[np.float64][1][name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)


@given(hs.seeds)
def test_kl_estimators(impl, seed):
    """On an enumerable pair of distributions: k3 >= 0 and is 0 only at ratio 1; the exact
    expectations of k1 and k3 under q equal KL(q || p); k2's does not."""
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.ones(6))
    p = rng.dirichlet(np.ones(6))
    ks = impl("kl.estimators")(np.log(q), np.log(p))
    true_kl = float(np.sum(q * np.log(q / p)))
    assert abs(np.sum(q * ks["k1"]) - true_kl) < 1e-12
    assert abs(np.sum(q * ks["k3"]) - true_kl) < 1e-12
    assert abs(np.sum(q * ks["k2"]) - true_kl) > 1e-6
    assert np.all(ks["k3"] >= 0)
    same = impl("kl.estimators")(np.log(q), np.log(q))
    assert np.all(same["k3"] == 0.0)


def test_penalized_rewards(impl):
    logp = np.array([[-1.0, -2.0, -0.5], [-0.2, -0.3, -0.4]])
    ref = np.array([[-1.5, -1.0, -0.5], [-0.2, -0.1, -0.9]])
    mask = np.array([[True, True, False], [True, True, True]])
    r = impl("kl.penalized_rewards")(logp, ref, np.array([2.0, -1.0]), mask, 0.5)
    expected = np.array([[-0.25, 0.5 + 2.0, 0.0], [0.0, 0.1, -0.25 - 1.0]])
    np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-15)


@given(st.integers(1, 4), st.integers(1, 8), st.sampled_from([0.0, 0.05, 1.0]), hs.seeds)
def test_penalized_rewards_with_masks_that_have_holes(impl, B, T, beta, seed):
    """Response masks of any pattern (prompt tokens, holes in the middle): each marked token
    gets -beta (logp - logp_ref), an unmarked one 0, and the score goes on the last marked
    token of its row; written here as a loop over tokens."""
    rng = np.random.default_rng(seed)
    logp, ref = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    scores = rng.standard_normal(B)
    mask = rng.random((B, T)) < 0.5
    mask[np.arange(B), rng.integers(0, T, B)] = True
    got = impl("kl.penalized_rewards")(logp, ref, scores, mask, beta)
    expected = np.zeros((B, T))
    for b in range(B):
        marked = [t for t in range(T) if mask[b, t]]
        for t in marked:
            expected[b, t] = -beta * (logp[b, t] - ref[b, t])
        expected[b, marked[-1]] += scores[b]
    assert_close(got, expected, F64, name="per-token rewards", reference_scale=1.0)


@given(st.integers(1, 3), st.integers(1, 7), st.floats(0.0, 1.0), hs.seeds)
def test_gae_limits_and_done_flags(impl, B, T, gamma, seed):
    """lambda = 1: discounted return minus value; lambda = 0: the TD error; a done flag stops
    anything after it from reaching earlier steps."""
    rng = np.random.default_rng(seed)
    r, v = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    dones = np.zeros((B, T), bool)
    dones[:, -1] = True
    end = np.zeros(B)
    adv1, ret1 = impl("gae.advantages")(r, v, dones, gamma, 1.0, next_value=end)
    disc = np.zeros((B, T))
    for t in range(T):
        disc[:, t] = sum(gamma ** (j - t) * r[:, j] for j in range(t, T))
    assert_close(adv1, disc - v, F64, name="lambda=1", reference_scale=1.0)
    assert_close(ret1, disc, F64, name="returns", reference_scale=1.0)
    adv0, _ = impl("gae.advantages")(r, v, dones, gamma, 0.0, next_value=end)
    v_next = np.concatenate([v[:, 1:], np.zeros((B, 1))], axis=1)
    assert_close(adv0, r + gamma * v_next - v, F64, name="lambda=0", reference_scale=1.0)
    if T >= 2:
        cut = dones.copy()
        cut[:, 0] = True                               # episode boundary after step 0
        changed = r.copy()
        changed[:, 1:] += 100.0
        a, _ = impl("gae.advantages")(r, v, cut, gamma, 0.9, next_value=end)
        b, _ = impl("gae.advantages")(changed, v, cut, gamma, 0.9, next_value=end)
        np.testing.assert_array_equal(a[:, 0], b[:, 0])


def _gae_by_sums(r, v, dones, gamma, lam, next_value):
    """GAE written as its defining sum, not as the backward recursion:
    A_t = sum_l (gamma lam)^l delta_{t+l}, stopped after the first done step at or after t,
    with delta_t = r_t + gamma V_{t+1} (1 - d_t) - V_t and V_T = next_value."""
    B, T = r.shape
    v_ext = np.concatenate([v, next_value[:, None]], axis=1)
    adv = np.zeros((B, T))
    for b in range(B):
        for t in range(T):
            total = 0.0
            for j in range(t, T):
                delta = r[b, j] + gamma * v_ext[b, j + 1] * (not dones[b, j]) - v[b, j]
                total += (gamma * lam) ** (j - t) * delta
                if dones[b, j]:
                    break
            adv[b, t] = total
    return adv


@given(st.integers(1, 3), st.integers(1, 8), st.floats(0.0, 1.0), st.floats(0.0, 1.0),
       st.booleans(), hs.seeds)
def test_gae_matches_its_sum_form(impl, B, T, gamma, lam, bootstrap, seed):
    """Advantages and returns against the sum form, with done flags anywhere in the
    trajectory (in the middle too) and a bootstrap value after the last step, or zero."""
    rng = np.random.default_rng(seed)
    r, v = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    dones = rng.random((B, T)) < 0.3
    if T >= 3:
        dones[0, T // 2] = True                          # at least one episode ends mid-way
    next_value = rng.standard_normal(B) if bootstrap else np.zeros(B)
    adv, ret = impl("gae.advantages")(r, v, dones, gamma, lam, next_value=next_value)
    expected = _gae_by_sums(r, v, dones, gamma, lam, next_value)
    assert_close(adv, expected, F64, name="advantages", reference_scale=1.0)
    assert_close(ret, expected + v, F64, name="returns", reference_scale=1.0)


@given(st.integers(2, 30), st.sampled_from([1e-8, 0.5]), hs.seeds)
def test_whiten_uses_the_masked_entries_only(impl, n, eps, seed):
    """Mean and variance come from the entries the mask selects; every entry (selected or
    not) is shifted and scaled by them: (x - mean) / sqrt(var + eps)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, n)) * 3 + 1
    mask = rng.random((2, n)) < 0.5
    mask[0, :2] = True
    x[~mask] += 100.0                                    # far from the selected entries
    sel = x[mask]
    expected = (x - sel.mean()) / np.sqrt(sel.var() + eps)
    assert_close(impl("gae.whiten")(x, mask, eps), expected, F64, name="whitened (mask)")
    assert_close(impl("gae.whiten")(x, None, eps), (x - x.mean()) / np.sqrt(x.var() + eps),
                 F64, name="whitened (no mask)")


@given(st.integers(2, 20), st.sampled_from([0.1, 0.2, 0.3]), st.booleans(), hs.seeds)
def test_ppo_policy_loss_matches_torch(impl, n, eps, masked, seed):
    """The clipped surrogate as TRL computes it: the token-level masked mean of
    max(-A rho, -A clip(rho)), here with and without a mask."""
    rng = np.random.default_rng(seed)
    mask = rng.random(n) < 0.7 if masked else np.ones(n, bool)
    mask[0] = True
    inputs = {"logp_new": rng.standard_normal(n) * 0.3 - 1, "logp_old": rng.standard_normal(n)
              * 0.3 - 1, "advantages": rng.standard_normal(n), "mask": mask}

    def torch_loss(logp_new, logp_old, advantages, mask):
        ratio = torch.exp(logp_new - logp_old)
        losses = torch.max(-advantages * ratio,
                           -advantages * torch.clamp(ratio, 1 - eps, 1 + eps))
        return (losses * mask).sum() / mask.sum()

    check_against_torch(impl, "ppo.policy", inputs,
                        lambda a: ((a["logp_new"], a["logp_old"], a["advantages"]),
                                   {"clip_eps": eps, "mask": a["mask"] if masked else None}),
                        torch_loss, seed, differentiable={"logp_new"})


def test_ppo_clipping_properties(impl):
    """Inside [1 - eps, 1 + eps] the clipped objective equals the plain one; where the clip
    is active, the gradient is exactly zero."""
    adv = np.array([1.0, -1.0, 1.0, -1.0])
    old = np.zeros(4)
    inside = np.log(np.array([1.05, 0.9, 0.95, 1.1]))
    loss, cache = impl("ppo.policy_forward")(inside, old, adv, 0.2)
    assert abs(loss + np.mean(np.exp(inside) * adv)) < 1e-15
    outside = np.log(np.array([1.5, 0.5, 0.6, 1.6]))    # clip active for the first two only
    _, cache = impl("ppo.policy_forward")(outside, old, adv, 0.2)
    g = impl("ppo.policy_backward")(1.0, cache)["logp_new"]
    assert g[0] == 0.0 and g[1] == 0.0 and g[2] != 0.0 and g[3] != 0.0
    stats = impl("ppo.stats")(outside, old, 0.2)
    assert stats["clip_fraction"] == 1.0 and stats["approx_kl"] > 0


@given(st.integers(1, 12), st.sampled_from([None, 0.1, 0.5]), hs.seeds)
def test_value_loss_finite_differences(impl, n, eps, seed):
    rng = np.random.default_rng(seed)
    inputs = {"values": rng.standard_normal(n), "returns": rng.standard_normal(n),
              "old_values": rng.standard_normal(n)}
    check_against_finite_differences(
        impl, "ppo.value", inputs,
        lambda a: ((a["values"], a["returns"]), {"old_values": a["old_values"],
                                                 "clip_eps": eps}), ["values"], seed)


@given(st.integers(1, 12), st.sampled_from([None, 0.1, 0.5]), hs.seeds)
def test_value_loss_matches_torch(impl, n, eps, seed):
    """0.5 mean((V - R)^2), or with clip_eps the larger of the plain and the clipped squared
    error (V_old + clip(V - V_old, -eps, eps) - R)^2, and its gradient, against torch."""
    rng = np.random.default_rng(seed)
    inputs = {"values": rng.standard_normal(n), "returns": rng.standard_normal(n),
              "old_values": rng.standard_normal(n)}

    def torch_loss(values, returns, old_values):
        plain = (values - returns) ** 2
        if eps is None:
            return 0.5 * plain.mean()
        clipped = (old_values + torch.clamp(values - old_values, -eps, eps) - returns) ** 2
        return 0.5 * torch.maximum(plain, clipped).mean()

    check_against_torch(
        impl, "ppo.value", inputs,
        lambda a: ((a["values"], a["returns"]), {"old_values": a["old_values"],
                                                 "clip_eps": eps}), torch_loss, seed,
        differentiable={"values"})


@given(st.integers(2, 12), st.sampled_from([0.1, 0.5]), hs.seeds)
def test_clipped_value_loss_with_a_mask_matches_torch(impl, n, eps, seed):
    """TRL's value loss: 0.5 masked_mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))."""
    rng = np.random.default_rng(seed)
    mask = rng.random(n) < 0.7
    mask[0] = True
    inputs = {"values": rng.standard_normal(n), "returns": rng.standard_normal(n),
              "old_values": rng.standard_normal(n), "mask": mask}

    def torch_loss(values, returns, old_values, mask):
        clipped = old_values + torch.clamp(values - old_values, -eps, eps)
        worst = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
        return 0.5 * (worst * mask).sum() / mask.sum()

    check_against_torch(impl, "ppo.value", inputs,
                        lambda a: ((a["values"], a["returns"]),
                                   {"old_values": a["old_values"], "clip_eps": eps,
                                    "mask": a["mask"]}),
                        torch_loss, seed, differentiable={"values"})


@given(st.integers(1, 4), st.integers(2, 7), hs.scales, st.booleans(), hs.seeds)
def test_entropy_matches_torch(impl, n, V, scale, masked, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, 3, V)) * scale
    mask = rng.random((n, 3)) < 0.6 if masked else np.ones((n, 3), bool)
    mask[0, 0] = True

    def torch_entropy(logits, mask):
        H = torch.distributions.Categorical(logits=logits).entropy()
        return (H * mask).sum() / mask.sum()

    # Entropy is a sum of p log p terms of size up to ~1: for a nearly certain distribution
    # (logits at scale 1e3) the result is ~1e-7 but rounding acts at the scale of the terms.
    check_against_torch(impl, "ppo.entropy", {"logits": logits, "mask": mask},
                        lambda a: ((a["logits"],), {"mask": a["mask"] if masked else None}),
                        torch_entropy, seed, rounding_scale=1.0, differentiable={"logits"})


@given(st.integers(1, 4), st.integers(2, 7), hs.scales, hs.seeds)
def test_token_logprobs_match_torch(impl, n, V, scale, seed):
    """log pi(a_t) from the logits that chose a_t: log_softmax, then the taken token's entry."""
    rng = np.random.default_rng(seed)
    inputs = {"logits": rng.standard_normal((n, 3, V)) * scale,
              "tokens": rng.integers(0, V, (n, 3))}
    check_against_torch(impl, "ppo.logprobs", inputs,
                        lambda a: ((a["logits"], a["tokens"]), {}),
                        lambda logits, tokens: torch.log_softmax(logits, -1)
                        .gather(-1, tokens[..., None])[..., 0], seed,
                        differentiable={"logits"}, rounding_scale=scale)


def test_adaptive_kl_controller_raises_beta_only_above_target(impl):
    update = impl("ppo.adaptive_kl_update")
    assert update(0.1, kl=12.0, target=6.0, horizon=10_000, n_steps=256) > 0.1
    assert update(0.1, kl=3.0, target=6.0, horizon=10_000, n_steps=256) < 0.1
    assert update(0.1, kl=6.0, target=6.0, horizon=10_000, n_steps=256) == 0.1
    big = update(0.1, kl=600.0, target=6.0, horizon=100, n_steps=100)
    assert abs(big - 0.1 * 1.2) < 1e-15                        # the error is clipped at 0.2


@given(N, st.sampled_from([0.05, 0.1, 1.0]), hs.seeds)
def test_dpo_matches_torch_and_is_log2_at_the_reference(impl, n, beta, seed):
    rng = np.random.default_rng(seed)
    inputs = {k: rng.standard_normal(n) * 3 - 10 for k in
              ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")}

    def torch_dpo(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
        margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
        return -F.logsigmoid(beta * margin).mean()

    check_against_torch(impl, "dpo", inputs,
                        lambda a: ((a["policy_chosen"], a["policy_rejected"], a["ref_chosen"],
                                    a["ref_rejected"]), {"beta": beta}), torch_dpo, seed,
                        differentiable={"policy_chosen", "policy_rejected"})
    at_ref, _ = impl("dpo.forward")(inputs["ref_chosen"], inputs["ref_rejected"],
                                    inputs["ref_chosen"], inputs["ref_rejected"], beta)
    assert abs(at_ref - np.log(2)) < 1e-12


def test_bigram_policy_gradient_matches_torch(impl):
    """The bigram policy's response logits (the prompt's last token, then each previous
    token, picks a row of Z) and the table's gradient, with repeated contexts adding up."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5, 4))
    batch = impl("rlhf_loop.batch")([np.array([4]), np.array([1, 2]), np.array([0])],
                                    list(rng.integers(0, 4, size=(3, 5))))
    up = rng.standard_normal((3, 5, 4))
    z, cache = impl("bigram_policy.logits")({"Z": Z}, batch)
    grads = impl("bigram_policy.logits_backward")(up, cache)
    Zt = torch.tensor(Z, requires_grad=True)
    prev = torch.from_numpy(np.concatenate([batch["prompts"][:, -1:],
                                            batch["responses"][:, :-1]], axis=1))
    Zt[prev].backward(torch.from_numpy(up))
    assert_close(z, Zt[prev].detach().numpy(), F64, name="logits")
    assert_close(grads["Z"], Zt.grad.numpy(), F64, name="dZ", reference_scale=1.0)


@pytest.mark.parametrize("u", [0.0, LARGEST_DRAW], ids=["draw-0", "largest-draw"])
def test_bigram_sampling_never_draws_a_token_of_probability_zero(impl, u):
    """Z's rows (-1e4, 0, 1, 2, -1e4): tokens 0 and 4 have probability exactly 0, and the
    cumulative probabilities end just below 1.  A Generator whose next draw is 0, then one
    whose next draw is the largest below 1 (the two draws where a sampler's comparison and
    its last bin matter): the token drawn is 1, 2 or 3."""
    Z = np.tile([-1e4, 0.0, 1.0, 2.0, -1e4], (6, 1))
    batch = impl("bigram_policy.sample")({"Z": Z}, [np.array([5])], 1, generator_giving(u))
    assert batch["responses"][0, 0] in (1, 2, 3), batch["responses"]


def test_bigram_policy_samples_follow_its_probabilities(impl):
    """8000 two-token samples after the BOS prompt: the first token's frequencies match
    softmax(Z[BOS]) and the second token's, given the first, match softmax(Z[first]), each
    within 5 binomial standard deviations; every response token is real (mask all True)."""
    rng = np.random.default_rng(0)
    params = impl("bigram_policy.init")(3, rng, std=1.5)
    batch = impl("bigram_policy.sample")(params, [np.array([3])] * 8000, 2,
                                         np.random.default_rng(1))
    tokens = batch["responses"]
    assert tokens.shape == (8000, 2) and tokens.min() >= 0 and tokens.max() < 3
    assert batch["mask"].all()

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    def check(observed, p):
        freq = np.bincount(observed, minlength=3) / len(observed)
        sd = np.sqrt(p * (1 - p) / len(observed))
        assert np.all(np.abs(freq - p) < 5 * sd + 1e-12), (freq, p)

    check(tokens[:, 0], softmax(params["Z"][3]))
    for first in range(3):
        check(tokens[tokens[:, 0] == first, 1], softmax(params["Z"][first]))


def _bigram_loop(impl, ref, reward, length, **kwargs):
    """The loop on the bigram policy, from the reference, reward a function of the tokens."""
    return impl("rlhf_loop.ppo_train")(
        impl("bigram_policy.policy")(length), {"Z": ref["Z"].copy()}, ref,
        lambda batch: reward(batch["responses"]), [np.array([ref["Z"].shape[1]])],
        critic=impl("bigram_policy.critic")(),
        critic_params=impl("bigram_policy.critic_init")(length, ref["Z"].shape[1]), **kwargs)


def test_ppo_train_adapts_beta_towards_the_kl_target(impl):
    """With kl_target set, beta after each iteration is the adaptive controller's update of
    the previous beta from that iteration's KL (kl_horizon and the batch size as its step
    count); with a target far below the KL reached, beta only rises."""
    ref = impl("bigram_policy.init")(4, np.random.default_rng(0))
    r = np.array([1.0, -1.0, 0.5, 0.0])
    _, _, history = _bigram_loop(impl, ref, lambda tokens: r[tokens[:, 0]], 1, iterations=6,
                                 batch_size=32, beta=0.05, kl_target=1e-3, kl_horizon=50,
                                 lr=0.1, epochs=2, minibatch_size=32, seed=0)
    update = impl("ppo.adaptive_kl_update")
    for before, after in zip(history[:-1], history[1:], strict=True):
        expected = update(before["beta"], before["kl"], 1e-3, 50, 32)
        assert abs(after["beta"] - expected) <= 1e-12 * expected
    assert history[-1]["beta"] > history[0]["beta"]


def test_ppo_train_options(impl):
    """Non-default settings together: three-token responses, gamma and lambda below 1, a
    tighter clip, an entropy bonus, critic step size, gradient clipping, minibatches that do
    not divide the batch (50 in 16s), an early stop on the approximate KL, and a log every 2
    iterations.  The score rises towards the rewarded token, and an early stop at a tiny KL
    moves the policy less than the same run without it."""
    ref = impl("bigram_policy.init")(3, np.random.default_rng(0))

    def reward(tokens):
        return (tokens == 2).mean(axis=1)

    lines = []
    kwargs = dict(iterations=8, batch_size=50, beta=0.01, epochs=3, minibatch_size=16,
                  clip_eps=0.1, ent_coef=0.01, lr=0.05, critic_lr=0.1, gamma=0.9, lam=0.5,
                  max_grad_norm=5.0, seed=2)
    policy, _, history = _bigram_loop(impl, ref, reward, 3, log=lines.append, log_every=2,
                                      **kwargs)
    assert len(history) == 8 and len(lines) == 4
    assert np.mean([h["score"] for h in history[-3:]]) > history[0]["score"]
    stopped, _, _ = _bigram_loop(impl, ref, reward, 3, target_kl=1e-9, **kwargs)
    moved = np.abs(policy["Z"] - ref["Z"]).sum()
    assert 0 < np.abs(stopped["Z"] - ref["Z"]).sum() < moved


@pytest.mark.claim("L003-kl-objective")
def test_ppo_with_kl_penalty_approaches_the_regularised_optimum(impl, claim_figures):
    """Five one-token responses with rewards r: the best policy under a KL penalty of weight
    beta is pi*(y) ~ pi_ref(y) exp(r(y) / beta).  PPO (the loop every policy shares, here the
    bigram policy with its value table) starting from pi_ref (total-variation distance 0.39
    from pi*) ends within 0.08 of it (measured: 0.01 at seed 1, after 120 iterations)."""
    rng = np.random.default_rng(0)
    ref = impl("bigram_policy.init")(5, rng)
    r = np.array([1.0, 0.2, -0.5, 0.8, 0.0])
    beta = 0.5
    policy, _, history = impl("rlhf_loop.ppo_train")(
        impl("bigram_policy.policy")(1), {"Z": ref["Z"].copy()}, ref,
        lambda batch: r[batch["responses"][:, 0]], [np.array([5])],
        critic=impl("bigram_policy.critic")(),
        critic_params=impl("bigram_policy.critic_init")(1, 5),
        iterations=120, batch_size=128, beta=beta, lr=0.02, critic_lr=0.05, epochs=2,
        minibatch_size=64, seed=1)
    p_ref = impl("bigram_policy.distribution")(ref)
    star = p_ref * np.exp(r / beta)
    star /= star.sum()
    p = impl("bigram_policy.distribution")(policy)
    assert 0.5 * np.abs(p_ref - star).sum() > 0.35
    assert 0.5 * np.abs(p - star).sum() < 0.08
    assert history[-1]["score"] > history[0]["score"]
    claim_figures.record(**{"distance from π* before (total variation)":
                            0.5 * np.abs(p_ref - star).sum(),
                            "distance from π* after 120 iterations": 0.5 * np.abs(p - star).sum(),
                            "score, first iteration": history[0]["score"],
                            "score, last iteration": history[-1]["score"]})


@pytest.mark.parametrize(("call", "args", "error", "needle"), [
    ("preference.forward", (np.zeros(3), np.zeros(4)), ValueError, "'r_rejected' must have shape"),
    ("preference.forward", (np.array([np.nan]), np.zeros(1)), ValueError, "'r_chosen' must be"),
    ("ppo.policy_forward", (np.zeros(2), np.zeros(2), np.zeros(2), 0.0), ValueError,
     "'clip_eps' must be > 0"),
    ("dpo.forward", (np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2)), ValueError,
     "'policy_rejected' must have shape"),
], ids=["pair lengths", "NaN reward", "eps 0", "dpo lengths"])
def test_rlhf_bad_input(impl, call, args, error, needle):
    with pytest.raises(error) as info:
        impl(call)(*args)
    assert needle in str(info.value)


@pytest.mark.claim("L003-reward-learns-preferences")
def test_reward_model_learns_preferences_with_the_bradley_terry_loss(impl, claim_figures):
    """Thirty AdamW steps on 24 pairs where the chosen sequence holds token 1 and the
    rejected one does not: the pairwise loss falls from about log 2 to under a third of it
    and the model ranks every pair correctly."""
    config = GPTConfig(vocab_size=6, context_len=5, d_model=8, n_heads=2, n_layers=1)
    rng = np.random.default_rng(0)
    params = hp.gpt2_like_reward_model(config, rng)
    chosen = rng.integers(2, 6, size=(24, 5))
    chosen[np.arange(24), rng.integers(0, 5, 24)] = 1
    rejected = rng.integers(2, 6, size=(24, 5))
    lengths = np.full(24, 5)
    ids = np.concatenate([chosen, rejected])
    state = impl("adamw.init")(params)
    losses = []
    for _ in range(30):
        r, cache = impl("reward_model.forward")(ids, params, config, np.concatenate([lengths,
                                                                                     lengths]))
        loss, pcache = impl("preference.forward")(r[:24], r[24:])
        g = impl("preference.backward")(1.0, pcache)
        grads = impl("reward_model.backward")(np.concatenate([g["r_chosen"], g["r_rejected"]]),
                                              cache)
        params, state = impl("adamw.step")(params, grads, state, lr=3e-2, weight_decay=0.0)
        losses.append(loss)
    assert abs(losses[0] - np.log(2)) < 0.05
    assert losses[-1] < losses[0] / 3
    r, _ = impl("reward_model.forward")(ids, params, config, np.concatenate([lengths, lengths]))
    assert np.all(r[:24] > r[24:])
    claim_figures.record(pairwise_loss_at_step_1=losses[0], pairwise_loss_at_step_30=losses[-1],
                         pairs_ranked_correctly=int(np.sum(r[:24] > r[24:])), pairs=24)


# ------------------------------------------------------------------ conventions (SB3 / TRL)

def _sb3_gae(rewards, values, episode_starts, last_values, last_dones, gamma, lam):
    """stable-baselines3's rollout-buffer recursion, restated from its definition for one
    environment per row: episode_starts[t] is True when step t begins a new episode, and the
    step after the buffer is bootstrapped with last_values unless last_dones."""
    B, T = rewards.shape
    adv = np.zeros((B, T))
    last = np.zeros(B)
    for t in reversed(range(T)):
        if t == T - 1:
            non_terminal, next_values = 1.0 - last_dones, last_values
        else:
            non_terminal, next_values = 1.0 - episode_starts[:, t + 1], values[:, t + 1]
        delta = rewards[:, t] + gamma * next_values * non_terminal - values[:, t]
        last = delta + gamma * lam * non_terminal * last
        adv[:, t] = last
    return adv


@given(st.integers(1, 3), st.integers(1, 8), st.floats(0.0, 1.0), st.floats(0.0, 1.0),
       hs.seeds)
def test_gae_equals_sb3_with_dones_shifted_to_episode_starts(impl, B, T, gamma, lam, seed):
    """Our dones[t] ("terminated after step t") is SB3's episode_starts[t + 1]; the bootstrap
    of the last step is explicit (next_value) and cut by that step's done flag."""
    rng = np.random.default_rng(seed)
    r, v = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    dones = rng.random((B, T)) < 0.3
    next_value = rng.standard_normal(B)
    adv, ret = impl("gae.advantages")(r, v, dones, gamma, lam, next_value=next_value)
    starts = np.concatenate([np.zeros((B, 1), bool), dones[:, :-1]], axis=1)
    expected = _sb3_gae(r, v, starts, next_value, dones[:, -1], gamma, lam)
    assert_close(adv, expected, F64, name="advantages", reference_scale=1.0)
    assert_close(ret, expected + v, F64, name="returns", reference_scale=1.0)


def test_gae_bootstrap_is_explicit(impl):
    """No silent zero: leaving out next_value is an error, and a row that does not end at the
    last step bootstraps from it (gamma * next_value enters the last TD error)."""
    r, v = np.zeros((1, 2)), np.zeros((1, 2))
    open_end = np.zeros((1, 2), bool)
    with pytest.raises(TypeError, match="next_value"):
        impl("gae.advantages")(r, v, open_end, 0.9, 1.0)
    adv, _ = impl("gae.advantages")(r, v, open_end, 0.9, 1.0, next_value=np.array([2.0]))
    np.testing.assert_allclose(adv, [[0.9 * 0.9 * 2.0, 0.9 * 2.0]], rtol=1e-15)
    ended = np.array([[False, True]])
    adv, _ = impl("gae.advantages")(r, v, ended, 0.9, 1.0, next_value=np.array([2.0]))
    assert np.all(adv == 0.0)


@given(st.integers(1, 3), st.integers(2, 8), st.floats(0.0, 1.0), hs.seeds)
def test_gae_time_limit_truncation_is_sb3s_bootstrap(impl, B, T, gamma, seed):
    """A truncation after step t stops the recursion like a termination, but its TD error
    bootstraps from the value of the state it was cut at: the same as SB3's trick of adding
    gamma * V(that state) to r_t and marking the step done."""
    rng = np.random.default_rng(seed)
    r, v = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    dones = rng.random((B, T)) < 0.2
    truncated = rng.random((B, T)) < 0.3
    cut_value = rng.standard_normal((B, T))
    nv = rng.standard_normal(B)
    adv, _ = impl("gae.advantages")(r, v, dones, gamma, 0.9, next_value=nv,
                                    truncated=truncated, truncated_value=cut_value)
    only_cut = truncated & ~dones
    sb3_r = r + np.where(only_cut, gamma * cut_value, 0.0)
    expected, _ = impl("gae.advantages")(sb3_r, v, dones | truncated, gamma, 0.9,
                                         next_value=nv)
    assert_close(adv, expected, F64, name="advantages", reference_scale=1.0)


@given(st.integers(1, 3), st.integers(2, 8), st.floats(0.0, 1.0), st.floats(0.0, 1.0),
       hs.seeds)
def test_gae_with_a_mask_is_gae_over_the_selected_steps_only(impl, B, T, gamma, lam, seed):
    """Steps outside the mask (prompt, padding) are skipped: the result on the selected steps
    equals GAE on each row with its unselected steps removed, and is 0 elsewhere."""
    rng = np.random.default_rng(seed)
    r, v = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    mask = rng.random((B, T)) < 0.6
    mask[:, 0] = True
    dones = rng.random((B, T)) < 0.2
    nv = rng.standard_normal(B)
    adv, ret = impl("gae.advantages")(r, v, dones & mask, gamma, lam, next_value=nv, mask=mask)
    assert np.all(adv[~mask] == 0.0) and np.all(ret[~mask] == 0.0)
    for b in range(B):
        sel = mask[b]
        a, rr = impl("gae.advantages")(r[b:b + 1, sel], v[b:b + 1, sel],
                                       dones[b:b + 1, sel], gamma, lam, next_value=nv[b:b + 1])
        assert_close(adv[b, sel], a[0], F64, name=f"row {b}", reference_scale=1.0)
        assert_close(ret[b, sel], rr[0], F64, name=f"row {b} returns", reference_scale=1.0)


@given(st.integers(2, 30), hs.seeds)
def test_whiten_uses_the_population_variance(impl, n, seed):
    """Mean 0 and (population) variance 1 over the mask; SB3 and TRL divide by the sample
    standard deviation instead, which is ours times sqrt((n - 1) / n)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, n)) * 3 + 1
    mask = rng.random((2, n)) < 0.7
    mask[0, :2] = True
    w = impl("gae.whiten")(x, mask, eps=0.0)
    assert abs(w[mask].mean()) < 1e-12 and abs(w[mask].var() - 1) < 1e-12
    sel = torch.from_numpy(x[mask])
    libraries = ((sel - sel.mean()) / sel.std()).numpy()       # torch.std: n - 1
    k = int(mask.sum())
    assert_close(w[mask] * np.sqrt((k - 1) / k), libraries, F64, name="converted")


def test_ppo_stats_are_sb3s(impl):
    """approx_kl = mean((rho - 1) - log rho) and clip_fraction = mean(|rho - 1| > eps), both
    masked means (SB3's definitions; TRL's differ: see the conventions table)."""
    rng = np.random.default_rng(4)
    new, old = rng.normal(-1, 0.3, (3, 5)), rng.normal(-1, 0.3, (3, 5))
    mask = rng.random((3, 5)) < 0.6
    mask[0, 0] = True
    s = impl("ppo.stats")(new, old, 0.2, mask)
    log_ratio = (new - old)[mask]
    assert abs(s["approx_kl"] - np.mean(np.expm1(log_ratio) - log_ratio)) < 1e-15
    assert s["clip_fraction"] == np.mean(np.abs(np.exp(log_ratio) - 1) > 0.2)


def _bigram_run(impl, **kwargs):
    rng = np.random.default_rng(0)
    ref = impl("bigram_policy.init")(4, rng)
    r = np.array([1.0, 0.0, -1.0, 0.5])
    settings = {"iterations": 3, "batch_size": 32, "beta": 0.1, "lr": 0.05, "epochs": 3,
                "minibatch_size": 8, "seed": 3, **kwargs}
    return impl("rlhf_loop.ppo_train")(
        impl("bigram_policy.policy")(2), ref, ref,
        lambda batch: r[batch["responses"]].sum(axis=1), [np.array([4]), np.array([2])],
        critic=impl("bigram_policy.critic")(),
        critic_params=impl("bigram_policy.critic_init")(2, 4),
        **settings)


def test_early_stop_is_checked_per_minibatch_before_the_optimiser_step(impl):
    """The first minibatch of an iteration always steps (the policy is the rollout policy, so
    its approximate KL is 0); with a tiny target_kl the next one measures a KL above 1.5 x
    target and stops the iteration before stepping: one step per iteration.  Without a
    target every minibatch of every epoch steps (3 epochs x 4 minibatches)."""
    _, _, stopped = _bigram_run(impl, target_kl=1e-12)
    assert [h["steps"] for h in stopped] == [1, 1, 1]
    assert all(h["stopped_early"] for h in stopped)
    _, _, free = _bigram_run(impl)
    assert [h["steps"] for h in free] == [12, 12, 12]
    assert not any(h["stopped_early"] for h in free)


def test_the_loop_is_reproducible_from_its_seed(impl):
    a, ca, ha = _bigram_run(impl)
    b, cb, hb = _bigram_run(impl)
    c, _, _ = _bigram_run(impl, seed=4)
    np.testing.assert_array_equal(a["Z"], b["Z"])
    np.testing.assert_array_equal(ca["table"], cb["table"])
    assert ha == hb
    assert not np.array_equal(a["Z"], c["Z"])


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"gamma": 1.5}, ValueError, "'gamma' must be in [0, 1]"),
    ({"lam": -0.1}, ValueError, "'lam' must be in [0, 1]"),
    ({"next_value": np.zeros(2)}, ValueError, "'next_value' must have shape (B,) = (1,)"),
    ({"dones": np.zeros((1, 2))}, TypeError, "'dones' must be a boolean NumPy array"),
    ({"truncated": np.ones((1, 2), bool)}, ValueError, "'truncated_value' is needed"),
], ids=["gamma", "lambda", "bootstrap shape", "float dones", "truncation without values"])
def test_gae_bad_input(impl, kwargs, error, needle):
    call = {"rewards": np.zeros((1, 2)), "values": np.zeros((1, 2)),
            "dones": np.zeros((1, 2), bool), "gamma": 0.9, "lam": 0.9,
            "next_value": np.zeros(1), **kwargs}
    with pytest.raises(error) as info:
        impl("gae.advantages")(**call)
    assert "gae.advantages" in str(info.value) and needle in str(info.value)


# ------------------------------------------------------------------ the loop against a torch twin

def _fixed_rollout(impl):
    """Four right-padded responses of 1 to 3 tokens after the BOS prompt of a 3-token
    vocabulary (BOS = 3), repeated contexts included."""
    return impl("rlhf_loop.batch")([np.array([3])] * 4,
                                   [np.array([0, 2, 1]), np.array([2]), np.array([1, 1]),
                                    np.array([2, 0, 2])])


def _torch_ppo_loop(Z0, Z_ref, table0, batch, scores, *, iterations, epochs, beta, kl_target,
                    kl_horizon, clip_eps, value_clip_eps, ent_coef, lr, critic_lr, gamma, lam,
                    target_kl, whiten_advantages, max_grad_norm):
    """rlhf_loop.ppo_train's steps (its module docstring) written in torch for the bigram
    policy and its value table, when every rollout is ``batch`` and one minibatch holds it
    all: the KL-penalised rewards, GAE (the sum form) with each response done at its last
    token, whitening, then per epoch the early-stop test, the clipped surrogate minus the
    entropy bonus, the (clipped) value loss, global-norm clipping and torch's Adam; after
    each iteration the adaptive KL controller."""
    mask = batch["mask"]
    B, L = mask.shape
    ctx = torch.from_numpy(np.concatenate([batch["prompts"][:, -1:],
                                           batch["responses"][:, :-1]], axis=1))
    tokens = torch.from_numpy(batch["responses"])[..., None]
    pos = torch.arange(L).expand(B, L)
    m = torch.from_numpy(mask).to(torch.float64)
    last = mask.sum(axis=1) - 1                                 # right-padded responses

    def mean_m(x):
        return (x * m).sum() / m.sum()

    def log_probs(Z):
        all_lp = torch.log_softmax(Z[ctx], dim=-1)
        return all_lp.gather(-1, tokens)[..., 0], all_lp

    Z = torch.tensor(Z0, requires_grad=True)
    table = torch.tensor(table0, requires_grad=True)
    opt, critic_opt = torch.optim.Adam([Z], lr=lr), torch.optim.Adam([table], lr=critic_lr)
    history = []
    for it in range(iterations):
        with torch.no_grad():
            logp_old = log_probs(Z)[0].numpy().copy()
            logp_ref = log_probs(torch.from_numpy(Z_ref))[0].numpy()
            values_old = table[pos, ctx].numpy().copy()
        rewards = np.where(mask, -beta * (logp_old - logp_ref), 0.0)
        rewards[np.arange(B), last] += scores
        dones = np.zeros((B, L), bool)
        dones[np.arange(B), last] = True
        adv = np.where(mask, _gae_by_sums(rewards, values_old, dones, gamma, lam,
                                          np.zeros(B)), 0.0)
        returns = np.where(mask, adv + values_old, 0.0)
        if whiten_advantages:
            adv = np.where(mask, (adv - adv[mask].mean()) / np.sqrt(adv[mask].var() + 1e-8), 0.0)
        seq_kl = float(np.mean(np.where(mask, logp_old - logp_ref, 0.0).sum(axis=1)))
        record = {"iteration": it, "score": float(scores.mean()), "kl": seq_kl, "beta": beta,
                  "length": float(mask.sum(axis=1).mean()), "steps": 0,
                  "stopped_early": False, "clip_fraction": 0.0, "approx_kl": 0.0,
                  "entropy": float("nan"), "policy_loss": float("nan"),
                  "value_loss": float("nan")}
        A, R, old = (torch.from_numpy(a) for a in (adv, returns, values_old))
        for _ in range(epochs):
            logp, all_lp = log_probs(Z)
            log_ratio = logp - torch.from_numpy(logp_old)
            ratio = torch.exp(log_ratio)
            approx_kl = mean_m((ratio - 1) - log_ratio).item()
            if target_kl is not None and approx_kl > 1.5 * target_kl:
                record["stopped_early"] = True
                break
            surrogate = -mean_m(torch.minimum(ratio * A,
                                              torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A))
            entropy = mean_m(-(all_lp.exp() * all_lp).sum(-1))
            loss = surrogate - ent_coef * entropy
            v = table[pos, ctx]
            err = (v - R) ** 2
            if value_clip_eps is not None:
                clipped = old + torch.clamp(v - old, -value_clip_eps, value_clip_eps)
                err = torch.maximum(err, (clipped - R) ** 2)
            v_loss = 0.5 * mean_m(err)
            opt.zero_grad()
            critic_opt.zero_grad()
            (loss + v_loss).backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_([Z], max_grad_norm)
                torch.nn.utils.clip_grad_norm_([table], max_grad_norm)
            opt.step()
            critic_opt.step()
            record.update(steps=record["steps"] + 1, policy_loss=loss.item(),
                          value_loss=v_loss.item(), entropy=entropy.item(),
                          clip_fraction=mean_m((ratio - 1).abs() > clip_eps).item(),
                          approx_kl=approx_kl)
        history.append(record)
        if kl_target is not None:
            beta = beta * (1 + np.clip(seq_kl / kl_target - 1, -0.2, 0.2) * B / kl_horizon)
    return Z.detach().numpy(), table.detach().numpy(), history


LOOP_SETTINGS = {
    "the defaults' switches": dict(kl_target=None, value_clip_eps=0.2, ent_coef=0.0,
                                   target_kl=None, whiten_advantages=True, max_grad_norm=None),
    "every option off its default": dict(kl_target=0.05, kl_horizon=7, value_clip_eps=None,
                                         ent_coef=0.05, target_kl=None,
                                         whiten_advantages=False, max_grad_norm=0.05,
                                         clip_eps=0.1, gamma=0.8, lam=0.6, beta=0.3),
    "an early stop in the third epoch": dict(kl_target=None, value_clip_eps=0.05,
                                             ent_coef=-0.02, target_kl=0.045,
                                             whiten_advantages=True, max_grad_norm=1.0,
                                             gamma=0.9, lam=0.3),
}


@pytest.mark.parametrize("case", sorted(LOOP_SETTINGS))
def test_ppo_train_is_its_documented_steps(impl, case):
    """Two iterations of three epochs of the loop on one fixed rollout (a policy whose
    sampler always returns the same right-padded responses), one minibatch per epoch: every
    history entry (score, KL, beta, length, steps, early stop, clip fraction, approximate
    KL, entropy, both losses) and the trained policy and critic equal a torch twin of the
    documented steps, with each option at its default and off it (KL target, value clip,
    entropy bonus, early stop, whitening, gradient clipping, gamma, lambda, clip range)."""
    rng = np.random.default_rng(7)
    batch = _fixed_rollout(impl)
    Z_ref = rng.standard_normal((4, 3))
    Z0 = Z_ref + 0.5 * rng.standard_normal((4, 3))
    table0 = rng.standard_normal((3, 4))
    scores = np.array([1.0, -0.5, 0.25, 2.0])
    settings = {"iterations": 2, "epochs": 3, "beta": 0.1, "kl_horizon": 10_000,
                "clip_eps": 0.2, "lr": 0.2, "critic_lr": 0.1, "gamma": 1.0, "lam": 0.95,
                **LOOP_SETTINGS[case]}

    def sample(params, prompts, rng):
        assert len(prompts) == 4 and all(p.tolist() == [3] for p in prompts)
        return {k: v.copy() for k, v in batch.items()}

    policy = impl("rlhf_loop.Policy")(sample=sample, logits=impl("bigram_policy.logits"),
                                      logits_backward=impl("bigram_policy.logits_backward"))
    Z, table, history = impl("rlhf_loop.ppo_train")(
        policy, {"Z": Z0.copy()}, {"Z": Z_ref.copy()}, lambda b: scores.copy(),
        [np.array([3])], critic=impl("bigram_policy.critic")(),
        critic_params={"table": table0.copy()}, batch_size=4, minibatch_size=4, seed=0,
        **settings)
    Z_t, table_t, history_t = _torch_ppo_loop(Z0, Z_ref, table0, batch, scores, **settings)
    assert len(history) == len(history_t)
    for got, want in zip(history, history_t, strict=True):
        assert set(got) == set(want)
        for key in ("iteration", "steps", "stopped_early", "clip_fraction"):
            assert got[key] == want[key], (got["iteration"], key, got[key], want[key])
        for key in ("score", "kl", "beta", "length", "approx_kl", "entropy", "policy_loss",
                    "value_loss"):
            assert_close(got[key], want[key], F64, name=f"{key} of iteration "
                         f"{got['iteration']}", reference_scale=1.0)
    assert_close(Z["Z"], Z_t, F64, name="trained Z", reference_scale=1.0)
    assert_close(table["table"], table_t, F64, name="trained value table", reference_scale=1.0)
    if case == "an early stop in the third epoch":
        assert [h["steps"] for h in history] == [2, 2] and all(h["stopped_early"]
                                                               for h in history)
    else:
        assert [h["steps"] for h in history] == [3, 3]
        assert max(h["clip_fraction"] for h in history) > 0


# ------------------------------------------------------------------ edges mutation testing found

@given(hs.shapes(1, 3, 4), hs.seeds)
def test_kl_estimators_are_their_closed_forms_entry_by_entry(impl, shape, seed):
    """Each estimate, entry by entry, on arrays of any shape: k1 = -log r, k2 = (log r)^2 / 2,
    k3 = (r - 1) - log r with log r = log p - log q, against torch."""
    rng = np.random.default_rng(seed)
    logp_q, logp_p = -rng.exponential(size=shape), -rng.exponential(size=shape) * 3
    ks = impl("kl.estimators")(logp_q, logp_p)
    log_r = torch.from_numpy(logp_p) - torch.from_numpy(logp_q)
    for name, want in (("k1", -log_r), ("k2", 0.5 * log_r**2),
                       ("k3", torch.expm1(log_r) - log_r)):
        assert ks[name].shape == shape
        assert_close(ks[name], want.numpy(), F64, name=name, reference_scale=1.0)


def test_adaptive_kl_controller_is_its_formula(impl):
    """beta (1 + clip(KL / target - 1, -0.2, 0.2) n_steps / horizon), at both clip edges and
    between them, with a step count that is not a multiple of the horizon; no step, no
    change."""
    update = impl("ppo.adaptive_kl_update")
    for kl, error in ((0.0, -0.2), (-3.0, -0.2), (4.5, -0.25 + 0.05), (7.5, 0.25),
                      (6.6, 0.1), (100.0, 0.2)):
        want = 0.3 * (1 + float(np.clip(kl / 6.0 - 1, -0.2, 0.2)) * 7 / 30)
        got = update(0.3, kl=kl, target=6.0, horizon=30, n_steps=7)
        assert abs(got - want) <= 1e-15, (kl, got, want)
        assert abs(got - 0.3 * (1 + max(-0.2, min(0.2, error)) * 7 / 30)) <= 1e-12
    assert update(0.3, kl=100.0, target=6.0, horizon=30, n_steps=0) == 0.3
    assert update(0.3, kl=100.0, target=6.0, horizon=1, n_steps=1) == 0.3 * 1.2
    assert update(0.0, kl=100.0, target=6.0, horizon=1, n_steps=1) == 0.0


def test_clip_fraction_counts_ratios_strictly_beyond_the_range(impl):
    """|rho - 1| > eps, strictly: a ratio exactly on the edge of the range is not clipped."""
    logp_new = np.log(np.array([1.5, 0.4, 1.25, 1.0]))
    rho = np.exp(logp_new)
    eps = float(rho[0] - 1.0)                          # the first ratio sits on the edge
    s = impl("ppo.stats")(logp_new, np.zeros(4), eps)
    assert s["clip_fraction"] == np.mean(np.abs(rho - 1.0) > eps) == 0.25


def test_value_loss_at_a_tie_takes_the_plain_error(impl):
    """Where the plain and the clipped squared errors are equal but the errors have opposite
    signs (V - R = -(V_clip - R)), the loss's gradient is the plain error's (the clipped one
    is a constant there): the same convention as the policy's surrogate."""
    values, old, returns = np.array([1.0, 0.3]), np.array([0.0, 0.0]), np.array([0.75, 1.0])
    loss, cache = impl("ppo.value_forward")(values, returns, old, 0.5)
    assert loss == 0.5 * np.mean([0.0625, 0.49])
    g = impl("ppo.value_backward")(2.0, cache)["values"]
    np.testing.assert_array_equal(g, 2.0 * np.array([0.25, -0.7]) / 2)


def test_value_loss_on_the_clip_edge_passes_the_clipped_gradient(impl):
    """V - V_old exactly on the clip edge (-eps), where rounding makes V_clip = V_old +
    (V - V_old) one ulp off V and the clipped error the larger: the gradient flows through
    the clipped branch (the clip's slope is 1 on its edges, as torch.clamp's), not 0."""
    old = np.array([12.634142164861286, 0.0])
    values = np.array([1.4296171063502774, 0.3])
    returns = values + np.array([1.0, -0.2])
    eps = float(abs(values[0] - old[0]))
    clipped = old[0] + np.clip(values[0] - old[0], -eps, eps)
    assert clipped != values[0] and (clipped - returns[0])**2 > (values[0] - returns[0])**2
    loss, cache = impl("ppo.value_forward")(values, returns, old, eps)
    got = impl("ppo.value_backward")(1.0, cache)["values"]
    v = torch.tensor(values, requires_grad=True)
    o, r = torch.from_numpy(old), torch.from_numpy(returns)
    v_clip = o + torch.clamp(v - o, -eps, eps)
    expected = 0.5 * torch.maximum((v - r)**2, (v_clip - r)**2).mean()
    expected.backward()
    assert loss == expected.item()
    np.testing.assert_array_equal(got, v.grad.numpy())


def test_entropy_of_a_single_distribution(impl):
    """Logits of shape (V,): one distribution, its entropy and gradient against torch."""
    logits = np.array([0.1, 0.5, -0.3, 2.0])
    h, cache = impl("ppo.entropy_forward")(logits)
    got = impl("ppo.entropy_backward")(0.7, cache)["logits"]
    z = torch.tensor(logits, requires_grad=True)
    p = torch.softmax(z, -1)
    expected = -(p * torch.log_softmax(z, -1)).sum()
    (0.7 * expected).backward()
    np.testing.assert_allclose(h, expected.item(), rtol=1e-14)
    np.testing.assert_allclose(got, z.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_logprobs_of_one_position_and_in_float32(impl):
    """Logits of shape (V,) and a 0-d token: one log-probability and its gradient against
    torch; float32 logits and upstream give float32 log-probabilities and gradients."""
    rng = np.random.default_rng(5)
    logits, token = rng.standard_normal(5), np.array(2)
    logp, cache = impl("ppo.logprobs_forward")(logits, token)
    got = impl("ppo.logprobs_backward")(np.array(1.5), cache)["logits"]
    z = torch.tensor(logits, requires_grad=True)
    expected = torch.log_softmax(z, -1)[2]
    (1.5 * expected).backward()
    assert np.shape(logp) == ()
    np.testing.assert_allclose(logp, expected.item(), rtol=1e-14)
    np.testing.assert_allclose(got, z.grad.numpy(), rtol=1e-13, atol=1e-15)
    logits32, tokens = rng.standard_normal((2, 3, 5)).astype(np.float32), rng.integers(0, 5,
                                                                                        (2, 3))
    logp32, cache = impl("ppo.logprobs_forward")(logits32, tokens)
    up = rng.standard_normal((2, 3)).astype(np.float32)
    grad32 = impl("ppo.logprobs_backward")(up, cache)["logits"]
    assert logp32.dtype == grad32.dtype == np.float32
    _, cache64 = impl("ppo.logprobs_forward")(logits32.astype(np.float64), tokens)
    np.testing.assert_allclose(grad32, impl("ppo.logprobs_backward")(
        up.astype(np.float64), cache64)["logits"], rtol=1e-5, atol=1e-6)


def test_scalar_upstream_gradients_may_be_0d_arrays(impl):
    """A 0-d float array is a scalar upstream gradient for every PPO loss."""
    rng = np.random.default_rng(0)
    logp, adv = rng.normal(-1, 0.1, 5), rng.standard_normal(5)
    _, c = impl("ppo.policy_forward")(logp, logp - 0.05, adv)
    g = impl("ppo.policy_backward")(np.array(-2.5), c)["logp_new"]
    np.testing.assert_array_equal(g, -2.5 * impl("ppo.policy_backward")(1.0, c)["logp_new"])
    _, c = impl("ppo.value_forward")(logp, adv)
    g = impl("ppo.value_backward")(np.array(3.0), c)["values"]
    np.testing.assert_array_equal(g, 3.0 * impl("ppo.value_backward")(1.0, c)["values"])
    _, c = impl("ppo.entropy_forward")(rng.standard_normal((2, 4)))
    g = impl("ppo.entropy_backward")(np.array(0.5), c)["logits"]
    np.testing.assert_array_equal(g, 0.5 * impl("ppo.entropy_backward")(1.0, c)["logits"])


@pytest.mark.parametrize("dloss, error, words", [
    (np.zeros(2), ValueError, "must have shape (), got shape (2,)"),
    (np.array(1, np.int64), TypeError, "must have a floating-point dtype, got dtype int64")])
def test_scalar_upstream_gradients_of_another_shape_or_dtype_are_refused(impl, dloss, error,
                                                                          words):
    """An upstream gradient array that is not a 0-d float is refused by each PPO loss's
    backward, naming it and 'dloss' (in the reference's own words for the reference)."""
    rng = np.random.default_rng(0)
    logp, adv = rng.normal(-1, 0.1, 5), rng.standard_normal(5)
    caches = {"ppo.policy_backward": impl("ppo.policy_forward")(logp, logp - 0.05, adv)[1],
              "ppo.value_backward": impl("ppo.value_forward")(logp, adv)[1],
              "ppo.entropy_backward": impl("ppo.entropy_forward")(
                  rng.standard_normal((2, 4)))[1]}
    for name, cache in caches.items():
        with pytest.raises(error) as info:
            impl(name)(dloss, cache)
        message = str(info.value)
        assert name in message and "'dloss'" in message, message
        if impl.speaks_as_reference:
            assert message == f"{name}: argument 'dloss' {words}", message


def test_whiten_needs_two_entries(impl):
    """Two selected entries whiten to -1 and +1 (with eps 0); one is refused."""
    x = np.array([[1.0, 3.0, 50.0]])
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(impl("gae.whiten")(x, mask, eps=0.0)[mask], [-1.0, 1.0],
                               rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="at least 2"):
        impl("gae.whiten")(x, np.array([[True, False, False]]))


@given(st.integers(1, 3), st.integers(2, 6), st.floats(0.0, 1.0), hs.seeds)
def test_gae_truncation_edges(impl, B, T, lam, seed):
    """truncated_value is read only where a step is truncated and not done: given with no
    truncation it changes nothing, and where a step is both done and truncated the
    termination wins (no bootstrap)."""
    rng = np.random.default_rng(seed)
    r, v = rng.standard_normal((B, T)), rng.standard_normal((B, T))
    dones = rng.random((B, T)) < 0.3
    nv, tv = rng.standard_normal(B), rng.standard_normal((B, T)) * 10
    plain = impl("gae.advantages")(r, v, dones, 0.9, lam, next_value=nv)
    none_cut = impl("gae.advantages")(r, v, dones, 0.9, lam, next_value=nv,
                                      truncated=np.zeros((B, T), bool), truncated_value=tv)
    both = impl("gae.advantages")(r, v, dones, 0.9, lam, next_value=nv, truncated=dones.copy(),
                                  truncated_value=tv)
    for got in (none_cut, both):
        assert_close(got[0], plain[0], F64, name="advantages", reference_scale=1.0)
        assert_close(got[1], plain[1], F64, name="returns", reference_scale=1.0)
    with pytest.raises(ValueError, match="'truncated_value' must have the shape"):
        impl("gae.advantages")(r, v, dones, 0.9, lam, next_value=nv, truncated_value=tv[:, :1])


def test_bigram_policy_with_huge_logits(impl):
    """Logits of size 1e3 (a nearly certain policy): sampling and the first-token
    distribution stay finite and pick the largest logit of each row."""
    Z = np.array([[900.0, 1000.0, -1000.0], [1000.0, -5.0, 990.0], [0.0, 0.0, 1000.0],
                  [-1000.0, 1000.0, 999.0]])
    p = impl("bigram_policy.distribution")({"Z": Z})
    np.testing.assert_allclose(p, [0.0, 1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0))],
                               rtol=1e-12, atol=1e-300)
    batch = impl("bigram_policy.sample")({"Z": Z}, [np.array([0]), np.array([2]),
                                                    np.array([1, 0])], 3,
                                         np.random.default_rng(0))
    np.testing.assert_array_equal(batch["responses"], [[1, 0, 1], [2, 2, 2], [1, 0, 1]])


def test_bigram_sampling_is_blind_to_a_constant_added_to_a_row(impl):
    """softmax(z + c) = softmax(z) row by row: with whole-number logits (exact after adding
    800), shifting rows 0 and 2 of Z by 800 draws exactly the same tokens from the same
    seed, even in a batch whose rows read shifted and unshifted rows side by side (one shift
    for the whole batch would underflow every unshifted row to probability 0)."""
    Z = np.array([[0.0, 1.0, 2.0], [2.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    shifted = Z.copy()
    shifted[[0, 2]] += 800.0
    prompts = [np.array([0]), np.array([1]), np.array([3]), np.array([2])] * 50
    draw = [impl("bigram_policy.sample")({"Z": z}, prompts, 6, np.random.default_rng(4))
            for z in (Z, shifted)]
    np.testing.assert_array_equal(draw[0]["responses"], draw[1]["responses"])
    assert len(np.unique(draw[0]["responses"])) == 3


def test_bigram_critic_of_a_one_token_vocabulary(impl):
    """critic_init(L, 1): a zero table of shape (L, 2) (the one token and the BOS row)."""
    table = impl("bigram_policy.critic_init")(3, 1)["table"]
    assert table.shape == (3, 2) and not table.any()


def test_bigram_critic_is_a_table_lookup_and_its_scatter_add(impl):
    """V[b, t] = table[t, previous token] read from a table longer than the responses, and
    its gradient, with repeated cells, against torch (float32 in, float32 out); a new critic
    is all zeros."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((5, 4))
    batch = impl("rlhf_loop.batch")([np.array([3]), np.array([2, 3]), np.array([1])],
                                    [np.array([0, 0, 2]), np.array([0]), np.array([1, 0, 0])])
    v, cache = impl("bigram_policy.values")({"table": table}, batch)
    dv = rng.standard_normal(v.shape)
    grads = impl("bigram_policy.values_backward")(dv, cache)
    table_t = torch.tensor(table, requires_grad=True)
    ctx = torch.tensor([[3, 0, 0], [3, 0, 0], [1, 1, 0]])
    v_t = table_t[torch.arange(3).expand(3, 3), ctx]
    v_t.backward(torch.from_numpy(dv))
    assert_close(v, v_t.detach().numpy(), F64, name="values")
    assert_close(grads["table"], table_t.grad.numpy(), F64, name="d table", reference_scale=1.0)
    v32, cache32 = impl("bigram_policy.values")({"table": table.astype(np.float32)}, batch)
    g32 = impl("bigram_policy.values_backward")(dv.astype(np.float32), cache32)["table"]
    assert v32.dtype == np.float32 and g32.dtype == np.float32       # float32 in, float32 out
    np.testing.assert_allclose(g32, table_t.grad.numpy(), rtol=1e-6, atol=1e-6)
    new = impl("bigram_policy.critic_init")(3, 4)
    assert set(new) == {"table"}
    np.testing.assert_array_equal(new["table"], np.zeros((3, 5)))
    assert impl("bigram_policy.policy")(4).sample(
        {"Z": rng.standard_normal((5, 4))}, [np.array([4])],
        np.random.default_rng(1))["responses"].shape == (1, 4)


def test_batch_layout_and_sequences(impl):
    """Prompts left-padded, responses right-padded, padding written as pad_id, masks True on
    real tokens; sequences() is each row's prompt block then its response block."""
    b = impl("rlhf_loop.batch")([np.array([5, 6]), np.array([7])],
                                [np.array([1]), np.array([2, 3, 4])], pad_id=9)
    np.testing.assert_array_equal(b["prompts"], [[5, 6], [9, 7]])
    np.testing.assert_array_equal(b["prompt_mask"], [[True, True], [False, True]])
    np.testing.assert_array_equal(b["responses"], [[1, 9, 9], [2, 3, 4]])
    np.testing.assert_array_equal(b["mask"], [[True, False, False], [True, True, True]])
    ids, am = impl("rlhf_loop.sequences")(b)
    np.testing.assert_array_equal(ids, [[5, 6, 1, 9, 9], [9, 7, 2, 3, 4]])
    np.testing.assert_array_equal(am, [[True, True, True, False, False],
                                       [False, True, True, True, True]])


@given(st.sampled_from([0.0, 0.05, -0.2]), st.sampled_from([0.1, 0.3]),
       st.sampled_from([None, 0.1]), hs.seeds)
def test_loop_losses_through_the_bigram_policy_match_torch(impl, ent_coef, clip_eps,
                                                            value_clip, seed):
    """policy_loss_and_grads and value_loss_and_grads on the bigram policy and its value
    table: the losses, the info, and dloss times every gradient, against torch."""
    rng = np.random.default_rng(seed)
    Z, table = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    batch = _fixed_rollout(impl)
    shape = batch["mask"].shape
    logp_old = rng.normal(-1.0, 0.5, shape)
    adv, returns, old = (rng.standard_normal(shape) for _ in range(3))
    dloss = float(rng.normal() * 3)
    ctx = torch.from_numpy(np.concatenate([batch["prompts"][:, -1:],
                                           batch["responses"][:, :-1]], axis=1))
    m = torch.from_numpy(batch["mask"]).to(torch.float64)
    Z_t, table_t = torch.tensor(Z, requires_grad=True), torch.tensor(table, requires_grad=True)
    all_lp = torch.log_softmax(Z_t[ctx], -1)
    logp = all_lp.gather(-1, torch.from_numpy(batch["responses"])[..., None])[..., 0]
    ratio = torch.exp(logp - torch.from_numpy(logp_old))
    A = torch.from_numpy(adv)
    surrogate = torch.minimum(ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A)
    entropy = (-(all_lp.exp() * all_lp).sum(-1) * m).sum() / m.sum()
    loss_t = -(surrogate * m).sum() / m.sum() - ent_coef * entropy
    (dloss * loss_t).backward()
    loss, grads, info = impl("rlhf_loop.policy_loss_and_grads")(
        impl("bigram_policy.policy")(3), {"Z": Z}, batch, logp_old, adv, clip_eps=clip_eps,
        ent_coef=ent_coef, dloss=dloss)
    assert_close(loss, loss_t.item(), F64, name="PPO objective", reference_scale=1.0)
    assert_close(info["entropy"], entropy.item(), F64, name="entropy", reference_scale=1.0)
    assert_close(info["logp"], logp.detach().numpy(), F64, name="logp")
    assert_close(grads["Z"], Z_t.grad.numpy(), F64, name="dZ", reference_scale=abs(dloss))
    v = table_t[torch.arange(3).expand(4, 3), ctx]
    R, old_t = torch.from_numpy(returns), torch.from_numpy(old)
    err = (v - R) ** 2
    if value_clip is not None:
        err = torch.maximum(err, (old_t + torch.clamp(v - old_t, -value_clip, value_clip) - R)
                            ** 2)
    v_loss_t = 0.5 * (err * m).sum() / m.sum()
    (dloss * v_loss_t).backward()
    v_loss, v_grads = impl("rlhf_loop.value_loss_and_grads")(
        impl("bigram_policy.critic")(), {"table": table}, batch, returns, old,
        clip_eps=value_clip, dloss=dloss)
    assert_close(v_loss, v_loss_t.item(), F64, name="value loss", reference_scale=1.0)
    assert_close(v_grads["table"], table_t.grad.numpy(), F64, name="d table",
                 reference_scale=abs(dloss))


def test_ppo_train_logs_each_log_every_th_iteration(impl):
    """log receives one line after iterations log_every, 2 log_every, ...: it names that
    iteration out of all of them and its record's score, KL, beta and steps."""
    ref = impl("bigram_policy.init")(3, np.random.default_rng(0))
    lines = []
    _, _, history = _bigram_loop(impl, ref, lambda tokens: (tokens == 1).mean(axis=1), 2,
                                 iterations=7, batch_size=8, minibatch_size=4, epochs=1,
                                 log=lines.append, log_every=3, kl_target=0.5)
    assert len(lines) == 2
    for line, it in zip(lines, (3, 6), strict=True):
        h = history[it - 1]
        assert line.startswith(f"iteration {it}/7 ")
        for part in (f"score {h['score']:.3f}", f"KL {h['kl']:.3f}", f"beta {h['beta']:.3g}",
                     f"steps {h['steps']}"):
            assert part in line, (line, part)


def test_pairs_from_a_ranking_array_and_refusals(impl):
    """A 1-D array ranking gives the pairs of its list; no pair from 0 or 1 items; a 2-D
    array, a set, a string, an unhashable item and a repeated item are refused (an array's
    items named as plain numbers)."""
    pairs = impl("preference.pairs_from_ranking")
    assert pairs(np.array([3, 1, 2])) == [(3, 1), (3, 2), (1, 2)]
    assert pairs([]) == [] and pairs(("only",)) == []
    for bad, error, needle in ((np.zeros((2, 2)), ValueError, "1-D, got shape (2, 2)"),
                               ({1, 2}, TypeError, "ordered sequence"),
                               ("abc", TypeError, "ordered sequence"),
                               ([[1], [2]], TypeError, "hashable"),
                               (["a", "b", "a"], ValueError, "must not repeat"),
                               (np.array([1, 2, 1]), ValueError, "got [1, 2, 1]")):
        with pytest.raises(error) as info:
            pairs(bad)
        message = str(info.value)
        assert message.startswith("preference.pairs_from_ranking: argument 'ranking'")
        assert needle in message, message


def _refusal_cases():
    """(function, call, error, what the message must name) for refusals no contract variant
    reaches: shapes that differ at the same rank, rows without a response token, left
    padding, tokens past the vocabulary, a score of the wrong shape, an optimiser step that
    overflows."""
    z2, z3, ones = np.zeros((2, 3)), np.zeros((2, 2)), np.ones((2, 3), bool)
    gae_args = {"rewards": z2, "values": z2, "dones": ~ones, "gamma": 0.9, "lam": 0.9,
                "next_value": np.zeros(2)}
    good = rlhf_loop_batch([np.array([3])], [np.array([0, 1])])
    b2 = rlhf_loop_batch([np.array([3]), np.array([3])], [np.array([0]), np.array([1])])

    def with_batch(**parts):
        return {**{k: v.copy() for k, v in good.items()}, **parts}

    return {
        "estimators of different shapes": (
            "kl.estimators", lambda f: f(z2, z3), ValueError, ["'logp_p'", "(2, 3)", "(2, 2)"]),
        "batch: prompts as one 2-D array": (
            "rlhf_loop.batch", lambda f: f(np.array([[1, 2]]), [np.array([1])]), TypeError,
            ["rlhf_loop.batch: argument 'prompts' must be a list of 1-D NumPy int arrays, got "
             "array of shape (1, 2) and dtype int64"]),
        "bigram critic: a table of ints": (
            "bigram_policy.values", lambda f: f({"table": np.zeros((3, 5), np.int64)},
                                                _bigram_batch()),
            TypeError, ["bigram_policy.values: argument params['table'] must have a "
                        "floating-point dtype, got dtype int64"]),
        "bigram policy: a table of ints": (
            "bigram_policy.distribution", lambda f: f({"Z": np.zeros((4, 3), np.int64)}),
            TypeError, ["bigram_policy.distribution: argument params['Z'] must have a "
                        "floating-point dtype, got dtype int64"]),
        "clipped value loss: old values of another shape": (
            "ppo.value_forward", lambda f: f(np.zeros(3), np.zeros(3), np.zeros(2), 0.2),
            ValueError, ["ppo.value_forward: argument 'old_values' must have the shape of "
                         "'values', (3,), got shape (2,)"]),
        "penalty: reference of another shape": (
            "kl.penalized_rewards", lambda f: f(z2, z3, np.zeros(2), ones, 0.1), ValueError,
            ["'logp_ref'", "(2, 3)", "(2, 2)"]),
        "penalty: one score too many": (
            "kl.penalized_rewards", lambda f: f(z2, z2, np.zeros(3), ones, 0.1), ValueError,
            ["'scores'", "(2,)", "(3,)"]),
        "penalty: mask of another shape": (
            "kl.penalized_rewards", lambda f: f(z2, z2, np.zeros(2), ones[:, :2], 0.1),
            ValueError, ["'mask'", "(2, 3)", "(2, 2)"]),
        "penalty: a row without a response token": (
            "kl.penalized_rewards",
            lambda f: f(z2, z2, np.zeros(2), np.array([[True] * 3, [False] * 3]), 0.1),
            ValueError, ["'mask'", "at least one response token in every row"]),
        "GAE values of another shape": (
            "gae.advantages", lambda f: f(**{**gae_args, "values": z3}), ValueError,
            ["'values'", "(2, 3)", "(2, 2)"]),
        "GAE lambda 1.5": ("gae.advantages", lambda f: f(**{**gae_args, "lam": 1.5}),
                           ValueError, ["'lam'", "[0, 1]", "1.5"]),
        "GAE gamma -0.5": ("gae.advantages", lambda f: f(**{**gae_args, "gamma": -0.5}),
                           ValueError, ["'gamma'", "[0, 1]", "-0.5"]),
        "GAE mask of another shape": (
            "gae.advantages", lambda f: f(**{**gae_args, "mask": ones[:, :2]}), ValueError,
            ["'mask'", "(2, 3)", "(2, 2)"]),
        "whiten mask of another shape": (
            "gae.whiten", lambda f: f(z2, ones[:, :2]), ValueError, ["'mask'", "(2, 3)",
                                                                      "(2, 2)"]),
        "PPO advantages of another shape": (
            "ppo.policy_forward", lambda f: f(z2, z2, z3), ValueError,
            ["'advantages'", "(2, 3)", "(2, 2)"]),
        "clipped value loss without old values": (
            "ppo.value_forward", lambda f: f(z2, z2, None, 0.2), ValueError,
            ["'old_values'", "'clip_eps'"]),
        "old values of another shape": (
            "ppo.value_forward", lambda f: f(z2, z2, z3, 0.2), ValueError,
            ["'old_values'", "(2, 3)", "(2, 2)"]),
        "entropy mask of another shape": (
            "ppo.entropy_forward", lambda f: f(np.zeros((2, 3, 4)), ones[:, :2]), ValueError,
            ["'mask'", "(2, 3)", "(2, 2)"]),
        "taken tokens of another shape": (
            "ppo.logprobs_forward", lambda f: f(np.zeros((2, 3, 4)), np.zeros((2, 2), int)),
            ValueError, ["'tokens'", "(2, 3)", "(2, 2)"]),
        "bigram table of the wrong shape": (
            "bigram_policy.distribution", lambda f: f({"Z": np.zeros((3, 3))}), ValueError,
            ["params['Z']", "(V + 1, V)", "(3, 3)"]),
        "bigram response token that is BOS": (
            "bigram_policy.logits",
            lambda f: f({"Z": np.zeros((4, 3))}, with_batch(responses=np.array([[0, 3]]))),
            ValueError, ["batch['responses']", "[0, 3)"]),
        "value table shorter than the responses": (
            "bigram_policy.values", lambda f: f({"table": np.zeros((1, 4))}, good), ValueError,
            ["params['table']", "1 positions", "responses 2"]),
        "responses of another batch size": (
            "bigram_policy.values",
            lambda f: f({"table": np.zeros((2, 4))}, {**b2, "responses": good["responses"],
                                                     "mask": good["mask"]}),
            ValueError, ["batch['responses']", "B = 2", "(1, 2)"]),
        "right-padded prompt": (
            "bigram_policy.values",
            lambda f: f({"table": np.zeros((2, 4))},
                        with_batch(prompts=np.array([[3, 0]]),
                                   prompt_mask=np.array([[True, False]]))),
            ValueError, ["batch['prompt_mask']", "left-padded"]),
        "a response row without a real token": (
            "bigram_policy.values",
            lambda f: f({"table": np.zeros((2, 4))}, with_batch(mask=np.array([[False] * 2]))),
            ValueError, ["batch['mask']", "at least one response token"]),
        "a 2-D prompt": (
            "rlhf_loop.batch", lambda f: f([np.zeros((1, 2), int)], [np.array([1])]),
            ValueError, ["prompts[0]", "1-D", "(1, 2)"]),
        "one response for two prompts": (
            "rlhf_loop.batch", lambda f: f([np.array([1]), np.array([2])], [np.array([1])]),
            ValueError, ["'responses'", "one response per prompt", "2, got 1"]),
        "returns of another shape": (
            "rlhf_loop.value_loss_and_grads",
            lambda f: f(bigram_critic(), {"table": np.zeros((2, 4))}, good, np.zeros((1, 3))),
            ValueError, ["'returns'", "(1, 2)", "(1, 3)"]),
        "a value clip without old values": (
            "rlhf_loop.value_loss_and_grads",
            lambda f: f(bigram_critic(), {"table": np.zeros((2, 4))}, good, np.zeros((1, 2)),
                        clip_eps=0.2),
            ValueError, ["'old_values'", "'clip_eps'"]),
        "advantages of another shape": (
            "rlhf_loop.policy_loss_and_grads",
            lambda f: f(bigram_policy_(2), {"Z": np.zeros((4, 3))}, good, np.zeros((1, 2)),
                        np.zeros((1, 3))),
            ValueError, ["'advantages'", "(1, 2)", "(1, 3)"]),
        "a reward function of one score too many": (
            "rlhf_loop.ppo_train", lambda f: _tiny_train(f, reward_fn=lambda b: np.zeros(3)),
            ValueError, ["reward_fn(batch)", "(2,)", "(3,)"]),
        "a learning rate that overflows": (
            "rlhf_loop.ppo_train", lambda f: _tiny_train(f, lr=1e308), ValueError,
            ["rlhf_loop.ppo_train: argument 'lr' = 1e+308 gave a failed optimizer step: "]),
        "a critic learning rate that overflows": (
            "rlhf_loop.ppo_train", lambda f: _tiny_train(f, critic_lr=1e308), ValueError,
            ["'critic_lr' = 1e+308"]),
        **_range_cases(),
        **_rank_cases(),
        **_batch_cases(),
    }


def _batch_cases():
    """A malformed batch is refused by the function it is given to, each part named by its
    key (the reference's whole message)."""
    good = rlhf_loop_batch([np.array([3]), np.array([1, 2])], [np.array([0, 1]), np.array([2])])

    def logits_of(**parts):
        def call(f):
            return f({"Z": np.zeros((4, 3))}, {**{k: v.copy() for k, v in good.items()},
                                               **parts})
        return call

    where = "bigram_policy.logits: argument "
    bool_hint = "; convert a 0/1 mask with mask.astype(bool)"
    cases = {
        "prompts of floats": (logits_of(prompts=good["prompts"].astype(float)), TypeError,
                              "batch['prompts'] must have an integer dtype, got dtype float64"),
        "responses of floats": (logits_of(responses=good["responses"].astype(float)), TypeError,
                                "batch['responses'] must have an integer dtype, got dtype "
                                "float64"),
        "prompts of rank 1": (logits_of(prompts=good["prompts"][0]), ValueError,
                              "batch['prompts'] must have shape (B, ...) with B = 2, got shape "
                              "(2,)"),
        "responses of another batch": (logits_of(responses=good["responses"][:1]), ValueError,
                                       "batch['responses'] must have shape (B, ...) with B = "
                                       "2, got shape (1, 2)"),
        "a prompt mask of ints": (logits_of(prompt_mask=good["prompt_mask"].astype(int)),
                                  TypeError, "batch['prompt_mask'] must be a boolean NumPy "
                                  "array, got dtype int64" + bool_hint),
        "a response mask of ints": (logits_of(mask=good["mask"].astype(int)), TypeError,
                                    "batch['mask'] must be a boolean NumPy array, got dtype "
                                    "int64" + bool_hint),
        "a row without a response token, beside one with": (
            logits_of(mask=np.array([[True, True], [False, False]])), ValueError,
            "batch['mask'] must mark at least one response token in every row"),
    }
    out = {f"batch: {case}": ("bigram_policy.logits", call, error, [where + words])
           for case, (call, error, words) in cases.items()}
    out["value loss: returns of rank 3"] = (
        "rlhf_loop.value_loss_and_grads",
        lambda f: f(bigram_critic(), {"table": np.zeros((2, 4))}, good, np.zeros((2, 2, 1))),
        ValueError, ["rlhf_loop.value_loss_and_grads: argument 'returns' must have 2 "
                     "dimension(s), got shape (2, 2, 1)"])
    out["value loss: a critic that is a string"] = (
        "rlhf_loop.value_loss_and_grads",
        lambda f: f("critic", {"table": np.zeros((2, 4))}, good, np.zeros((2, 2))), TypeError,
        ["rlhf_loop.value_loss_and_grads: argument 'critic' must be a Critic, got str "
         "'critic'"])
    out["policy loss: old log-probs of rank 3"] = (
        "rlhf_loop.policy_loss_and_grads",
        lambda f: f(bigram_policy_(2), {"Z": np.zeros((4, 3))}, good, np.zeros((2, 2, 1)),
                    np.zeros((2, 2))), ValueError,
        ["rlhf_loop.policy_loss_and_grads: argument 'logp_old' must have 2 dimension(s), got "
         "shape (2, 2, 1)"])
    return out


def _rank_cases():
    """An array of the wrong rank is named for its rank, before any shape is compared (the
    reference's whole message)."""
    z2, ones = np.zeros((2, 3)), np.ones((2, 3), bool)
    gae_args = {"rewards": z2, "values": z2, "dones": ~ones, "gamma": 0.9, "lam": 0.9,
                "next_value": np.zeros(2)}
    cases = {}
    for function, call, message in (
            ("gae.advantages", lambda f: f(**{**gae_args, "rewards": np.zeros((2, 3, 1))}),
             "argument 'rewards' must have 2 dimension(s), got shape (2, 3, 1)"),
            ("gae.advantages", lambda f: f(**{**gae_args, "values": np.zeros((2, 3, 1))}),
             "argument 'values' must have 2 dimension(s), got shape (2, 3, 1)"),
            ("gae.advantages", lambda f: f(**{**gae_args, "next_value": np.zeros((2, 1))}),
             "argument 'next_value' must have 1 dimension(s), got shape (2, 1)"),
            ("kl.penalized_rewards", lambda f: f(np.zeros((2, 3, 1)), z2, np.zeros(2), ones,
                                                 0.1),
             "argument 'logp_policy' must have 2 dimension(s), got shape (2, 3, 1)"),
            ("kl.penalized_rewards", lambda f: f(z2, np.zeros((2, 3, 1)), np.zeros(2), ones,
                                                 0.1),
             "argument 'logp_ref' must have 2 dimension(s), got shape (2, 3, 1)"),
            ("kl.penalized_rewards", lambda f: f(z2, z2, np.zeros((2, 1)), ones, 0.1),
             "argument 'scores' must have 1 dimension(s), got shape (2, 1)"),
            ("gae.advantages", lambda f: f(**{**gae_args, "truncated": ones,
                                              "truncated_value": np.zeros((2, 3, 1))}),
             "argument 'truncated_value' must have 2 dimension(s), got shape (2, 3, 1)"),
            ("ppo.entropy_forward", lambda f: f(np.array(1.0)),
             "argument 'logits' must have at least 1 dimension(s), got shape ()"),
            ("ppo.logprobs_forward", lambda f: f(np.array(1.0), np.array(0)),
             "argument 'logits' must have at least 1 dimension(s), got shape ()"),
            ("bigram_policy.distribution", lambda f: f({"Z": np.zeros((4, 3, 1))}),
             "argument params['Z'] must have 2 dimension(s), got shape (4, 3, 1)"),
            ("bigram_policy.values", lambda f: f({"table": np.zeros((3, 5, 1))},
                                                 _bigram_batch()),
             "argument params['table'] must have 2 dimension(s), got shape (3, 5, 1)")):
        cases[f"{function}: {message.split()[1]} of another rank"] = (
            function, call, ValueError, [f"{function}: {message}"])
    return cases


def _range_cases():
    """Numbers at the edge of their documented range: 0 where > 0 is asked, 1.5 where [0, 1]
    is, batches of one response, an optional callback that is not callable."""
    x = np.zeros(3)
    dpo = (np.zeros(2),) * 4
    cases = {
        "DPO beta 0": ("dpo.forward", lambda f: f(*dpo, beta=0.0), ValueError,
                       ["'beta'", "> 0", "0.0"]),
        "stats clip 0": ("ppo.stats", lambda f: f(x, x, 0.0), ValueError,
                         ["'clip_eps'", "> 0", "0.0"]),
        "value clip 0": ("ppo.value_forward", lambda f: f(x, x, x, 0.0), ValueError,
                         ["'clip_eps'", "> 0", "0.0"]),
        "old values of another shape, plain loss": (
            "ppo.value_forward", lambda f: f(x, x, np.zeros(2)), ValueError,
            ["'old_values'", "(3,)", "(2,)"]),
        "KL target 0 for the controller": (
            "ppo.adaptive_kl_update", lambda f: f(0.1, 1.0, 0.0, 10, 5), ValueError,
            ["'target'", "> 0", "0.0"]),
        "a taken token equal to the vocabulary size": (
            "ppo.logprobs_forward", lambda f: f(np.zeros((2, 4)), np.array([1, 4])),
            ValueError, ["'tokens'", "[0, 4)", "4"]),
        "a bigram vocabulary of 2.5 tokens": (
            "bigram_policy.init", lambda f: f(2.5, np.random.default_rng(0)), TypeError,
            ["'vocab_size'", "int", "2.5"]),
        "a bigram std of 0": ("bigram_policy.init",
                              lambda f: f(3, np.random.default_rng(0), std=0.0), ValueError,
                              ["'std'", "(0, 1e+300]", "0.0"]),
        "a prompt token past BOS": (
            "bigram_policy.logits",
            lambda f: f({"Z": np.zeros((4, 3))}, rlhf_loop_batch([np.array([4])],
                                                                 [np.array([0])])),
            ValueError, ["batch['prompts']", "[0, 4)", "4"]),
        "a value-table prompt token past BOS": (
            "bigram_policy.values",
            lambda f: f({"table": np.zeros((2, 4))}, rlhf_loop_batch([np.array([4])],
                                                                     [np.array([0])])),
            ValueError, ["batch['prompts']", "[0, 4)", "4"]),
        "responses of rank 1": (
            "rlhf_loop.sequences",
            lambda f: f({**rlhf_loop_batch([np.array([1])], [np.array([0])]),
                         "responses": np.array([0])}),
            ValueError, ["batch['responses']", "(B, ...)", "(1,)"]),
        "an empty response": (
            "rlhf_loop.batch", lambda f: f([np.array([1])], [np.array([], dtype=np.int64)]),
            ValueError, ["responses[0]", "empty"]),
        "the loop's clip 0": (
            "rlhf_loop.policy_loss_and_grads",
            lambda f: f(bigram_policy_(1), {"Z": np.zeros((4, 3))},
                        rlhf_loop_batch([np.array([3])], [np.array([0])]), np.zeros((1, 1)),
                        np.zeros((1, 1)), clip_eps=0.0),
            ValueError, ["'clip_eps'", "> 0", "0.0"]),
        "the loop's value clip 0": (
            "rlhf_loop.value_loss_and_grads",
            lambda f: f(bigram_critic(), {"table": np.zeros((1, 4))},
                        rlhf_loop_batch([np.array([3])], [np.array([0])]), np.zeros((1, 1)),
                        np.zeros((1, 1)), clip_eps=0.0),
            ValueError, ["'clip_eps'", "> 0", "0.0"]),
    }
    # the whole message: a later check (the optimizer's own) would name the argument too
    for name, value, expected in (("batch_size", 1, "an int >= 2"), ("log_every", 0,
                                                                       "an int >= 1"),
                                  ("minibatch_size", 0, "an int >= 1"),
                                  ("kl_horizon", 0, "an int >= 1"),
                                  ("kl_target", 0.0, "> 0"), ("clip_eps", 0.0, "> 0"),
                                  ("value_clip_eps", 0.0, "> 0"), ("lr", 0.0, "> 0"),
                                  ("critic_lr", 0.0, "> 0"), ("target_kl", 0.0, "> 0"),
                                  ("max_grad_norm", 0.0, "> 0"), ("gamma", 1.5, "in [0, 1]"),
                                  ("lam", 1.5, "in [0, 1]"), ("gamma", -0.5, "in [0, 1]"),
                                  ("lam", -0.5, "in [0, 1]"), ("beta", -0.1, ">= 0")):
        cases[f"the loop's {name} {value}"] = (
            "rlhf_loop.ppo_train", lambda f, kw={name: value}: _tiny_train(f, **kw),
            ValueError, [f"rlhf_loop.ppo_train: argument '{name}' must be {expected}, got "
                         f"{value}"])
    cases.update({
        "a negative prompt token": (
            "rlhf_loop.batch", lambda f: f([np.array([2, -1])], [np.array([0])]), ValueError,
            ["'prompts'", "-1"]),
        "a prompt given as a list": (
            "rlhf_loop.batch", lambda f: f([[1, 2]], [np.array([0])]), TypeError,
            ["prompts[0]", "list"]),
        "a response of floats": (
            "rlhf_loop.batch", lambda f: f([np.array([1])], [np.array([0.0])]), TypeError,
            ["responses[0]", "float64"]),
        "a bigram prompt past BOS": (
            "bigram_policy.sample",
            lambda f: f({"Z": np.zeros((4, 3))}, [np.array([1]), np.array([4])], 2,
                        np.random.default_rng(0)),
            ValueError, ["'prompts'", "[0, 4)", "4"]),
        "integer scores": (
            "rlhf_loop.ppo_train",
            lambda f: _tiny_train(f, reward_fn=lambda b: np.zeros(2, dtype=np.int64)),
            TypeError, ["reward_fn(batch)", "int64"]),
        "scores of rank 2": (
            "rlhf_loop.ppo_train", lambda f: _tiny_train(f, reward_fn=lambda b: np.zeros((2, 1))),
            ValueError, ["rlhf_loop.ppo_train: argument reward_fn(batch) must have 1 "
                         "dimension(s), got shape (2, 1)"]),
    })
    cases["the loop's log not a function"] = (
        "rlhf_loop.ppo_train", lambda f: _tiny_train(f, log="print"), TypeError,
        ["'log'", "'print'"])
    return cases


def rlhf_loop_batch(prompts, responses):
    from llmref.rlhf import rlhf_loop
    return rlhf_loop.batch(prompts, responses)


def _bigram_batch():
    """Two responses of 3 tokens from a vocabulary of 4 (BOS = 4)."""
    return rlhf_loop_batch([np.array([4]), np.array([2, 1])],
                           [np.array([0, 2, 3]), np.array([1, 2, 2])])


def bigram_critic():
    from llmref.rlhf import bigram_policy
    return bigram_policy.critic()


def bigram_policy_(length):
    from llmref.rlhf import bigram_policy
    return bigram_policy.policy(length)


def _tiny_train(f, **kwargs):
    from llmref.rlhf import bigram_policy
    settings = {"reward_fn": lambda b: b["responses"][:, 0].astype(float), "lr": 0.01,
                "iterations": 1, "batch_size": 2, "minibatch_size": 2, "epochs": 1, **kwargs}
    params = {"Z": np.random.default_rng(0).standard_normal((4, 3))}
    return f(bigram_policy.policy(2), params, params, settings.pop("reward_fn"),
             [np.array([3])], critic=bigram_policy.critic(),
             critic_params={"table": np.ones((2, 4))}, **settings)


@pytest.mark.reference_only
@pytest.mark.component("dpo", "kl", "gae", "ppo", "bigram_policy", "rlhf_loop")
@pytest.mark.parametrize("case", sorted(_refusal_cases()))
def test_rlhf_refusals_name_function_argument_expected_and_given(impl, case):
    function, call, error, needles = _refusal_cases()[case]
    with pytest.raises(error) as info:
        call(impl(function))
    message = str(info.value)
    assert message.startswith(f"{function}: "), message
    missing = [n for n in needles if n not in message]
    assert not missing, f"{message!r} does not mention {missing}"


def test_pairwise_losses_at_huge_margins(impl):
    """Margins of +-1000: the Bradley-Terry loss is softplus(-margin) without overflow (0 and
    1000), its gradient -sigma(-margin) / N (0 and -1/2), against torch."""
    rc, rr = np.array([1000.0, -1000.0]), np.zeros(2)
    loss, cache = impl("preference.forward")(rc, rr)
    g = impl("preference.backward")(1.5, cache)
    assert loss == 500.0
    rc_t = torch.tensor(rc, requires_grad=True)
    (-1.5 * F.logsigmoid(rc_t - torch.from_numpy(rr)).mean()).backward()
    np.testing.assert_array_equal(g["r_chosen"], rc_t.grad.numpy())
    np.testing.assert_array_equal(g["r_rejected"], -rc_t.grad.numpy())


@pytest.mark.reference_only
def test_dpo_refuses_implicit_rewards_that_overflow_both_ways(impl):
    """Both implicit rewards of a pair overflowing the same way (inf - inf) is refused in the
    reference's words, naming beta, without a warning."""
    big = np.array([10.0, 20.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as info:
            impl("dpo.forward")(big, big, np.zeros(2), np.zeros(2), 1e308)
    message = str(info.value)
    assert message.startswith("dpo.forward: argument 'beta' = 1e+308 (with these "
                              "log-probabilities) makes the result overflow float64 (the "
                              "implicit rewards"), message


@given(st.booleans(), hs.seeds)
def test_reward_model_with_an_attention_mask_matches_torch(impl, left, seed):
    """Left- or right-padded rows given as an attention mask: the trunk hides the padding and
    the reward is read at each row's last real token; rewards and every gradient against the
    torch GPT twin with the same mask."""
    config = GPTConfig(vocab_size=9, context_len=6, d_model=4, n_heads=2, n_layers=1)
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    params["reward_head"] = hp.random_linear(4, 1, rng)
    ids = rng.integers(0, 9, size=(3, 6))
    real = np.array([6, 2, 4])
    cols = np.arange(6)
    mask = cols >= 6 - real[:, None] if left else cols < real[:, None]
    last = np.full(3, 5) if left else real - 1
    identity = {"W": torch.eye(4, dtype=torch.float64)}
    untied = GPTConfig(**{**config.__dict__, "tie_weights": False})

    def torch_rm(ids_t, p):
        trunk = {k: v for k, v in p.items() if k != "reward_head"}
        h = tw.gpt_any_logits(ids_t, {**trunk, "lm_head": identity}, untied,
                              torch.from_numpy(mask))
        return (h[torch.arange(3), torch.from_numpy(last)] @ p["reward_head"]["W"])[:, 0] \
            + p["reward_head"]["b"][0]

    check_model_against_torch(impl, "reward_model", ids, params, torch_rm, seed,
                              {"attention_mask": mask, "config": config}, rounding_scale=10.0)


def test_reward_model_reads_the_last_token_without_padding_and_refuses_two_paddings(impl):
    """Neither lengths nor a mask: the reward of the whole row (as lengths = T), an LM head
    in the parameters ignored; both given, an int mask, or a mask row with no real token:
    refused."""
    config = GPTConfig(vocab_size=9, context_len=6, d_model=4, n_heads=2, n_layers=1)
    rng = np.random.default_rng(1)
    params = hp.random_gpt(config, rng)
    params["reward_head"] = hp.random_linear(4, 1, rng)
    ids = rng.integers(0, 9, size=(2, 5))
    plain, _ = impl("reward_model.forward")(ids, params, config)
    full, _ = impl("reward_model.forward")(ids, params, config, np.array([5, 5]))
    np.testing.assert_array_equal(plain, full)
    with_head = {**params, "lm_head": hp.random_linear(4, 9, rng)}      # ignored
    np.testing.assert_array_equal(impl("reward_model.forward")(ids, with_head, config)[0], plain)
    mask = np.ones((2, 5), bool)
    with pytest.raises(ValueError, match=r"^reward_model\.forward: .*'lengths'.*'attention_mask'"):
        impl("reward_model.forward")(ids, params, config, np.array([5, 5]), mask)
    with pytest.raises(TypeError, match=r"^reward_model\.forward: .*'attention_mask'"):
        impl("reward_model.forward")(ids, params, config, attention_mask=mask.astype(int))
    mask[1] = False
    with pytest.raises(ValueError, match=r"^reward_model\.forward: .*'attention_mask'"):
        impl("reward_model.forward")(ids, params, config, attention_mask=mask)


def test_reward_heads_are_drawn_at_std_002(impl):
    """The scalar head of a new reward model, from scratch or from a GPT, is N(0, 0.02^2)
    with a zero bias (3200 draws pooled); from a GPT, the trunk is a copy of its arrays
    (new arrays, equal values) without the LM head."""
    config = GPTConfig(vocab_size=7, context_len=4, d_model=32, n_heads=2, n_layers=1,
                       tie_weights=False)
    rng = np.random.default_rng(5)
    gpt_params = impl("gpt.init")(config, rng)
    heads, fresh = [], []
    for _ in range(100):
        rm = impl("reward_model.init_from_gpt")(gpt_params, config, rng)
        heads.append(rm["reward_head"]["W"])
        assert rm["reward_head"]["b"].tolist() == [0.0]
        fresh.append(impl("reward_model.init")(config, rng)["reward_head"]["W"])
    _std_close(np.concatenate(heads), 0.02, "head from a GPT")
    _std_close(np.concatenate(fresh), 0.02, "head from scratch")
    assert "lm_head" not in rm and set(rm) == set(gpt_params) - {"lm_head"} | {"reward_head"}
    for key in set(rm) - {"reward_head"}:
        for got, want in zip(flatten({key: rm[key]}).values(),
                             flatten({key: gpt_params[key]}).values(), strict=True):
            np.testing.assert_array_equal(got, want)
            assert not np.shares_memory(got, want)


def test_an_iteration_that_stops_before_its_first_step(impl):
    """A policy whose logits depend on how many rows it sees (so a minibatch's ratio to the
    rollout is not 1) and a tiny target_kl: each iteration stops at its first minibatch.
    Its record says so: no step, stopped early, clip fraction and approximate KL 0, entropy
    and losses NaN; the policy and critic are unchanged."""
    inner = impl("bigram_policy.policy")(2)

    def logits(params, batch):
        z, cache = inner.logits(params, batch)
        z = z.copy()
        z[..., 0] += 0.1 * len(batch["responses"])
        return z, cache

    policy = impl("rlhf_loop.Policy")(sample=inner.sample, logits=logits,
                                      logits_backward=inner.logits_backward)
    ref = impl("bigram_policy.init")(3, np.random.default_rng(0))
    table = {"table": np.random.default_rng(1).standard_normal((2, 4))}
    params, critic, history = impl("rlhf_loop.ppo_train")(
        policy, ref, ref, lambda b: (b["responses"] == 1).mean(axis=1), [np.array([3])],
        critic=impl("bigram_policy.critic")(), critic_params=table, iterations=2,
        batch_size=8, minibatch_size=4, epochs=2, target_kl=1e-12, seed=0)
    np.testing.assert_array_equal(params["Z"], ref["Z"])
    np.testing.assert_array_equal(critic["table"], table["table"])
    for h in history:
        assert h["steps"] == 0 and h["stopped_early"] is True
        assert h["clip_fraction"] == 0.0 and h["approx_kl"] == 0.0
        assert all(np.isnan(h[k]) for k in ("entropy", "policy_loss", "value_loss"))


def test_early_stop_needs_a_kl_strictly_above_one_and_a_half_targets(impl):
    """A run that measured approximate KL k before its second step: with target_kl = k / 1.5
    (so 1.5 target_kl == k exactly) the loop takes the step; just below, it stops."""
    ref = impl("bigram_policy.init")(3, np.random.default_rng(0))
    run = dict(iterations=1, batch_size=8, minibatch_size=8, epochs=2, lr=0.1, seed=0)

    def reward(tokens):
        return (tokens == 2).mean(axis=1)

    _, _, free = _bigram_loop(impl, ref, reward, 2, **run)
    k = free[0]["approx_kl"]
    target = k / 1.5
    assert k > 0 and 1.5 * target == k
    _, _, at_edge = _bigram_loop(impl, ref, reward, 2, target_kl=target, **run)
    _, _, below = _bigram_loop(impl, ref, reward, 2, target_kl=np.nextafter(target, 0.0), **run)
    assert at_edge[0]["steps"] == 2 and not at_edge[0]["stopped_early"]
    assert below[0]["steps"] == 1 and below[0]["stopped_early"]


def test_ppo_train_omitted_settings_are_the_documented_defaults(impl):
    """Leaving out log_every, minibatch_size, kl_horizon, clip_eps and value_clip_eps gives
    exactly the run with the documented values (10, 16, 10_000, 0.2, 0.2): the same
    parameters, records and log lines over 12 iterations of 34 rollouts (the last
    minibatch partial, the ratios moved past the clip by a large learning rate).  The
    smallest settings, minibatch_size = 1 and kl_horizon = 1, are accepted."""
    from llmref.rlhf import bigram_policy

    def run(**kwargs):
        lines = []
        params = {"Z": np.random.default_rng(0).standard_normal((4, 3))}
        out = impl("rlhf_loop.ppo_train")(
            bigram_policy.policy(2), params, params,
            lambda b: (b["responses"] == 1).mean(axis=1), [np.array([3]), np.array([1])],
            critic=bigram_policy.critic(), critic_params={"table": np.ones((2, 4))},
            **{"iterations": 12, "batch_size": 34, "epochs": 2, "lr": 0.5, "critic_lr": 0.5,
               "kl_target": 0.05, "seed": 0, "log": lines.append, **kwargs})
        return out, lines

    (p1, c1, h1), log1 = run()
    (p2, c2, h2), log2 = run(log_every=10, minibatch_size=16, kl_horizon=10_000,
                             clip_eps=0.2, value_clip_eps=0.2)
    np.testing.assert_array_equal(p1["Z"], p2["Z"])
    np.testing.assert_array_equal(c1["table"], c2["table"])
    assert len(h1) == len(h2) == 12 and log1 == log2 and log1[0].startswith("iteration 10/12")
    for r1, r2 in zip(h1, h2, strict=True):
        assert r1.keys() == r2.keys()
        for key in r1:
            assert r1[key] == r2[key] or (r1[key] != r1[key] and r2[key] != r2[key]), key
    assert any(r["clip_fraction"] > 0 for r in h1)
    # (with kl_horizon = 1 a step moves beta by up to 20% per rollout: two rollouts)
    (_, _, history), _ = run(minibatch_size=1, kl_horizon=1, iterations=2, batch_size=2)
    assert [r["steps"] for r in history] == [4, 4]


_RM_CONFIG = GPTConfig(vocab_size=9, context_len=6, d_model=4, n_heads=2, n_layers=1)


def _rm_params():
    rng = np.random.default_rng(0)
    return {**hp.random_gpt(_RM_CONFIG, rng), "reward_head": hp.random_linear(4, 1, rng)}


_IDS = np.arange(12).reshape(2, 6) % 9

_RM_REFUSALS = {
    "a tree without a head": (
        lambda impl: impl("reward_model.forward")(
            _IDS, {k: v for k, v in _rm_params().items() if k != "reward_head"}, _RM_CONFIG),
        ValueError, "reward_model.forward: argument 'params' is missing key(s) "
                    "['reward_head']: not a reward model's parameters"),
    "a head of another width": (
        lambda impl: impl("reward_model.forward")(
            _IDS, {**_rm_params(), "reward_head": {"W": np.zeros((3, 1)), "b": np.zeros(1)}},
            _RM_CONFIG),
        ValueError, "reward_model.forward: argument params['reward_head']['W'] must have "
                    "shape (4, 1), got shape (3, 1)"),
    "a head that is an array": (
        lambda impl: impl("reward_model.forward")(
            _IDS, {**_rm_params(), "reward_head": np.zeros((4, 1))}, _RM_CONFIG),
        TypeError, "reward_model.forward: argument params['reward_head'] must be a dict of "
                   "arrays, got array of shape (4, 1) and dtype float64"),
    "a tree that is a list": (
        lambda impl: impl("reward_model.forward")(_IDS, [1], _RM_CONFIG),
        TypeError, "reward_model.forward: argument 'params' must be a dict of arrays, got "
                   "list [1]"),
    "a length past the row": (
        lambda impl: impl("reward_model.forward")(_IDS, _rm_params(), _RM_CONFIG,
                                                  np.array([7, 3])),
        ValueError, "reward_model.forward: argument 'lengths' must hold values in [1, 7), got "
                    "7 (and 1 out-of-range value(s) in all)"),
    "lengths for three rows": (
        lambda impl: impl("reward_model.forward")(_IDS, _rm_params(), _RM_CONFIG,
                                                  np.array([6, 3, 2])),
        ValueError, "reward_model.forward: argument 'lengths' must have shape (2,), got shape "
                    "(3,)"),
    "a language model without its token table": (
        lambda impl: impl("reward_model.init_from_gpt")(
            {k: v for k, v in _rm_params().items() if k not in ("reward_head", "wte")},
            _RM_CONFIG, np.random.default_rng(0)),
        ValueError, "reward_model.init_from_gpt: argument 'params' is missing key(s) ['wte']; "
                    "expected keys ['blocks', 'ln_f', 'wpe', 'wte'], got ['blocks', 'ln_f', "
                    "'wpe']"),
    "chosen rewards of rank 2": (
        lambda impl: impl("preference.forward")(np.zeros((2, 1)), np.zeros(2)),
        ValueError, "preference.forward: argument 'r_chosen' must have 1 dimension(s), got "
                    "shape (2, 1)"),
    "rejected rewards of rank 2": (
        lambda impl: impl("preference.forward")(np.zeros(2), np.zeros((2, 1))),
        ValueError, "preference.forward: argument 'r_rejected' must have 1 dimension(s), got "
                    "shape (2, 1)"),
    "a ranking that is a string": (
        lambda impl: impl("preference.pairs_from_ranking")("abc"),
        TypeError, "preference.pairs_from_ranking: argument 'ranking' must be an ordered "
                   "sequence (a list, tuple, range or 1-D array), got str 'abc'"),
}


@pytest.mark.component("reward_model", "preference")
@pytest.mark.parametrize("case", list(_RM_REFUSALS), ids=list(_RM_REFUSALS))
def test_reward_model_and_preference_refusals_word_for_word(impl, case):
    """The whole message: the function, the argument (or the part of the tree), what was
    expected and what was given; the lengths are held to [1, T] and to one per row."""
    call, error, message = _RM_REFUSALS[case]
    with pytest.raises(error) as info:
        call(impl)
    assert str(info.value) == message


@pytest.mark.component("reward_model")
@pytest.mark.parametrize("edited", ["lengths", "attention_mask"])
def test_the_reward_models_debug_mode_watches_lengths_and_mask(impl, monkeypatch, edited):
    """The cache debug mode (LLMREF_DEBUG_CACHE=1) reports an edit, between forward and
    backward, of the lengths or the attention mask the forward was given, as the
    docstring's Cache section promises."""
    if not impl.speaks_as_reference:
        pytest.skip("the reference's debug mode")
    monkeypatch.setenv("LLMREF_DEBUG_CACHE", "1")
    lengths, mask = np.array([6, 4]), np.ones((2, 6), bool)
    mask[1, 4:] = False
    given = {"lengths": lengths} if edited == "lengths" else {"attention_mask": mask}
    _, cache = impl("reward_model.forward")(_IDS, _rm_params(), _RM_CONFIG, **given)
    if edited == "lengths":
        lengths[1] = 3
    else:
        mask[1, 3] = False
    with pytest.raises(ValueError) as info:
        impl("reward_model.backward")(np.ones(2), cache)
    assert str(info.value) == (
        f"reward_model.backward: argument 'cache' no longer matches its forward: the input "
        f"'{edited}' given to reward_model.forward was changed in place between forward and "
        f"backward (inputs must not change before the backward; found by the cache debug "
        f"mode)")
