"""Claims about RLHF: what a reward model trained on rankings outputs, and which way the
policy update goes."""

import numpy as np
import pytest
import torch

from llmref.spec.harness import params as hp
from llmref.spec.harness.tolerances import F64, assert_close
from llmref.transformer.gpt import GPTConfig

# Four responses to one prompt, as token sequences; people ranked them C > A > B > D.
RESPONSES = {"C": [1, 2, 3, 4, 5], "A": [1, 2, 3, 0, 0], "B": [4, 4, 0, 0, 0],
             "D": [5, 0, 0, 0, 0]}
LENGTHS = {"C": 5, "A": 3, "B": 2, "D": 1}


def _rewards(impl, params, config, names):
    ids = np.array([RESPONSES[n] for n in names])
    lengths = np.array([LENGTHS[n] for n in names])
    return impl("reward_model.forward")(ids, params, config, lengths)


@pytest.mark.claim("L003-reward-0-to-1")
@pytest.mark.claim("L003-reward-scores-ordered")
def test_a_reward_model_trained_on_a_ranking_orders_it_on_no_fixed_scale(impl,
                                                                          claim_figures):
    """The reward model (a GPT trunk with a scalar head) trained with the pairwise loss on
    the 6 pairs of the ranking C > A > B > D scores them in that order.  The scores are not
    in [0, 1]: the loss sees only differences, so adding any constant to the head's bias
    moves every score by it and leaves the loss exactly as it was, and training pushes the
    differences apart without bound (after 60 steps the scores span more than 1 and some are
    negative)."""
    config = GPTConfig(vocab_size=6, context_len=5, d_model=8, n_heads=2, n_layers=1)
    params = hp.gpt2_like_reward_model(config, np.random.default_rng(0))
    pairs = impl("preference.pairs_from_ranking")(["C", "A", "B", "D"])
    chosen, rejected = [p[0] for p in pairs], [p[1] for p in pairs]
    state = impl("adamw.init")(params)
    for _ in range(60):
        r, cache = _rewards(impl, params, config, chosen + rejected)
        loss, pc = impl("preference.forward")(r[:6], r[6:])
        g = impl("preference.backward")(1.0, pc)
        grads = impl("reward_model.backward")(np.concatenate([g["r_chosen"],
                                                              g["r_rejected"]]), cache)
        params, state = impl("adamw.step")(params, grads, state, lr=3e-2, weight_decay=0.0)
    scores, _ = _rewards(impl, params, config, ["C", "A", "B", "D"])
    assert np.all(np.diff(scores) < 0), scores
    assert scores.max() - scores.min() > 1 and scores.min() < 0
    shifted = {**params, "reward_head": {"W": params["reward_head"]["W"],
                                         "b": params["reward_head"]["b"] + 5.0}}
    moved, _ = _rewards(impl, shifted, config, ["C", "A", "B", "D"])
    assert_close(moved, scores + 5.0, F64, name="scores with the bias moved by 5")
    r, _ = _rewards(impl, params, config, chosen + rejected)
    r5, _ = _rewards(impl, shifted, config, chosen + rejected)
    before = impl("preference.forward")(r[:6], r[6:])[0]
    after = impl("preference.forward")(r5[:6], r5[6:])[0]
    assert abs(before - after) < 1e-12
    claim_figures.record(scores_C_A_B_D=scores, pairwise_loss=before,
                         pairwise_loss_with_bias_plus_5=after)


@pytest.mark.claim("L003-policy-gradient-ascent")
def test_the_policy_update_is_gradient_ascent_on_the_expected_reward(impl, claim_figures):
    """Five one-token responses with rewards r.  The exact gradient of the expected reward
    J = sum_y pi(y) r(y) comes from torch autograd.  The PPO loss's gradient at ratio 1,
    through the policy's log-probabilities on 20,000 sampled responses with advantage r(y),
    points the opposite way (cosine with -grad J above 0.99): descending the PPO loss is
    W_new = W_old + lr dJ/dW, gradient ascent on J, and one such step raises J."""
    rng = np.random.default_rng(0)
    policy = impl("bigram_policy.init")(5, rng)
    reward = np.array([1.0, 0.2, -0.5, 0.8, 0.0])
    Z = torch.tensor(policy["Z"], requires_grad=True)
    J = (torch.softmax(Z[-1], dim=0) * torch.from_numpy(reward)).sum()
    J.backward()
    exact = Z.grad.numpy()
    batch = impl("bigram_policy.sample")(policy, [np.array([5])] * 20_000, 1, rng)
    z, cache = impl("bigram_policy.logits")(policy, batch)
    logp, lp_cache = impl("ppo.logprobs_forward")(z, batch["responses"])
    adv = reward[batch["responses"][:, 0]]
    _, pcache = impl("ppo.policy_forward")(logp[:, 0], logp[:, 0].copy(), adv, 0.2)
    dlogp = impl("ppo.policy_backward")(1.0, pcache)["logp_new"]
    dz = impl("ppo.logprobs_backward")(dlogp[:, None], lp_cache)["logits"]
    dZ = impl("bigram_policy.logits_backward")(dz, cache)["Z"]
    cos = -float(np.sum(dZ * exact) / np.linalg.norm(dZ) / np.linalg.norm(exact))
    assert cos > 0.99
    before = float(J.detach())
    new, _ = impl("sgd.step")(policy, {"Z": dZ}, impl("sgd.init")(policy), lr=0.5)
    after = float(impl("bigram_policy.distribution")(new) @ reward)
    assert after > before
    claim_figures.record(cosine_with_minus_grad_J=cos, expected_reward_before=before,
                         expected_reward_after_one_step=after)
