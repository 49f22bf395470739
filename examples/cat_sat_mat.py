"""The cat sat on the mat: lesson 001's tiny next-word network, trained in front of you.

    python -m llmref.examples.cat_sat_mat                      # prints progress, saves plots
    python -m llmref.examples.cat_sat_mat --lr 0.01 --epochs 3000

A five-word vocabulary, an embedding of size 8, one tanh hidden layer of 4 units and a
softmax over the five words: 40 + 36 + 25 = 101 parameters ("about 100").  It is trained
with plain SGD on the five (word, next word) pairs of "the cat sat on the mat".

It also shows what the lesson leaves out.  "the" is followed once by "cat" and once by
"mat", so with one word of context no network can give either more than 50%: only the
next words that are determined by the previous one (cat -> sat, sat -> on, on -> the) can
reach 99%.  And chance is 1 / vocabulary size (20% here), so a network that starts at 8% for
"sat" starts below chance, not "barely better" than it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import llmref
from llmref.examples import common

SENTENCE = "the cat sat on the mat"

# Every function takes ``lib``, the module of components to build the network from (default:
# the reference, ``llmref``); the spec tests pass the implementation under test.


def init(vocab_size: int, rng, d_embed: int = 8, d_hidden: int = 4, lib=llmref) -> dict:
    return {"emb": lib.embedding.init(vocab_size, d_embed, rng, std=0.5),
            "hidden": lib.linear.init(d_embed, d_hidden, rng),
            "out": lib.linear.init(d_hidden, vocab_size, rng)}


def forward(ids, params, lib=llmref):
    """ids (N,) -> logits (N, V), and what the plots and the backward need."""
    e, e_c = lib.embedding.forward(ids, params["emb"])
    z, z_c = lib.linear.forward(e, params["hidden"])
    h, h_c = lib.tanh.forward(z)
    logits, o_c = lib.linear.forward(h, params["out"])
    return logits, (e_c, z_c, h_c, o_c, h)


def loss_and_grads(ids, targets, params, lib=llmref):
    logits, (e_c, z_c, h_c, o_c, _) = forward(ids, params, lib)
    loss, ce_c = lib.cross_entropy.forward(logits, targets)
    d_out = lib.linear.backward(lib.cross_entropy.backward(1.0, ce_c)["logits"], o_c)
    d_hidden = lib.linear.backward(lib.tanh.backward(d_out.pop("x"), h_c)["x"], z_c)
    d_emb = lib.embedding.backward(d_hidden.pop("x"), e_c)
    return loss, {"emb": d_emb, "hidden": d_hidden, "out": d_out}


def train(epochs: int = 400, lr: float = 0.5, seed: int = 0, log=print, log_every: int = 50,
          lib=llmref):
    vocab = lib.word_tokenizer.build_vocab(SENTENCE)
    ids = lib.word_tokenizer.encode(SENTENCE, vocab)
    inputs, targets = ids[:-1], ids[1:]
    rng = np.random.default_rng(seed)
    params = init(len(vocab), rng, lib=lib)
    state = lib.sgd.init(params)
    n_params = sum(a.size for part in params.values() for a in part.values())
    history = {"loss": [], "p_correct": [], "cat_embedding": [], "hidden": []}
    for epoch in range(epochs + 1):
        logits, (*_, h) = forward(inputs, params, lib)
        probs = lib.softmax.forward(logits)[0]
        history["p_correct"].append(probs[np.arange(len(targets)), targets])
        history["cat_embedding"].append(params["emb"]["W"][vocab["cat"]].copy())
        history["hidden"].append(h)
        loss, grads = loss_and_grads(inputs, targets, params, lib)
        history["loss"].append(float(loss))
        if log and log_every and epoch % log_every == 0:
            p = history["p_correct"][-1]
            log(f"epoch {epoch:5d}  loss {loss:.4f}  p(sat|cat) {p[1]:.3f}  "
                f"p(cat|the) {p[0]:.3f}  p(mat|the) {p[4]:.3f}")
        if epoch < epochs:
            params, state = lib.sgd.step(params, grads, state, lr=lr)
    history = {k: np.array(v) for k, v in history.items()}
    pairs = [f"{a} -> {b}" for a, b in zip(SENTENCE.split()[:-1], SENTENCE.split()[1:],
                                          strict=True)]
    return {"vocab": vocab, "pairs": pairs, "history": history, "params": params,
            "inputs": inputs, "targets": targets,
            "n_params": n_params, "chance": 1.0 / len(vocab)}


def report(result) -> str:
    p = result["history"]["p_correct"]
    lines = [f"parameters: {result['n_params']}, chance level 1/V = {result['chance']:.0%}",
             f"{'pair':<14}{'start':>8}{'end':>8}  reaches 99%?"]
    for i, pair in enumerate(result["pairs"]):
        hit = np.nonzero(p[:, i] >= 0.99)[0]
        when = f"yes, at epoch {hit[0]}" if hit.size else "no (ceiling 50%: 'the' has two " \
            "continuations)" if pair.startswith("the") else "not yet"
        lines.append(f"{pair:<14}{p[0, i]:8.1%}{p[-1, i]:8.1%}  {when}")
    return "\n".join(lines)


def _draw_loss(ax, result):
    ax.plot(result["history"]["loss"])
    ax.set(title="Loss during training", xlabel="epoch", ylabel="mean cross-entropy")


def _draw_probabilities(ax, result):
    for i, pair in enumerate(result["pairs"]):
        ax.plot(result["history"]["p_correct"][:, i], label=pair)
    ax.axhline(result["chance"], color="gray", ls=":", label="chance (1/V)")
    ax.axhline(0.5, color="red", ls="--", lw=0.8, label="ceiling for 'the -> ?'")
    ax.set(title="Probability of the correct next word", xlabel="epoch",
           ylabel="probability", ylim=(0, 1))
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)


def _draw_embedding(ax, result):
    ax.plot(result["history"]["cat_embedding"])
    ax.set(title="The embedding of 'cat' (8 numbers)", xlabel="epoch",
           ylabel="coordinate value")


def _draw_hidden(ax, result):
    im = ax.imshow(result["history"]["hidden"][-1], cmap="coolwarm", vmin=-1, vmax=1)
    ax.set(title="Hidden activations after training", xlabel="hidden unit",
           ylabel="input -> next word", xticks=range(result["history"]["hidden"].shape[-1]),
           yticks=range(len(result["pairs"])), yticklabels=result["pairs"])
    ax.figure.colorbar(im, ax=ax, label="tanh activation")


PANELS = [("loss", "The loss falls as the network learns the sentence.", _draw_loss),
          ("probabilities", "The probability the network gives each correct next word. The "
           "words after 'the' level off at 50%: 'the' is followed once by 'cat' and once by "
           "'mat'.", _draw_probabilities),
          ("cat_embedding", "The eight numbers that represent 'cat' move as training goes "
           "on and settle.", _draw_embedding),
          ("hidden", "The hidden layer's activations for each input word after training.",
           _draw_hidden)]


def plot(result, path: Path) -> Path:
    """Every panel in one PNG."""
    return common.plot_panels(PANELS, result, path)


def main(argv=None):
    parser = common.parser("The cat sat on the mat, learned by SGD")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args(argv)
    record = common.Run("cat_sat_mat", args, argv)
    result = train(args.epochs, args.lr, args.seed, log_every=max(1, args.epochs // 10))
    print(report(result))
    common.maybe_plot(args, plot, result, "cat_sat_mat.png")
    p = result["history"]["p_correct"]
    record.finish(result, PANELS, {
        "parameters": result["n_params"], "epochs": args.epochs, "learning_rate": args.lr,
        "loss_start": result["history"]["loss"][0], "loss_end": result["history"]["loss"][-1],
        **{f"p({b} | {a}) start": p[0, i] for i, (a, b) in
           enumerate(pair.split(" -> ") for pair in result["pairs"])},
        **{f"p({b} | {a}) end": p[-1, i] for i, (a, b) in
           enumerate(pair.split(" -> ") for pair in result["pairs"])}})
    return result


if __name__ == "__main__":
    main()
