#!/usr/bin/env python3
"""Writes a llama.cpp reference the converted generators are tested against: greedy token ids
for chat prompts (English and Chinese) and token ids for edge-case strings, from llama.cpp
itself.

llama.cpp only agrees token for token when it computes in fp32, so the GGUF is first
dequantised into an fp32 GGUF (the same weights our ONNX holds), and llama.cpp runs with an
fp32 KV cache: `greedy`. With --quantised it also runs the GGUF as it is (llama.cpp's own
quantised kernels, Q8 activations): `greedy_quantised`, what a graph with int8 activations
is compared with. Needs llama-cpp-python (pip builds llama.cpp from source: a few minutes on
2 cores), so CI does not run this; it reads the committed fixture.

    python -m venv /tmp/llama && /tmp/llama/bin/pip install llama-cpp-python==0.3.16 gguf==0.19.0 numpy
    /tmp/llama/bin/python infra/scripts/llama_cpp_reference.py \\
        --gguf models/.downloads/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out shared/inference/tests/fixtures/llama_cpp_reference.json
    /tmp/llama/bin/python infra/scripts/llama_cpp_reference.py --quantised \\
        --gguf "$(.venv/bin/python infra/scripts/fetch_generator.py --gguf qwen2.5-coder-1.5b-instruct)" \\
        --out shared/inference/tests/fixtures/llama_cpp_reference_qwen2.5-coder-1.5b.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write one sentence describing a linen summer dress."}],
    [{"role": "system", "content": "You answer in five words or fewer."},
     {"role": "user", "content": "How long do returns take?"}],
]
# Only for --quantised runs (the larger models that write Chinese): the SmolLM2 fixture keeps
# its three chats.
CHATS_ZH = [
    [{"role": "user", "content": "用一句话介绍一件白色纯棉T恤。"}],
    [{"role": "user", "content": "退货需要多少天？请简短回答。"}],
]
EDGE_CASES = [
    "12345 and 3.14159",
    "héllo wörld, naïve café",
    "你好，世界！退货需要三十天。",
    "emoji 😀👍🏽 done",
    "   three leading spaces",
    "tabs\tand\nnew lines\n\n",
    "don't I'm we'll they've",
    "<|im_start|> is special only in chat prompts",
]
MAX_NEW = 48


def to_f32(src: Path, dst: Path) -> None:
    r = GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(str(dst), arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = f.types[0]
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    w.add_file_type(0)  # all F32
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape(list(reversed(t.shape.tolist()))))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    from jinja2 import Environment
    from llama_cpp import Llama

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quantised", action="store_true",
                    help="also run the GGUF as it is; add the Chinese chats")
    args = ap.parse_args()
    template = GGUFReader(str(args.gguf)).fields["tokenizer.chat_template"].contents()
    with tempfile.TemporaryDirectory() as tmp:
        f32 = Path(tmp) / "model-f32.gguf"
        to_f32(args.gguf, f32)
        llm = Llama(model_path=str(f32), n_ctx=1024, n_threads=2, type_k=0, type_v=0,
                    verbose=False, seed=0)
        eos = llm.token_eos()

        def greedy(model, ids):
            out = []
            for tok in model.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
                if tok == eos or len(out) >= MAX_NEW:
                    break
                out.append(tok)
            return out

        chats = []
        for messages in CHATS + (CHATS_ZH if args.quantised else []):
            prompt = Environment().from_string(template).render(messages=messages, add_generation_prompt=True)
            ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
            out = greedy(llm, ids)
            chats.append({"messages": messages, "prompt": prompt, "prompt_tokens": ids,
                          "greedy": out, "ended_with_eos": len(out) < MAX_NEW})
        edge = [{"text": s, "ids": llm.tokenize(s.encode(), add_bos=False, special=False)}
                for s in EDGE_CASES]
        del llm
    if args.quantised:
        q = Llama(model_path=str(args.gguf), n_ctx=1024, n_threads=2, type_k=0, type_v=0,
                  verbose=False, seed=0)
        for chat in chats:
            chat["greedy_quantised"] = greedy(q, chat["prompt_tokens"])
    ref = {
        "source": {"gguf": args.gguf.name,
                   "runtime": "llama-cpp-python 0.3.16, fp32 weights, fp32 KV cache"
                              + ("; greedy_quantised: the GGUF as it is" if args.quantised else ""),
                   "decoding": f"greedy, at most {MAX_NEW} new tokens, stop at EOS"},
        "chats": chats,
        "tokenize": edge,
    }
    args.out.write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
