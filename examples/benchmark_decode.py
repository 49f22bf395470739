"""Tokens per second of greedy generation with the reference's KV cache, without it, and with
Hugging Face's ``generate`` on the same weights, in one process, and the ratios.

    python -m llmref.examples.benchmark_decode                    # a small Llama, float32
    python -m llmref.examples.benchmark_decode --model gpt2 --new 64
    python -m llmref.examples.benchmark_decode --batch 4 --prompt 16
    python -m llmref.examples.benchmark_decode --threads 1     # one core each

Threads: decoding multiplies one row per sequence by each weight matrix, products too small
for a multi-threaded BLAS to gain from; on a busy machine its spinning threads make them
several times slower.  ``--threads N`` gives both libraries N threads.

Without a cache every new token reruns the whole sequence: its cost grows with the length,
and the whole parameter tree is checked at every step.  With the cache the prompt is run
once (prefill) and each new token costs one position: the attention of one query over the
cached keys, and the projections of one row.  The three runs decode the same prompts (of
unequal lengths when ``--batch`` > 1, left-padded) greedily; the script reports whether they
produced the same tokens (float32 rounding can flip a near-tie between ours and PyTorch's)
and then times each in turn, ``--repeats`` times, reporting medians.

Hugging Face's model is ``LlamaForCausalLM`` (or ``GPT2LMHeadModel``) built from the same
configuration and loaded with our weights (:mod:`llmref.transformer.convert_llama` or
:mod:`llmref.transformer.convert`), run with its default attention and its own KV cache.  This is a
speed benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from llmref.examples import common
from llmref.transformer import convert, convert_llama, generate, gpt
from llmref.transformer.gpt import GPTConfig


def configuration(args) -> GPTConfig:
    if args.model == "llama":
        return GPTConfig(vocab_size=args.vocab, context_len=args.context, d_model=args.d_model,
                         n_heads=args.heads, n_layers=args.layers, d_ff=args.d_ff or
                         int(8 * args.d_model / 3) // 8 * 8, activation="swiglu",
                         tie_weights=False, norm="rms", position="rope",
                         n_kv_heads=args.kv_heads, bias=False, fused_qkv=False)
    return GPTConfig(vocab_size=args.vocab, context_len=args.context, d_model=args.d_model,
                     n_heads=args.heads, n_layers=args.layers, d_ff=args.d_ff)


def hugging_face_model(config: GPTConfig, params: dict):
    import torch
    import transformers

    if config.position == "rope":
        hf_config = transformers.LlamaConfig(**convert_llama.config_to_hf_llama(config),
                                             pad_token_id=0, bos_token_id=None,
                                             eos_token_id=None)
        model = transformers.LlamaForCausalLM(hf_config)
        state = {k: torch.from_numpy(v)
                 for k, v in convert_llama.to_hf_llama(params, config).items()}
    else:
        hf_config = transformers.GPT2Config(**convert.config_to_hf_gpt2(config),
                                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                            pad_token_id=0, bos_token_id=None,
                                            eos_token_id=None)
        model = transformers.GPT2LMHeadModel(hf_config)
        state = {k: torch.from_numpy(v) for k, v in convert.to_hf_gpt2(params, config).items()}
    model.load_state_dict(state)
    return model.to(torch.float32).eval()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["llama", "gpt2"], default="llama")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2, help="Llama only")
    parser.add_argument("--d-ff", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt", type=int, default=32, help="longest prompt length")
    parser.add_argument("--new", type=int, default=128, help="new tokens per prompt")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-hf", action="store_true", help="skip Hugging Face")
    parser.add_argument("--threads", type=int, default=None,
                        help="run both libraries on this many threads (default: each "
                             "library's own choice): threadpoolctl sets NumPy's BLAS, "
                             "torch.set_num_threads PyTorch's)")
    common.add_artefacts_option(parser)
    args = parser.parse_args(argv)
    with common.blas_threads(args.threads):
        return _measure(args, argv)


def _measure(args, argv) -> dict:
    record = common.Run("benchmark_decode", args, argv)

    config = configuration(args)
    rng = np.random.default_rng(0)
    params = gpt.init(config, rng, dtype=np.float32)
    lengths = [max(1, args.prompt - 5 * i) for i in range(args.batch)]
    prompts = [rng.integers(1, args.vocab, size=n) for n in lengths]
    T0 = max(lengths)
    padded = np.zeros((args.batch, T0), dtype=np.int64)
    mask = np.zeros((args.batch, T0), dtype=bool)
    for i, p in enumerate(prompts):
        padded[i, T0 - len(p):], mask[i, T0 - len(p):] = p, True

    def ours(use_cache):
        return lambda: generate.generate(params, config, padded, args.new, greedy=True,
                                         attention_mask=mask, use_cache=use_cache)

    runs = {"numpy, KV cache": ours(True), "numpy, no cache": ours(False)}
    if not args.no_hf:
        import torch

        if args.threads is not None:
            torch.set_num_threads(args.threads)
        model = hugging_face_model(config, params)
        ids_t, mask_t = torch.from_numpy(padded), torch.from_numpy(mask).long()

        def hugging_face():
            with torch.no_grad():
                return model.generate(input_ids=ids_t, attention_mask=mask_t,
                                      max_new_tokens=args.new, min_new_tokens=args.new,
                                      do_sample=False, pad_token_id=0).numpy()

        runs["Hugging Face generate"] = hugging_face
    outputs = {name: run() for name, run in runs.items()}         # also the warm-up
    reference = outputs["numpy, KV cache"]
    same = {name: float(np.mean(out[:, T0:] == reference[:, T0:]))
            for name, out in outputs.items()}
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    tokens = args.batch * args.new
    rate = {name: tokens / statistics.median(t) for name, t in times.items()}

    print(f"threads: NumPy BLAS {common.blas_thread_count()}, "
          f"torch {'-' if args.no_hf else __import__('torch').get_num_threads()}, "
          f"cpus {os.cpu_count()}")
    print(f"model: {args.model}, d_model {config.d_model}, layers {config.n_layers}, heads "
          f"{config.n_heads} (key/value heads {config.kv_heads}), d_ff {config.hidden}, vocab "
          f"{config.vocab_size}; float32; {args.batch} prompt(s) of {lengths} tokens, "
          f"{args.new} new tokens each, greedy")
    for name in runs:
        print(f"  {name:<24} {rate[name]:8.1f} tokens/s   (median of {args.repeats}; tokens "
              f"equal to the cached run's: {100 * same[name]:.0f}%)")
    cached = rate["numpy, KV cache"]
    print(f"ratio cached / uncached (ours): {cached / rate['numpy, no cache']:.2f}")
    if "Hugging Face generate" in rate:
        print(f"ratio ours cached / Hugging Face generate: "
              f"{cached / rate['Hugging Face generate']:.2f}  (> 1: ours is faster)")
    record.finish(results={**{f"{name}, tokens/s": round(r, 1) for name, r in rate.items()},
                           "ratio cached / uncached": round(cached / rate["numpy, no cache"], 2),
                           **({"ratio ours cached / Hugging Face": round(
                               cached / rate["Hugging Face generate"], 2)}
                              if "Hugging Face generate" in rate else {})})
    return {"tokens_per_s": rate, "same_tokens": same}


if __name__ == "__main__":
    main()
