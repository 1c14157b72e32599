#!/usr/bin/env python3
"""Lists the sentences of every generated candidate in a `shopmind copy batch --report` file,
once each, grouped by product with its data, for labelling by reading.

Usage: python3 infra/eval/copy/sentences.py CATALOG.jsonl REPORT.jsonl > sentences.jsonl
Each output line: {"product_id", "channel", "locale", "sentence"}; sentences are split as the
validator splits them (after 。！？；, a line break, or . ! ? before a space or the end).
"""
import json
import re
import sys

SPLIT = re.compile(r"(?<=[。！？；\n])|(?<=[.!?])(?=\s|$)")


def sentences(text):
    return [s.strip() for s in SPLIT.split(text) if s.strip()]


def main():
    catalog, report = sys.argv[1], sys.argv[2]
    products = {}
    for line in open(catalog, encoding="utf-8"):
        p = json.loads(line)
        products[p["item_id"]] = p
    seen = set()
    for line in open(report, encoding="utf-8"):
        d = json.loads(line)
        for c in d["stats"].get("candidates", []):
            for s in sentences(c["text"]):
                key = (d["product_id"], s)
                if key in seen or not re.search(r"\w", s):
                    continue
                seen.add(key)
                print(json.dumps({"product_id": d["product_id"], "channel": d["channel"],
                                  "locale": d["locale"], "sentence": s}, ensure_ascii=False))


if __name__ == "__main__":
    main()
