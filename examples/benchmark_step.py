"""Time one training step (forward + backward) of the same tiny GPT in our float32 NumPy
reference and in PyTorch eager on the CPU, in one process, and print the ratio.

    python -m llmref.examples.benchmark_step                 # the issue's configuration
    python -m llmref.examples.benchmark_step --steps 50 --batch 8
    python -m llmref.examples.benchmark_step --threads 1       # one core each: NumPy vs PyTorch

Two PyTorch versions of the model get the same weights and batch as ours: the twin the spec
tests use (``nn.Embedding``, ``nn.TransformerEncoderLayer``, ``nn.LayerNorm``), and a
nanoGPT-style module written for speed (``nn.Linear`` layers and the fused causal kernel
``F.scaled_dot_product_attention(is_causal=True)``).  The headline ratio is against the faster
of the two.  The script first checks that all three compute the same loss.  Steps alternate
between the models in blocks so that any drift in machine speed hits all of them, and the
median of each is reported.

Threads: by default each library uses what it chooses on its own.  PyTorch runs every
operation, element-wise ones included, on all cores; NumPy runs matrix products on all cores
(through its BLAS) but every element-wise operation (exp, the softmaxes, GELU, layer norm) on
one.  ``--threads N`` gives both sides N threads, which compares the implementations core for
core (``--threads 1``: one core each).

Memory allocator: NumPy allocates a fresh buffer for every intermediate array, and glibc
returns large ones to the OS at once, so each step pays for page faults that a caching
allocator avoids.  Unless ``--no-malloc-tuning`` is given, the script raises glibc's mmap and
trim thresholds (``mallopt``) for the whole process, PyTorch included, before timing.
This is a speed benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time

import numpy as np

from llmref.examples import common
from llmref.transformer import gpt
from llmref.transformer.gpt import GPTConfig


def tune_glibc_malloc() -> str:
    """Keep freed memory in the process (fewer page faults); returns what was done."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "not glibc: allocator left as it is"
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = all(libc.mallopt(option, value) == 1 for option, value in (
        (m_mmap_threshold, 512 * 2**20), (m_trim_threshold, 2**30), (m_top_pad, 64 * 2**20)))
    return "glibc mallopt: mmap threshold 512 MiB, trim threshold 1 GiB" if ok else \
        "mallopt refused: allocator left as it is"


def nanogpt_style_module(config, torch):
    """A compact eager GPT in the style of nanoGPT: fused QKV, SDPA with is_causal=True."""
    nn, F = torch.nn, torch.nn.functional
    C, H = config.d_model, config.n_heads

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C, eps=config.eps), nn.LayerNorm(C, eps=config.eps)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.fc_proj = nn.Linear(C, config.hidden), nn.Linear(config.hidden, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2)
                       for t in self.qkv(self.ln1(x)).split(C, dim=2))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(att.transpose(1, 2).reshape(B, T, C))
            return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, C)
            self.wpe = nn.Embedding(config.context_len, C)
            self.blocks = nn.ModuleList(Block() for _ in range(config.n_layers))
            self.ln_f = nn.LayerNorm(C, eps=config.eps)

        def forward(self, ids):
            h = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
            for block in self.blocks:
                h = block(h)
            return self.ln_f(h) @ self.wte.weight.T

    return GPT()


def nanogpt_state(params, torch) -> dict:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    state = {"wte.weight": t(params["wte"]["W"]), "wpe.weight": t(params["wpe"]["W"]),
             "ln_f.weight": t(params["ln_f"]["gamma"]), "ln_f.bias": t(params["ln_f"]["beta"])}
    for i, b in enumerate(params["blocks"]):
        for ours, theirs in (("ln1", "ln1"), ("ln2", "ln2")):
            state[f"blocks.{i}.{theirs}.weight"] = t(b[ours]["gamma"])
            state[f"blocks.{i}.{theirs}.bias"] = t(b[ours]["beta"])
        for (group, name), theirs in ((("attn", "qkv"), "qkv"), (("attn", "proj"), "proj"),
                                      (("ffn", "fc"), "fc"), (("ffn", "proj"), "fc_proj")):
            state[f"blocks.{i}.{theirs}.weight"] = t(b[group][name]["W"].T)
            state[f"blocks.{i}.{theirs}.bias"] = t(b[group][name]["b"])
    return state


def main(argv=None) -> float:
    parser = common.Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-malloc-tuning", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="run both sides on this many threads (default: each library's "
                             "own choice, all cores): threadpoolctl sets NumPy's BLAS, "
                             "torch.set_num_threads PyTorch's)")
    common.add_artefacts_option(parser)
    args = parser.parse_args(argv)
    with common.blas_threads(args.threads):
        return _measure(args, argv)


