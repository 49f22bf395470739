"""RLHF end to end on a tiny GPT (lesson 003): pre-training -> supervised fine-tuning -> a
reward model learned from rankings -> PPO with a per-token KL penalty, for several beta,
and DPO on the same preferences.

    llmspec run rlhf_pipeline                       # or python -m llmref.examples.rlhf_pipeline
    llmspec run rlhf_pipeline --out results/        # the plot and results.json there

The task is lesson 003's "What is 2+2?": questions "what is two plus two ?" with operands
0..4, answered in words.  The stages:

1. **Pre-training** on a small corpus: addition facts ("two plus two is four ."), and
   questions followed by what the web says after them, right or wrong, sensible or not.
2. **Supervised fine-tuning** on demonstrations: questions with good answers only.
3. **Preferences**: the SFT model writes several answers to each question; a hidden
   "human" (`gold_reward`, never shown to any model) ranks them; each ranking becomes pairs
   (`preference.pairs_from_ranking`); a GPT reward model, started from the SFT model as in
   InstructGPT, learns from the pairs with the Bradley-Terry loss.  Its accuracy on pairs it
   never saw is reported.
4. **PPO** against the reward model with a KL penalty of weight beta to the SFT model, for
   beta = 0, a small beta and the default, each with the same seeds from the same SFT model.
5. **DPO** on the same pairs from the same SFT model.

At the end a table gives, per method: the reward model's score (proxy), the hidden human's
score (gold), the KL to the SFT model, the distinct-token ratio of the answers and three
sampled answers.  Without the penalty PPO finds what the reward model over-rates and the
answers degenerate (the proxy rises while the gold reward falls); with it they stay close
to the SFT model.  Nothing in the reward model was built to be gamed: it learned only from
rankings of the SFT model's own answers, and PPO found where it is wrong.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

import llmref
from llmref.examples import common
from llmref.transformer.gpt import GPTConfig

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"]
WORDS = NUMBERS + ["what", "is", "plus", "?", "the", "answer", "it", ".", "!", "yes", "i",
                   "am", "think", "maybe", "so", "not", "sure", "<pad>"]
ID = {w: i for i, w in enumerate(WORDS)}
STOP, PAD = ID["."], ID["<pad>"]
MAX_NEW = 8
CONFIG = GPTConfig(vocab_size=len(WORDS), context_len=16, d_model=32, n_heads=4, n_layers=2)


def encode(text: str) -> np.ndarray:
    return np.array([ID[w] for w in text.split()], dtype=np.int64)


def decode(ids) -> str:
    return " ".join(WORDS[int(i)] for i in ids)


QUESTIONS = [(a, b) for a in range(5) for b in range(5)]


def question(a: int, b: int) -> str:
    return f"what is {NUMBERS[a]} plus {NUMBERS[b]} ?"


# ------------------------------------------------------------------ the hidden human

def gold_reward(a: int, b: int, response) -> float:
    """What a careful person would give an answer to "what is a plus b ?".  No model ever
    sees this function; the reward model learns only from its rankings."""
    words = [WORDS[int(t)] for t in response]
    numbers = [w for w in words if w in NUMBERS]
    right = NUMBERS[a + b]
    score = 0.0
    if not numbers:
        score -= 1.0                                    # no answer at all
    elif numbers[0] == right:
        score += 2.0                                    # the right answer
    else:
        score -= 2.0                                    # a wrong answer
    score += 0.5 if words[-1] == "." else -1.0         # a finished sentence
    score -= 1.0 * sum(x == y for x, y in zip(words, words[1:], strict=False))   # "four four"
    score -= 0.5 * max(0, numbers.count(right) - 2)     # saying it over and over
    score -= 0.25 * max(0, len(words) - 6)              # rambling
    return score


# ------------------------------------------------------------------ data

def pretraining_corpus(rng, n: int = 3000) -> list:
    """A third addition facts, the rest questions followed by what the web says after them:
    right, wrong or no answer, in several styles."""
    rows = []
    for _ in range(n):
        a, b = QUESTIONS[rng.integers(len(QUESTIONS))]
        s = NUMBERS[a + b]
        wrong = NUMBERS[(a + b + rng.integers(1, 9)) % 9]
        if rng.random() < 1 / 3:
            text = f"{NUMBERS[a]} plus {NUMBERS[b]} is {s} ."
        else:
            answer = [f"{s} .", f"the answer is {s} .", f"i think it is {s} .", f"{wrong} .",
                      f"maybe {wrong} .", "i am not sure .", f"so {s} ! {s} .",
                      f"yes it is {s} ."][rng.integers(8)]
            text = f"{question(a, b)} {answer}"
        rows.append(encode(text))
    return rows


def demonstrations(rng, n: int = 1500) -> list:
    """(prompt, answer) pairs written by "experts": right and well-formed, in five styles."""
    out = []
    for _ in range(n):
        a, b = QUESTIONS[rng.integers(len(QUESTIONS))]
        s = NUMBERS[a + b]
        answer = [f"{s} .", f"the answer is {s} .", f"it is {s} .",
                  f"{NUMBERS[a]} plus {NUMBERS[b]} is {s} .",
                  f"{s} ! the answer is {s} ."][rng.integers(5)]
        out.append((encode(question(a, b)), encode(answer)))
    return out


# ------------------------------------------------------------------ progress

class Progress:
    """A one-line progress bar for a stage: ``bar(done, note)`` redraws it, and the last call
    ends the line.  Writes to ``stream`` (stderr by default), or nowhere when None."""

    def __init__(self, name: str, total: int, stream=sys.stderr, width: int = 24):
        self.name, self.total, self.stream, self.width = name, total, stream, width
        self.start = time.perf_counter()

    def __call__(self, done: int, note: str = "") -> None:
        if self.stream is None:
            return
        filled = self.width * done // self.total
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r{self.name:<24} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{self.total} {elapsed:5.1f} s  {note}\033[K")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


# ------------------------------------------------------------------ training helpers

def _lm_step(params, state, ids, targets, lr, lib):
    loss, grads = lib.gpt.loss_and_grads(ids, targets, params, CONFIG)
    params, state = lib.adamw.step(params, grads, state, lr=lr, weight_decay=0.01,
                               decay=lib.adamw.matrices_only)
    return params, state, loss


def _pad(rows, width):
    ids = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
    return ids


def pretrain(rng, steps: int, batch_size: int = 64, lr: float = 3e-3, bar=None, lib=llmref):
    corpus = pretraining_corpus(rng)
    params = lib.gpt.init(CONFIG, rng)
    state = lib.adamw.init(params)
    for step in range(steps):
        rows = [corpus[i] for i in rng.integers(0, len(corpus), batch_size)]
        ids = _pad(rows, max(map(len, rows)))
        targets = np.where(np.arange(ids.shape[1])[None] < np.array([len(r) for r in rows])
                           [:, None] - 1, np.roll(ids, -1, axis=1), -100)
        params, state, loss = _lm_step(params, state, ids, targets, lr, lib)
        if bar:
            bar(step + 1, f"loss {loss:.3f}")
    return params


def supervised_finetune(params, rng, steps: int, batch_size: int = 64, lr: float = 1e-3,
                        bar=None, lib=llmref):
    """Next-token loss on the answers only (the prompt tokens are not targets)."""
    demos = demonstrations(rng)
    state = lib.adamw.init(params)
    for step in range(steps):
        pairs = [demos[i] for i in rng.integers(0, len(demos), batch_size)]
        rows = [np.concatenate([p, r]) for p, r in pairs]
        ids = _pad(rows, max(map(len, rows)))
        targets = np.full(ids.shape, -100)
        for i, (p, r) in enumerate(pairs):
            targets[i, len(p) - 1:len(p) + len(r) - 1] = r
        params, state, loss = _lm_step(params, state, ids, targets, lr, lib)
        if bar:
            bar(step + 1, f"loss {loss:.3f}")
    return params


def sample_answers(params, prompts_ab, n_per_prompt, seed, temperature=1.0, lib=llmref):
    """n_per_prompt answers to each (a, b); returns the batch and the (a, b) of each row."""
    ab = [q for q in prompts_ab for _ in range(n_per_prompt)]
    prompts = [encode(question(a, b)) for a, b in ab]
    batch = lib.gpt_policy.sample(params, CONFIG, prompts, MAX_NEW, temperature=temperature,
                              stop_tokens=[STOP], pad_id=PAD, seed=seed)
    return batch, ab


def responses(batch) -> list:
    return [r[m] for r, m in zip(batch["responses"], batch["mask"], strict=True)]


def gold_of(batch, ab) -> np.ndarray:
    return np.array([gold_reward(a, b, r) for (a, b), r in zip(ab, responses(batch),
                                                                strict=True)])


def preference_pairs(params, rng, rounds: int, k: int = 4, seed: int = 0, lib=llmref):
    """Each round: k answers per question, ranked by the hidden human (distinct answers
    only; equal gold scores are ties, and tied pairs are dropped)."""
    pairs = []                      # (prompt, chosen, rejected, round)
    for rnd in range(rounds):
        batch, ab = sample_answers(params, QUESTIONS, k, seed + rnd, lib=lib)
        answers, gold = responses(batch), gold_of(batch, ab)
        for q in range(len(QUESTIONS)):
            rows = range(q * k, (q + 1) * k)
            unique = {}
            for i in rows:
                unique.setdefault(tuple(answers[i]), i)
            ranking = sorted(unique.values(), key=lambda i: (-gold[i], rng.random()))
            for c, r in lib.preference.pairs_from_ranking(ranking):
                if gold[c] > gold[r]:
                    prompt = encode(question(*ab[c]))
                    pairs.append((prompt, answers[c], answers[r], rnd))
    return pairs


def _pair_batches(pairs, lib):
    prompts = [p for p, _, _, _ in pairs]
    chosen = lib.rlhf_loop.batch(prompts, [c for _, c, _, _ in pairs], PAD)
    rejected = lib.rlhf_loop.batch(prompts, [r for _, _, r, _ in pairs], PAD)
    return chosen, rejected


def rm_scores(rm, batch, lib):
    ids, mask = lib.rlhf_loop.sequences(batch)
    return lib.reward_model.forward(ids, rm, CONFIG, attention_mask=mask)


def pair_accuracy(rm, pairs, lib) -> float:
    chosen, rejected = _pair_batches(pairs, lib)
    return float(np.mean(rm_scores(rm, chosen, lib)[0] > rm_scores(rm, rejected, lib)[0]))


def train_reward_model(sft, train_pairs, test_pairs, rng, epochs: int, batch_size: int = 64,
                       lr: float = 1e-3, bar=None, lib=llmref):
    rm = lib.reward_model.init_from_gpt(sft, CONFIG, rng)
    state = lib.adamw.init(rm)
    curve = [(0, pair_accuracy(rm, train_pairs, lib), pair_accuracy(rm, test_pairs, lib))]
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(train_pairs))
        for start in range(0, len(order), batch_size):
            chosen, rejected = _pair_batches([train_pairs[i] for i in
                                              order[start:start + batch_size]], lib)
            rc, cc = rm_scores(rm, chosen, lib)
            rr, cr = rm_scores(rm, rejected, lib)
            loss, pc = lib.preference.forward(rc, rr)
            g = lib.preference.backward(1.0, pc)
            gc, gr = lib.reward_model.backward(g["r_chosen"], cc), \
                lib.reward_model.backward(g["r_rejected"], cr)
            grads = _tree_add(gc, gr)
            rm, state = lib.adamw.step(rm, grads, state, lr=lr, weight_decay=0.01,
                                   decay=lib.adamw.matrices_only)
            step += 1
        curve.append((epoch + 1, pair_accuracy(rm, train_pairs, lib),
                      pair_accuracy(rm, test_pairs, lib)))
        if bar:
            bar(epoch + 1, f"held-out pair accuracy {curve[-1][2]:.3f}")
    return rm, curve


def _tree_add(a, b):
    if isinstance(a, dict):
        return {k: _tree_add(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return [_tree_add(x, y) for x, y in zip(a, b, strict=True)]
    return a + b


# ------------------------------------------------------------------ evaluation

EVAL_PER_PROMPT = 8
SHOW = ((2, 2), (1, 2), (3, 4))       # the questions whose answers the table shows


def evaluate(params, sft, rm, seed: int, lib=llmref) -> dict:
    """Answers to every question, sampled with a fixed seed: the proxy (reward model) and
    gold (hidden human) rewards, the KL to the SFT model (the mean over answers of the summed
    log-ratio), the distinct-token ratio (distinct tokens / tokens, per answer) and the
    first answer to each question of `SHOW`."""
    batch, ab = sample_answers(params, QUESTIONS, EVAL_PER_PROMPT, seed, lib=lib)
    logp, _ = lib.gpt_policy.logprobs(batch, params, CONFIG)
    logp_sft, _ = lib.gpt_policy.logprobs(batch, sft, CONFIG)
    answers = responses(batch)
    show = [decode(answers[ab.index(q)]) for q in SHOW]
    return {"proxy": float(rm_scores(rm, batch, lib)[0].mean()),
            "gold": float(gold_of(batch, ab).mean()),
            "kl": float((logp - logp_sft).sum(axis=1).mean()),
            "distinct": float(np.mean([len(set(r.tolist())) / len(r) for r in answers])),
            "answers": show}


# ------------------------------------------------------------------ RLHF

def ppo(sft, rm, beta: float, seed: int, iterations: int, bar=None, lib=llmref) -> dict:
    """PPO against the reward model with a KL penalty of weight beta to the SFT model; the
    critic starts as the reward model.  Returns the policy and, per iteration, the mean
    proxy and gold reward and the KL of the rollout."""
    curve = []

    def reward_fn(batch):
        scores, _ = rm_scores(rm, batch, lib)
        gold = gold_of(batch, [_ab_of(p) for p in batch["prompts"]])
        curve.append({"proxy": float(scores.mean()), "gold": float(gold.mean())})
        if bar:
            bar(len(curve), f"proxy {scores.mean():+.2f}  gold {gold.mean():+.2f}")
        return scores

    prompts = [encode(question(a, b)) for a, b in QUESTIONS]
    params, _, history = lib.rlhf_loop.ppo_train(
        lib.gpt_policy.policy(CONFIG, MAX_NEW, stop_tokens=[STOP], pad_id=PAD), sft, sft,
        reward_fn, prompts, critic=lib.value_model.critic(CONFIG),
        critic_params=lib.value_model.init_from_reward_model(rm, CONFIG), iterations=iterations,
        batch_size=64, epochs=2, minibatch_size=32, beta=beta, lr=1e-3, critic_lr=1e-3,
        seed=seed)
    for point, h in zip(curve, history, strict=True):
        point["kl"] = h["kl"]
    return {"params": params, "curve": curve}


def _ab_of(prompt_row) -> tuple:
    words = [WORDS[int(t)] for t in prompt_row if t != PAD]
    return NUMBERS.index(words[2]), NUMBERS.index(words[4])


def dpo_train(sft, pairs, rng, epochs: int, beta: float = 0.1, batch_size: int = 64,
              lr: float = 3e-4, bar=None, lib=llmref):
    """DPO from the SFT model on the same preference pairs: the log-probability of a whole
    answer is the sum of its tokens' (`gpt_policy.logprobs`), and its gradient goes back
    through the GPT with `gpt_policy.logprobs_backward`."""
    params, state = sft, lib.adamw.init(sft)
    chosen_all, rejected_all = _pair_batches(pairs, lib)
    ref_c = lib.gpt_policy.logprobs(chosen_all, sft, CONFIG)[0].sum(axis=1)
    ref_r = lib.gpt_policy.logprobs(rejected_all, sft, CONFIG)[0].sum(axis=1)
    for epoch in range(epochs):
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            chosen, rejected = _pair_batches([pairs[i] for i in idx], lib)
            lp_c, cache_c = lib.gpt_policy.logprobs(chosen, params, CONFIG)
            lp_r, cache_r = lib.gpt_policy.logprobs(rejected, params, CONFIG)
            loss, cache = lib.dpo.forward(lp_c.sum(axis=1), lp_r.sum(axis=1), ref_c[idx],
                                      ref_r[idx], beta)
            g = lib.dpo.backward(1.0, cache)
            grads = _tree_add(   # d(sum over tokens)/d(token) = 1: every token gets the row's
                lib.gpt_policy.logprobs_backward(np.broadcast_to(
                    g["policy_chosen"][:, None], lp_c.shape).copy(), cache_c),
                lib.gpt_policy.logprobs_backward(np.broadcast_to(
                    g["policy_rejected"][:, None], lp_r.shape).copy(), cache_r))
            params, state = lib.adamw.step(params, grads, state, lr=lr, weight_decay=0.0)
        if bar:
            bar(epoch + 1, f"loss {loss:.3f}")
    return params


# ------------------------------------------------------------------ the pipeline

DEFAULT_BETA = inspect.signature(llmref.rlhf_loop.ppo_train).parameters["beta"].default
BETAS = (0.0, 0.01, DEFAULT_BETA)
GOLD_MARGIN = 1.0           # beta = 0: gold at least this far below the SFT model's
DEFAULT_MARGIN = 0.25       # the default beta: gold no more than this below the SFT model's


def run(seed: int = 0, seeds=(0, 1, 2), betas=BETAS, pretrain_steps: int = 1500,
        sft_steps: int = 600, rounds: int = 8, rm_epochs: int = 6, ppo_iterations: int = 100,
        dpo_epochs: int = 2, stream=sys.stderr, lib=llmref) -> dict:
    """The whole pipeline; returns its results (JSON-ready: no arrays).  ``lib`` is the
    module of components it is built from (default: the reference)."""
    start, cpu = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(seed)
    seconds = {}

    def stage(name, total):
        return Progress(name, total, stream)

    t = time.perf_counter()
    base = pretrain(rng, pretrain_steps, bar=stage("pre-training", pretrain_steps), lib=lib)
    sft = supervised_finetune(base, rng, sft_steps, bar=stage("fine-tuning (SFT)", sft_steps),
                              lib=lib)
    seconds["pre-training and SFT"] = time.perf_counter() - t

    t = time.perf_counter()
    pairs = preference_pairs(sft, rng, rounds, seed=seed + 100, lib=lib)
    train_pairs = [p for p in pairs if p[3] < rounds - 2]           # the last two rounds'
    test_pairs = [p for p in pairs if p[3] >= rounds - 2]           # pairs are held out
    rm, rm_curve = train_reward_model(sft, train_pairs, test_pairs, rng, rm_epochs,
                                      bar=stage("reward model", rm_epochs), lib=lib)
    seconds["preferences and reward model"] = time.perf_counter() - t

    eval_seed = seed + 1000
    sft_batch, _ = sample_answers(sft, QUESTIONS, EVAL_PER_PROMPT, eval_seed, lib=lib)
    sft_scores = rm_scores(rm, sft_batch, lib)[0]
    results = {"seed": seed, "seeds": list(seeds), "betas": list(betas),
               "default_beta": DEFAULT_BETA, "config": dict(CONFIG.__dict__),
               "pairs": {"train": len(train_pairs), "held_out": len(test_pairs)},
               "rm_curve": [{"epoch": e, "train": a, "held_out": b} for e, a, b in rm_curve],
               "rm_accuracy": rm_curve[-1][2],
               "rm_score_range": [float(sft_scores.min()), float(sft_scores.max())],
               "sft": evaluate(sft, sft, rm, eval_seed, lib=lib), "ppo": {}}
    t = time.perf_counter()
    for beta in betas:
        results["ppo"][str(beta)] = []
        for s in seeds:
            out = ppo(sft, rm, beta, s, ppo_iterations,
                      bar=stage(f"PPO beta={beta} seed={s}", ppo_iterations), lib=lib)
            results["ppo"][str(beta)].append(
                {"seed": s, "curve": out["curve"], **evaluate(out["params"], sft, rm,
                                                               eval_seed, lib=lib)})
    # the order of the stages: the same RLHF from the pre-trained model, without SFT
    out = ppo(base, rm, DEFAULT_BETA, seeds[0], ppo_iterations,
              bar=stage(f"PPO without SFT, beta={DEFAULT_BETA}", ppo_iterations), lib=lib)
    results["no_sft"] = {"pretrained": evaluate(base, base, rm, eval_seed, lib=lib),
                         "ppo": evaluate(out["params"], base, rm, eval_seed, lib=lib)}
    seconds["PPO"] = time.perf_counter() - t

    t = time.perf_counter()
    dpo_params = dpo_train(sft, train_pairs, rng, dpo_epochs, bar=stage("DPO", dpo_epochs),
                           lib=lib)
    results["dpo"] = evaluate(dpo_params, sft, rm, eval_seed, lib=lib)
    seconds["DPO"] = time.perf_counter() - t
    results["seconds"] = {**seconds, "total": time.perf_counter() - start,
                          "cpu": time.process_time() - cpu}
    results["checks"] = checks(results)
    return results


def checks(results) -> dict:
    """The claims the run makes, recomputed from its numbers."""
    sft = results["sft"]
    free = results["ppo"][str(results["betas"][0])]
    default = results["ppo"][str(results["default_beta"])]
    return {"rm_accuracy_at_least_75": results["rm_accuracy"] >= 0.75,
            "beta0_proxy_rises_every_seed": all(r["proxy"] > sft["proxy"] for r in free),
            "beta0_gold_falls_by_margin_every_seed": all(
                r["gold"] < sft["gold"] - GOLD_MARGIN for r in free),
            "default_gold_within_margin_every_seed": all(
                r["gold"] > sft["gold"] - DEFAULT_MARGIN for r in default),
            "rm_scores_outside_0_1": not (0 <= results["rm_score_range"][0]
                                          and results["rm_score_range"][1] <= 1),
            "sft_first_beats_rlhf_on_the_pretrained_model":
                default[0]["gold"] > results["no_sft"]["ppo"]["gold"]}


def table(results) -> str:
    """Markdown: one row per method (PPO rows are means over the seeds; their answers are
    from the first seed)."""
    asked = " / ".join(f"{a} + {b}" for a, b in SHOW)
    head = (f"| method | proxy | gold | KL to start | distinct | answers to {asked} |\n"
            f"|---|---|---|---|---|---|")
    rows = [head]

    def row(name, r):
        rows.append(f"| {name} | {r['proxy']:.2f} | {r['gold']:.2f} | {r['kl']:.2f} | "
                    f"{r['distinct']:.2f} | " + " / ".join(r["answers"]) + " |")

    row("SFT model", results["sft"])
    for beta, runs in results["ppo"].items():
        mean = {k: float(np.mean([r[k] for r in runs])) for k in ("proxy", "gold", "kl",
                                                                   "distinct")}
        row(f"PPO, beta = {beta}", {**mean, "answers": runs[0]["answers"]})
    row("DPO, beta = 0.1", results["dpo"])
    row("pre-trained model (no SFT)", results["no_sft"]["pretrained"])
    row(f"PPO on it, beta = {results['default_beta']}", results["no_sft"]["ppo"])
    return "\n".join(rows)


def summary(results) -> str:
    sft, lines = results["sft"], []
    for beta, runs in results["ppo"].items():
        per_seed = ", ".join(f"seed {r['seed']}: proxy {r['proxy']:+.2f} gold {r['gold']:+.2f}"
                             f" KL {r['kl']:.2f}" for r in runs)
        lines.append(f"beta = {beta}: {per_seed}")
    lines.append(f"SFT model: proxy {sft['proxy']:+.2f} gold {sft['gold']:+.2f}")
    lines.append(f"reward model: held-out pair accuracy {results['rm_accuracy']:.3f} on "
                 f"{results['pairs']['held_out']} pairs ({results['pairs']['train']} for "
                 f"training)")
    lines.append("checks: " + ", ".join(f"{k} {'yes' if v else 'NO'}"
                                        for k, v in results["checks"].items()))
    sec = results["seconds"]
    lines.append(f"time: {sec['total']:.0f} s ({sec['cpu']:.0f} s of CPU): " +
                 ", ".join(f"{k} {v:.0f} s" for k, v in sec.items()
                           if k not in ("total", "cpu")))
    return "\n".join(lines)


# ------------------------------------------------------------------ plots

def _reward_panel(key: str, title: str):
    """Proxy or gold reward of the PPO rollouts against their KL to the SFT model, one colour
    per beta (every seed: dots, running mean: line), the SFT model and DPO marked."""
    def draw(ax, results):
        plt = common.pyplot()
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for colour, (beta, runs) in zip(colours, results["ppo"].items(), strict=False):
            for i, r in enumerate(runs):
                kl = np.array([p["kl"] for p in r["curve"]])
                y = np.array([p[key] for p in r["curve"]])
                order = np.argsort(kl)
                smooth = np.convolve(y[order], np.ones(9) / 9, mode="valid")
                ax.scatter(kl, y, s=4, color=colour, alpha=0.25)
                ax.plot(kl[order][4:-4], smooth, color=colour, lw=1.5,
                        label=f"PPO, beta = {beta}" if i == 0 else None)
        ax.scatter([0], [results["sft"][key]], marker="*", s=150, color="k",
                   label="SFT model", zorder=5)
        ax.scatter([results["dpo"]["kl"]], [results["dpo"][key]], marker="D", s=50,
                   color="grey", label="DPO (after training)", zorder=5)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set(title=title, xlabel="KL(policy || SFT model), nats per answer",
               ylabel="mean reward of the answers")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return draw


def _draw_reward_model(ax, results):
    curve = results["rm_curve"]
    epochs = [c["epoch"] for c in curve]
    ax.plot(epochs, [c["train"] for c in curve], "o-", label="training pairs")
    ax.plot(epochs, [c["held_out"] for c in curve], "s-",
            label=f"held-out pairs ({results['pairs']['held_out']})")
    ax.axhline(0.5, color="grey", ls=":", label="chance")
    ax.set(title="Reward model (Bradley-Terry) accuracy", xlabel="epoch",
           ylabel="pairs ranked as the person did", ylim=(0, 1))
    ax.legend(loc="lower right")


#: the plots, one panel each on the site (file stem, caption, draw)
PANELS = [
    ("reward_model", "The reward model's accuracy on the pairs it learns from and on the "
     "pairs of the last two rounds, which it never sees.", _draw_reward_model),
    ("proxy", "The reward model's score (the proxy) of each PPO rollout against the policy's "
     "KL to the SFT model, one colour per beta, every seed; lines are running means.",
     _reward_panel("proxy", "Proxy reward (the reward model)")),
    ("gold", "The hidden person's score (the gold reward) of the same rollouts: it falls "
     "once the policy moves far from the SFT model.",
     _reward_panel("gold", "Gold reward (the hidden person)")),
]


def plot(results, path: Path) -> Path:
    """Every panel in one PNG."""
    return common.plot_panels(PANELS, results, path, ncols=3)


def figures(results) -> dict:
    """The numbers the site quotes, flat: the reward model, the SFT model, each beta's mean
    over its seeds, DPO, the order of the stages, the run time; ``table`` is the Markdown
    table of ``table``."""
    out = {"reward model held-out accuracy": results["rm_accuracy"],
           "held-out pairs": results["pairs"]["held_out"],
           "training pairs": results["pairs"]["train"],
           "SFT proxy": results["sft"]["proxy"], "SFT gold": results["sft"]["gold"]}
    for beta, runs in results["ppo"].items():
        for k in ("proxy", "gold", "kl"):
            out[f"beta {beta} {k}"] = float(np.mean([r[k] for r in runs]))
        out[f"beta {beta} gold per seed"] = [r["gold"] for r in runs]
        out[f"beta {beta} answers"] = " / ".join(runs[0]["answers"])
    out.update({"DPO gold": results["dpo"]["gold"], "DPO KL": results["dpo"]["kl"],
                "pre-trained gold": results["no_sft"]["pretrained"]["gold"],
                "PPO without SFT gold": results["no_sft"]["ppo"]["gold"],
                "CPU seconds": results["seconds"]["cpu"], "table": table(results)})
    return out


# ------------------------------------------------------------------ command line

def main(argv=None, lib=llmref):
    """The command line; returns the results.  ``lib``: the module of components the
    pipeline is built from (the slow test passes the implementation under test)."""
    parser = common.parser("RLHF end to end on a tiny GPT: pre-training, SFT, a reward model "
                           "from rankings, PPO for several beta, and DPO")
    parser.add_argument("--ppo-iterations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3, help="PPO seeds per beta (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: the matrices are tiny, and more threads "
                             "only wait for each other)")
    args = parser.parse_args(argv)
    record = common.Run("rlhf_pipeline", args, argv)
    with common.blas_threads(args.threads):
        results = run(seed=args.seed, seeds=tuple(range(args.seeds)),
                      ppo_iterations=args.ppo_iterations, lib=lib)
    print(table(results))
    print(summary(results))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "rlhf_pipeline.json").write_text(json.dumps(results, indent=1))
        print("results:", args.out / "rlhf_pipeline.json")
    common.maybe_plot(args, plot, results, "rlhf_pipeline.png")
    record.finish(results, PANELS, figures(results))
    return results


if __name__ == "__main__":
    main()
