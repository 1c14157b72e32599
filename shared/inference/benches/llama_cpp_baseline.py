#!/usr/bin/env python3
"""llama.cpp baseline for the generator bench (optional: needs llama-cpp-python, which CI
does not build). Same prompt text, greedy, the same number of new tokens.

    llama_cpp_baseline.py GGUF PROMPT_FILE NEW_TOKENS THREADS

Prints one JSON line: {"prefill_s", "decode_s", "new_tokens", "prompt_tokens", "peak_rss_mb"}.
"""

import json
import resource
import sys
import time

from llama_cpp import Llama


def main() -> None:
    gguf, prompt_file, new_tokens, threads = sys.argv[1:5]
    new_tokens, threads = int(new_tokens), int(threads)
    llm = Llama(model_path=gguf, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    ids = llm.tokenize(open(prompt_file).read().encode(), add_bos=False, special=True)
    llm.eval(ids)  # warm-up
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        token = int(llm.scores[llm.n_tokens - 1].argmax())
        llm.eval([token])
    decode = time.perf_counter() - t0
    print(json.dumps({"prefill_s": prefill, "decode_s": decode, "new_tokens": new_tokens,
                      "prompt_tokens": len(ids),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
