"""The word calculator of lesson 002: "two plus three equals" -> "five", learned by a tiny GPT.

    python -m llmref.examples.word_calculator                 # about 3 minutes on two cores
    python -m llmref.examples.word_calculator --steps 1000    # a quick look

Numbers 0..99 are words of their own (single tokens), with "plus", "minus" and "equals":
every sum a + b and every difference a - b >= 0 of two numbers below 100, 15,150 examples
in all.  A tenth of them is held out and never trained on, so the held-out accuracy
measures whether the model learned arithmetic or memorised its training pairs.  The model
is a 2-layer GPT of width 64 (about 113K weights), trained with AdamW, a warmup + cosine
schedule and weight decay, on the last token only ("... equals ___").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import llmref
from llmref.examples import common
from llmref.params import count
from llmref.transformer.gpt import GPTConfig

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        "hundred"]


def number_word(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n >= 100:
        return "one-hundred" + ("" if n == 100 else "-" + number_word(n - 100))
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])


class Vocab:
    def __init__(self, limit: int = 100):
        self.words = [number_word(n) for n in range(2 * limit - 1)] + ["plus", "minus",
                                                                          "equals"]
        self.ids = {w: i for i, w in enumerate(self.words)}

    def encode(self, text: str) -> np.ndarray:
        try:
            return np.array([self.ids[w] for w in text.split()])
        except KeyError as exc:
            raise ValueError(f"word_calculator: unknown word {exc.args[0]!r}") from None

    def decode(self, ids) -> str:
        return " ".join(self.words[int(i)] for i in ids)


def dataset(vocab: Vocab, limit: int = 100, held_out: float = 0.1, seed: int = 0):
    """Rows ``[a, op, b, equals, answer]``; returns (train, test)."""
    plus, minus, eq = vocab.ids["plus"], vocab.ids["minus"], vocab.ids["equals"]
    rows = [[a, plus, b, eq, a + b] for a in range(limit) for b in range(limit)]
    rows += [[a, minus, b, eq, a - b] for a in range(limit) for b in range(a + 1)]
    rows = np.array(rows)
    np.random.default_rng(seed).shuffle(rows)
    n_test = int(len(rows) * held_out)
    return rows[n_test:], rows[:n_test]


def accuracy(params, config, rows, lib=llmref) -> float:
    logits, _ = lib.gpt.forward(rows[:, :4], params, config)
    return float(np.mean(logits[:, 3].argmax(-1) == rows[:, 4]))


def train(steps: int = 4000, batch_size: int = 256, seed: int = 0, log=print,
          log_every: int = 250, lib=llmref):
    """Train the calculator; ``lib`` is the module of components (default the reference; the
    spec tests pass the implementation under test)."""
    vocab = Vocab()
    train_rows, test_rows = dataset(vocab, seed=seed)
    config = GPTConfig(vocab_size=len(vocab.words), context_len=4, d_model=64, n_heads=4,
                       n_layers=2)
    rng = np.random.default_rng(seed)
    params = lib.gpt.init(config, rng, dtype=np.float32)
    state = lib.adamw.init(params)
    n_params = count(params)
    targets = np.full((batch_size, 4), -100)                 # only the answer is predicted
    history = {"step": [], "loss": [], "train_acc": [], "test_acc": []}
    warmup = max(1, min(100, steps // 10))
    start = time.perf_counter()
    if log:
        log(f"{len(train_rows)} training and {len(test_rows)} held-out examples, "
            f"{n_params} weights")
    for step in range(steps):
        rows = train_rows[rng.integers(0, len(train_rows), batch_size)]
        targets[:, 3] = rows[:, 4]
        loss, grads = lib.gpt.loss_and_grads(rows[:, :4], targets, params, config)
        lr = lib.schedules.warmup_cosine(step, 3e-3, warmup, steps, 3e-4) if steps > warmup \
            else 3e-3
        params, state = lib.adamw.step(params, grads, state, lr=lr, weight_decay=0.1,
                                       decay=lib.adamw.matrices_only)
        if (step + 1) % log_every == 0 or step == steps - 1:
            history["step"].append(step + 1)
            history["loss"].append(float(loss))
            history["train_acc"].append(accuracy(params, config, train_rows[:2000], lib))
            history["test_acc"].append(accuracy(params, config, test_rows, lib))
            if log:
                log(f"step {step + 1}/{steps}  loss {loss:.3f}  train acc "
                    f"{history['train_acc'][-1]:.3f}  held-out acc {history['test_acc'][-1]:.3f}"
                    f"  {time.perf_counter() - start:.0f} s")
    return {"params": params, "config": config, "vocab": vocab, "history": history,
            "test_acc": accuracy(params, config, test_rows, lib), "n_params": n_params,
            "train_rows": train_rows, "test_rows": test_rows,
            "n_train": len(train_rows), "n_test": len(test_rows),
            "seconds": time.perf_counter() - start}



def ask(result, question: str, lib=llmref) -> str:
    """``"two plus three equals"`` -> the model's answer word."""
    ids = result["vocab"].encode(question)[None]
    logits, _ = lib.gpt.forward(ids, result["params"], result["config"])
    return result["vocab"].decode([logits[0, -1].argmax()])


