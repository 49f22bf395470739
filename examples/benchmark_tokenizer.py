"""Encode throughput of our GPT-2 tokenizer against the ``tokenizers`` library on the same
``vocab.json`` and ``merges.txt``, and of ours with and without its word cache.

    python -m llmref.examples.benchmark_tokenizer           # the package's own source
    python -m llmref.examples.benchmark_tokenizer --vocab-size 20000 --repeats 7
    python -m llmref.examples.benchmark_tokenizer --text my_corpus.txt

The text is, by default, every Python and Markdown file of the package itself (code and its
English docstrings, about 0.45 MB).  Our trainer learns ``--vocab-size`` tokens from it; the
files it writes are loaded by our ``load`` and by ``tokenizers`` (byte-level BPE, GPT-2's
pre-tokenisation), and the script checks that both give the same ids before timing.

Timed, each on the whole text, in turns so that drift in machine speed hits every side:

- ours, starting each run with an empty word cache (the cache helps only with the pieces
  that repeat within the text), and with the cache already filled by an earlier pass;
- ours without the cache (every piece merged afresh);
- ``tokenizers``' ``encode`` on the whole text in one call (one thread, as ours);
- ``tokenizers``' ``encode_batch`` on the text's lines (its thread pool, all cores).

Medians of ``--repeats`` runs, in MB of UTF-8 per second and tokens per second.  Needs the
``parity`` extra (``tokenizers``); without it only our three figures are printed.  This is a
speed benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from llmref.examples import common
from llmref.text import gpt2_tokenizer


def package_text() -> str:
    """The Python and Markdown files of the installed package, in a fixed order (from a
    checkout: reference/, spec_tests/, examples/ and cli/)."""
    folders = {Path(importlib.import_module(name).__file__).resolve().parent
               for name in ("llmref", "llmref.spec", "llmref.examples", "llmref.cli")}
    paths = sorted({p for folder in folders for pattern in ("*.py", "*.md")
                    for p in folder.rglob(pattern)})
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def hf_tokenizer(vocab_path, merges_path):
    """``tokenizers`` set up as GPT-2's tokenizer, or None if it is not installed."""
    try:
        from llmref.spec.harness.oracles import tokenizers_gpt2
        return tokenizers_gpt2(vocab_path, merges_path)
    except ImportError:
        return None


def main(argv=None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", type=Path, default=None,
                        help="a UTF-8 file to learn from and encode (default: the package's "
                             "own source files)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side")
    common.add_artefacts_option(parser)
    args = parser.parse_args(argv)
    record = common.Run("benchmark_tokenizer", args, argv)

    text = args.text.read_text(encoding="utf-8") if args.text else package_text()
    megabytes = len(text.encode("utf-8")) / 1e6
    start = time.perf_counter()
    ours = gpt2_tokenizer.train(text, args.vocab_size)
    print(f"text: {megabytes:.2f} MB, {len(text.splitlines())} lines; trained {ours} in "
          f"{time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory() as folder:
        vocab_path, merges_path = Path(folder, "vocab.json"), Path(folder, "merges.txt")
        gpt2_tokenizer.save(ours, vocab_path, merges_path)
        ours = gpt2_tokenizer.load(vocab_path, merges_path)
        hf = hf_tokenizer(vocab_path, merges_path)

    ids = gpt2_tokenizer.encode(text, ours).tolist()
    lines = text.splitlines(keepends=True)
    if hf is not None:
        if hf.encode(text).ids != ids or \
                [i for e in hf.encode_batch(lines) for i in e.ids] != \
                [i for line in lines for i in gpt2_tokenizer.encode(line, ours).tolist()]:
            raise SystemExit("the two tokenizers disagree on this text")
        print(f"same ids from both tokenizers: {len(ids)} tokens")
    else:
        print("tokenizers is not installed (pip install -e '.[parity]'): ours only")

    def fresh_cache():
        ours.cache.clear()
        gpt2_tokenizer.encode(text, ours)

    runners = {
        "ours, empty cache at start": (ours.cache.clear, lambda: gpt2_tokenizer.encode(text, ours)),
        "ours, cache filled before": (fresh_cache, lambda: gpt2_tokenizer.encode(text, ours)),
        "ours, no cache": (None, lambda: gpt2_tokenizer.encode(text, ours, use_cache=False)),
    }
    if hf is not None:
        runners["tokenizers encode, one call"] = (None, lambda: hf.encode(text))
        runners["tokenizers encode_batch, lines"] = (None, lambda: hf.encode_batch(lines))
    times = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, (prepare, run) in runners.items():
            if prepare is not None:
                prepare()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"cpus: {os.cpu_count()}; medians of {args.repeats} runs over the whole text:")
    for name, seconds in median.items():
        print(f"  {name:<32} {megabytes / seconds:7.2f} MB/s  {len(ids) / seconds / 1e3:8.1f} "
              f"K tokens/s")
    cold = median["ours, empty cache at start"]
    print(f"word cache: {median['ours, no cache'] / cold:.1f}x faster than no cache "
          f"({median['ours, no cache'] / median['ours, cache filled before']:.1f}x when "
          f"filled before)")
    found = {f"{name}, MB/s": round(megabytes / seconds, 2) for name, seconds in median.items()}
    if hf is None:
        record.finish(results=found)
        return None
    ratio = cold / median["tokenizers encode, one call"]
    print(f"ratio ours (empty cache at start) / tokenizers encode, one call = {ratio:.2f}  "
          f"(time; > 1 means ours is slower)")
    print(f"ratio ours (empty cache at start) / tokenizers encode_batch, lines = "
          f"{cold / median['tokenizers encode_batch, lines']:.2f}")
    record.finish(results={**found, "time ratio ours / tokenizers encode": round(ratio, 2)})
    return ratio


if __name__ == "__main__":
    main()