def _measure(args, argv) -> float:
    record = common.Run("benchmark_step", args, argv)

    allocator = "default" if args.no_malloc_tuning else tune_glibc_malloc()
    import torch
    import torch.nn.functional as F

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from llmref.spec.harness import torch_twins

    config = GPTConfig(vocab_size=args.vocab, context_len=args.seq, d_model=args.d_model,
                       n_heads=args.heads, n_layers=args.layers)
    rng = np.random.default_rng(0)
    params = gpt.init(config, rng, dtype=np.float32)
    ids = rng.integers(0, args.vocab, size=(args.batch, args.seq))
    targets = np.roll(ids, -1, axis=1)

    encoder_layer_model = torch_twins.TorchGPT(config, dtype=torch.float32)
    encoder_layer_model.load_state_dict(
        torch_twins.gpt_state(torch_twins.tensors(params, False, torch.float32)))
    nanogpt_model = nanogpt_style_module(config, torch)
    nanogpt_model.load_state_dict(nanogpt_state(params, torch))
    ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets)

    def ours():
        return float(gpt.loss_and_grads(ids, targets, params, config)[0])

    def torch_step(model):
        def step():
            model.zero_grad(set_to_none=True)
            logits = model(ids_t)
            loss = F.cross_entropy(logits.reshape(-1, args.vocab), targets_t.reshape(-1))
            loss.backward()
            return loss.item()
        return step

    runners = {"numpy (ours)": ours,
               "torch TransformerEncoderLayer": torch_step(encoder_layer_model),
               "torch nanoGPT-style + SDPA": torch_step(nanogpt_model)}
    losses = {name: fn() for name, fn in runners.items()}
    reference_loss = losses["numpy (ours)"]
    for loss in losses.values():
        if abs(loss - reference_loss) > 1e-4 * abs(reference_loss):
            raise SystemExit(f"the models disagree: {losses}")

    # Blocks of BLOCK steps per model, in turn: drift in machine speed hits every model, and
    # PyTorch's worker threads (which keep spinning for a moment after each operation) do
    # not steal a core from the step that follows theirs.
    BLOCK = 5
    times = {name: [] for name in runners}
    for fn in runners.values():
        for _ in range(args.warmup):
            fn()
    while len(times["numpy (ours)"]) < args.steps:
        for name, fn in runners.items():
            for _ in range(BLOCK):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        print(f"  {len(times['numpy (ours)'])}/{args.steps} steps timed per model", flush=True)

    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    ours_ms = med.pop("numpy (ours)")
    fastest = min(med, key=med.get)
    ratio = ours_ms / med[fastest]
    print(f"config: d_model {args.d_model}, layers {args.layers}, heads {args.heads}, "
          f"seq {args.seq}, batch {args.batch}, vocab {args.vocab}; float32")
    blas_threads = common.blas_thread_count()
    print(f"threads: torch {torch.get_num_threads()}, NumPy BLAS {blas_threads}, NumPy "
          f"element-wise 1, cpus {os.cpu_count()}; allocator: {allocator}")
    print(f"loss (all three agree): {reference_loss:.6f}")
    print("median step (forward + backward):")
    print(f"  numpy (ours)                     {ours_ms:7.1f} ms")
    for name, ms in med.items():
        print(f"  {name:<32} {ms:7.1f} ms   ratio ours/this = {ours_ms / ms:.2f}")
    print(f"ratio numpy / fastest torch eager ({fastest}) = {ratio:.2f}  "
          f"(<= 1.0 means ours is no slower)")
    # the same ratio within each round of blocks shows how much the machine's drift moves it
    rounds = [statistics.median(times["numpy (ours)"][i:i + BLOCK])
              / statistics.median(times[fastest][i:i + BLOCK])
              for i in range(0, len(times[fastest]), BLOCK)]
    print(f"  the same ratio round by round ({len(rounds)} rounds of {BLOCK} steps each): "
          f"{min(rounds):.2f} to {max(rounds):.2f}")
    record.finish(results={"numpy (ours), ms": round(ours_ms, 1),
                           **{f"{name}, ms": round(ms, 1) for name, ms in med.items()},
                           f"ratio ours / {fastest}": round(ratio, 2),
                           "ratio, round by round": f"{min(rounds):.2f} to {max(rounds):.2f}",
                           "torch threads": torch.get_num_threads(), "cpus": os.cpu_count()})
    return ratio


if __name__ == "__main__":
    main()