def attention_weights(result, question: str, lib=llmref):
    """Per layer, the (heads, T, T) attention weights for ``question``."""
    params, config = result["params"], result["config"]
    ids = result["vocab"].encode(question)[None]
    h = params["wte"]["W"][ids] + params["wpe"]["W"][: ids.shape[1]]
    out = []
    for p in params["blocks"]:
        x, _ = lib.layer_norm.forward(h, p["ln1"])
        qkv = x @ p["attn"]["qkv"]["W"] + p["attn"]["qkv"]["b"]
        B, T, C3 = qkv.shape
        q, k, _ = qkv.reshape(B, T, 3, config.n_heads, -1).transpose(2, 0, 3, 1, 4)
        out.append(lib.attention.weights(q, k, causal=True)[0])
        h, _ = lib.block.forward(h, p, config.n_heads)
    return out


QUESTION = "twelve plus thirty equals"


def _draw_loss(ax, result):
    h = result["history"]
    ax.plot(h["step"], h["loss"])
    ax.set(title="Training loss", xlabel="step", ylabel="cross-entropy of the answer",
           yscale="log")


def _draw_accuracy(ax, result):
    h = result["history"]
    ax.plot(h["step"], h["train_acc"], "g--", label="training problems")
    ax.plot(h["step"], h["test_acc"], "r-", label="held-out problems")
    ax.set(title="Accuracy", xlabel="step", ylabel="share answered right", ylim=(0, 1))
    ax.legend(loc="lower right", fontsize="small")


def _attention_panel(layer: int):
    def draw(ax, result):
        weights = attention_weights(result, QUESTION)[layer].mean(axis=0)
        words = QUESTION.split()
        im = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
        ax.set(title=f"Layer {layer + 1} attention, mean over heads",
               xlabel="attended word (key)", ylabel="attending word (query)",
               xticks=range(len(words)), yticks=range(len(words)))
        ax.set_xticklabels(words, rotation=30, ha="right")
        ax.set_yticklabels(words)
        ax.figure.colorbar(im, ax=ax, label="attention weight")
    return draw


def panels(result) -> list:
    """The plot panels: loss, accuracy and one attention map per layer."""
    return [("loss", "The loss on the answer word falls over training (log scale).",
             _draw_loss),
            ("accuracy", "Accuracy on training problems and on the held-out problems the "
             "model never saw.", _draw_accuracy),
            *((f"attention_layer_{i + 1}", f"Where each word of '{QUESTION}' looks in layer "
               f"{i + 1} (causal: only at itself and earlier words).", _attention_panel(i))
              for i in range(result["config"].n_layers))]


def plot(result, path: Path) -> Path:
    """Every panel in one PNG."""
    return common.plot_panels(panels(result), result, path)


def main(argv=None, lib=llmref):
    """The command line; returns the trained result.  ``lib``: the module of components
    (the slow claim test passes the implementation under test and saves this run for the
    site)."""
    parser = common.parser("A tiny GPT learns arithmetic in words")
    parser.add_argument("--steps", type=int, default=4000)
    args = parser.parse_args(argv)
    record = common.Run("word_calculator", args, argv)
    result = train(args.steps, seed=args.seed, lib=lib)
    print(f"held-out accuracy {result['test_acc']:.1%} on {result['n_test']} never-seen "
          f"problems, after {result['seconds']:.0f} s")
    answers = {}
    for q in ("two plus three equals", "seventy minus twenty-five equals",
              "forty-four plus forty-four equals"):
        answers[q] = ask(result, q, lib=lib)
        print(f"  {q} -> {answers[q]}")
    common.maybe_plot(args, plot, result, "word_calculator.png")
    record.finish(result, panels(result), {
        "held-out accuracy": result["test_acc"], "held-out problems": result["n_test"],
        "training problems": result["n_train"], "weights": result["n_params"],
        "steps": args.steps, "training seconds": round(result["seconds"], 1),
        **{f"{q} ...": a for q, a in answers.items()}})
    return result


if __name__ == "__main__":
    main()
