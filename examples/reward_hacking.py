"""Reward hacking, and how the KL penalty prevents it (lesson 003's central RLHF claim).

    python -m llmref.examples.reward_hacking    # table; plots in llmspec-output/reward_hacking/
    python -m llmref.examples.reward_hacking --no-plot

A tiny policy writes six-word answers to "what is two plus two?".  It starts as a reference
model fitted to sensible answers.  A person's ("gold") judgement rewards saying "four",
ending with a full stop, and not repeating itself.  A reward model learns from preferences
sampled from that judgement, but it only counts words (a bag of words), so it learns "four
is good" and cannot see that "four four four" is nonsense: it can be gamed.  PPO then
optimises the policy against the reward model for several KL-penalty weights beta.  Without
the penalty the policy games the proxy (proxy up, gold down, repetitive output); with it the
policy stays near the reference and the gold reward holds up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import llmref
from llmref.examples import common

WORDS = ["the", "answer", "is", "four", "five", "!", ".", "maybe"]
W = {w: i for i, w in enumerate(WORDS)}
LENGTH = 6
SENSIBLE = ["the answer is four . .", "four is the answer . .", "the answer is four ! .",
            "maybe the answer is four .", "the answer is five . .", "four ! the answer is ."]


def encode(sentence: str) -> list:
    return [W[w] for w in sentence.split()]


def decode(tokens) -> str:
    return " ".join(WORDS[int(t)] for t in tokens)


def reference_policy(smoothing: float = 0.3) -> dict:
    """A bigram model fitted (maximum likelihood, add-``smoothing``) to the sensible answers."""
    V = len(WORDS)
    counts = np.full((V + 1, V), smoothing)
    for sentence in SENSIBLE:
        prev = V
        for t in encode(sentence):
            counts[prev, t] += 1.0
            prev = t
    return {"Z": np.log(counts / counts.sum(axis=1, keepdims=True))}


def gold_reward(tokens: np.ndarray) -> np.ndarray:
    """What a person would give: +1 for saying four, -1 for five, -0.6 for every extra four,
    -0.3 for every word repeated right after itself (a run of '.' at the end excepted), +0.5
    for ending with a full stop."""
    four = (tokens == W["four"]).sum(axis=1)
    repeats = ((tokens[:, 1:] == tokens[:, :-1]) & (tokens[:, 1:] != W["."])).sum(axis=1)
    return ((four > 0) * 1.0 - (tokens == W["five"]).any(axis=1) * 1.0
            - 0.6 * np.maximum(four - 1, 0) - 0.3 * repeats + 0.5 * (tokens[:, -1] == W["."]))


def repetitive(tokens: np.ndarray) -> np.ndarray:
    """True where some word other than '.' appears 3 or more times in the six."""
    counts = bag_of_words(tokens)
    counts[:, W["."]] = 0
    return counts.max(axis=1) >= 3


def bag_of_words(tokens: np.ndarray) -> np.ndarray:
    return np.stack([(tokens == i).sum(axis=1) for i in range(len(WORDS))], axis=1) * 1.0


def train_reward_model(rng, reference: dict, n_pairs: int = 2000, steps: int = 300,
                       lib=llmref):
    """A linear reward on word counts, fitted with the Bradley-Terry loss to preference pairs
    between samples of the reference policy, labelled by the gold reward.  ``lib``: the
    module of components (default the reference; the spec tests pass the one under test)."""
    a = lib.bigram_policy.sample(reference, n_pairs, LENGTH, rng)
    b = lib.bigram_policy.sample(reference, n_pairs, LENGTH, rng)
    ga, gb = gold_reward(a), gold_reward(b)
    keep = ga != gb
    chosen = np.where((ga > gb)[:, None], a, b)[keep]
    rejected = np.where((ga > gb)[:, None], b, a)[keep]
    fc, fr = bag_of_words(chosen), bag_of_words(rejected)
    params = {"w": np.zeros(len(WORDS))}
    state = lib.adam.init(params)
    for _ in range(steps):
        _, cache = lib.preference.forward(fc @ params["w"], fr @ params["w"])
        g = lib.preference.backward(1.0, cache)
        grads = {"w": fc.T @ g["r_chosen"] + fr.T @ g["r_rejected"]}
        params, state = lib.adam.step(params, grads, state, lr=0.05)
    return lambda tokens: bag_of_words(tokens) @ params["w"], params["w"]


def run(betas=(0.0, 0.05, 0.2, 0.5), iterations: int = 120, seed: int = 0, log=print,
        lib=llmref):
    """Train one policy per beta; returns a dict of results per beta plus the reference's.
    ``lib``: the module of components (default the reference)."""
    rng = np.random.default_rng(seed)
    reference = reference_policy()
    proxy, weights = train_reward_model(rng, reference, lib=lib)
    eval_rng = np.random.default_rng(seed + 1)
    ref_samples = lib.bigram_policy.sample(reference, 2000, LENGTH, eval_rng)
    results = {"reference": {"proxy": float(proxy(ref_samples).mean()),
                             "gold": float(gold_reward(ref_samples).mean()), "kl": 0.0,
                             "sample": decode(ref_samples[0]), "curve": []}}
    for beta in betas:
        log(f"PPO with beta = {beta} ...")
        curve = []

        def scored(tokens, curve=curve):
            curve.append((float(proxy(tokens).mean()), float(gold_reward(tokens).mean())))
            return proxy(tokens)

        policy, history = lib.rlhf_loop.ppo_train(
            {"Z": reference["Z"].copy()}, reference, scored, iterations=iterations,
            batch_size=64, length=LENGTH, beta=beta, lr=0.05, epochs=4, minibatch_size=16,
            seed=seed + 2, log=log, log_every=40)
        samples = lib.bigram_policy.sample(policy, 2000, LENGTH, eval_rng)
        logp, _ = lib.bigram_policy.logprobs(policy, samples)
        logp_ref, _ = lib.bigram_policy.logprobs(reference, samples)
        results[beta] = {"proxy": float(proxy(samples).mean()),
                         "gold": float(gold_reward(samples).mean()),
                         "kl": float((logp - logp_ref).sum(axis=1).mean()),
                         "sample": decode(samples[0]), "curve": curve,
                         "repetitive": float(np.mean(repetitive(samples)))}
    results["reward_model_weights"] = dict(zip(WORDS, np.round(weights, 2).tolist(),
                                               strict=True))
    return results


def table(results) -> str:
    rows = [f"{'policy':<12}{'proxy':>8}{'gold':>8}{'KL':>8}  sample"]
    for key, r in results.items():
        if key == "reward_model_weights":
            continue
        name = "reference" if key == "reference" else f"beta={key}"
        rows.append(f"{name:<12}{r['proxy']:8.2f}{r['gold']:8.2f}{r['kl']:8.2f}  "
                    f"{r['sample']}")
    return "\n".join(rows)


def _reward_panel(column: int, title: str, key: str):
    def draw(ax, results):
        for beta, r in results.items():
            if beta in ("reference", "reward_model_weights"):
                continue
            ax.plot(np.array(r["curve"])[:, column], label=f"beta = {beta}")
        ax.axhline(results["reference"][key], color="gray", ls=":", label="reference policy")
        ax.set(title=title, xlabel="PPO iteration", ylabel="mean reward per answer")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    return draw


PANELS = [("proxy_reward", "The reward model's score (the proxy PPO maximises) for each KL "
           "weight beta.", _reward_panel(0, "Proxy reward (the reward model)", "proxy")),
          ("gold_reward", "What the person would give the same answers: without the KL "
           "penalty it falls while the proxy rises.",
           _reward_panel(1, "Gold reward (the person)", "gold"))]


def plot(results, path: Path) -> Path:
    """Every panel in one PNG."""
    return common.plot_panels(PANELS, results, path)


def main(argv=None):
    parser = common.parser("Reward hacking with and without KL penalty")
    parser.add_argument("--iterations", type=int, default=120)
    args = parser.parse_args(argv)
    record = common.Run("reward_hacking", args, argv)
    results = run(iterations=args.iterations, seed=args.seed)
    print("reward model weights per word:", results["reward_model_weights"])
    print(table(results))
    common.maybe_plot(args, plot, results, "reward_hacking.png")
    summary = {}
    for key, r in results.items():
        if key == "reward_model_weights":
            continue
        name = "reference" if key == "reference" else f"beta = {key}"
        summary.update({f"{name}: proxy": r["proxy"], f"{name}: gold": r["gold"],
                        f"{name}: KL": r["kl"], f"{name}: sample": r["sample"]})
    record.finish(results, PANELS, summary)
    return results


if __name__ == "__main__":
    main()
