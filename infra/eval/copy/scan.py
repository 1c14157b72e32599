#!/usr/bin/env python3
"""Reads a `shopmind copy batch --report` file against its catalog, written apart from the
Rust validator so the figures do not check the validator against itself:

- drafts by source (model as written / repaired / composer fallback) and per channel;
- an independent scan of every stored draft and variant: words a model likes to add
  (superlatives, guarantees, eco and health claims, 广告法 absolute terms) that the product
  does not state, and numbers that appear nowhere in the product's JSON;
- with --sample N --seed S, N drafts drawn at random, printed verbatim with their product
  data, for reading.

Usage: python3 infra/eval/copy/scan.py CATALOG.jsonl REPORT.jsonl [--sample 30 --seed 18]
"""
import argparse
import collections
import json
import random
import re

WORDS = ["best", "#1", "number one", "guarantee", "100%", "world-class", "ultimate",
         "eco-friendly", "sustainable", "organic", "waterproof", "clinically", "award",
         "best-selling", "bestseller", "cure", "heals",
         "最", "第一", "唯一", "顶级", "极品", "国家级", "100%", "全网", "首选", "治疗", "保证"]


def numbers(text):
    return [n.rstrip(".") for n in re.findall(r"\d+(?:[.,]\d+)*", text)]


def scan(text, product):
    data = json.dumps(product, ensure_ascii=False).lower()
    lower = text.lower()
    found = [w for w in WORDS if w in lower and w not in data]
    digits = {d.replace(",", "") for d in re.findall(r"\d+(?:[.,]\d+)*", data)}
    # 79 is stated by 79.0 in the JSON; the price is written with two decimals.
    digits |= {d.split(".")[0] for d in digits}
    if product.get("price") is not None:
        digits.add(f"{product['price']:.2f}")
    found += [n for n in numbers(text) if n.replace(",", "") not in digits]
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("catalog")
    ap.add_argument("report")
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    products = {}
    for line in open(args.catalog, encoding="utf-8"):
        p = json.loads(line)
        products[p["item_id"]] = p
    drafts = [json.loads(l) for l in open(args.report, encoding="utf-8") if l.strip()]
    by_source = collections.Counter(d["source"] for d in drafts)
    per_channel = collections.defaultdict(collections.Counter)
    for d in drafts:
        per_channel[d["channel"]][d["source"]] += 1
    generated = sum(d["stats"]["generated"] for d in drafts)
    passed = sum(d["stats"]["passed"] for d in drafts)
    repaired = sum(d["stats"]["repaired"] for d in drafts)
    n = len(drafts)
    print(f"{n} drafts: " + ", ".join(
        f"{k} {v} ({100 * v / n:.1f}%)" for k, v in sorted(by_source.items())))
    for ch, c in sorted(per_channel.items()):
        print(f"  {ch}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if generated:
        print(f"candidates: {generated} generated; {passed} passed as written "
              f"({100 * passed / generated:.1f}%), {repaired} after repair "
              f"({100 * repaired / generated:.1f}%): {100 * (passed + repaired) / generated:.1f}% usable")
    violations = []
    for d in drafts:
        for text in [d["text"], *d.get("variants", [])]:
            for v in scan(text, products[d["product_id"]]):
                violations.append((d["product_id"], d["channel"], v, text))
    print(f"independent scan: {len(violations)} violations in stored drafts and variants")
    for v in violations:
        print("  ", v)
    if args.sample:
        rng = random.Random(args.seed)
        for i, d in enumerate(rng.sample(drafts, min(args.sample, n)), 1):
            p = products[d["product_id"]]
            print(f"\n[{i}] {d['product_id']} · {d['channel']} · {d['locale']} · {d['source']}")
            print("data:", json.dumps({k: p.get(k) for k in
                  ("title", "brand", "attributes", "selling_points", "price", "currency")},
                  ensure_ascii=False))
            print("text:", d["text"])


if __name__ == "__main__":
    main()
