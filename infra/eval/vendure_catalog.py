#!/usr/bin/env python3
"""Builds a catalog JSONL for the copy evaluation from the 54 demo products (with
human-written descriptions) in the npm package @vendure/create@3.7.3 (assets/products.csv).

The package is fetched at run time with `npm pack` (pinned version and sha256) into
.cache/eval/vendure/ and never committed. Each product becomes one catalog line:

- attributes: its facets (category, brand, ...), its option groups with every value its
  variants offer (e.g. "screen size": ["13 inch", "15 inch"]), and its SKU prefix;
- price: the lowest variant price, currency USD (the demo store's);
- selling_points: the first four sentences of the human description (what a shop's
  bullet points usually are). The human description is also kept in `description`, which
  the copy pipeline ignores, for side-by-side reading.

Usage: python3 infra/eval/vendure_catalog.py [OUT_DIR]   (default .cache/eval/vendure)
"""
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "@vendure/create@3.7.3"
TARBALL = "vendure-create-3.7.3.tgz"
SHA256 = "89f0a9ce225c44b7f9fc07a85bca655f98c48bbb7f3aa06ae0e9c04ce5db0af7"


def fetch(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tgz = out / TARBALL
    if not tgz.exists():
        subprocess.run(["npm", "pack", PACKAGE, "--silent", "--pack-destination", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != SHA256:
        tgz.unlink()
        sys.exit(f"{TARBALL}: sha256 {digest} is not the pinned {SHA256}")
    return tgz


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p.strip() for p in parts if len(p.strip()) > 3]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".cache/eval/vendure")
    tgz = fetch(out)
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("package/assets/products.csv")
        if member is None:
            sys.exit("package/assets/products.csv is missing from the package")
        rows = list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")))
    rows = [{k.strip(): (v or "").strip() for k, v in r.items()} for r in rows]
    products = []
    for row in rows:
        if row["name"]:
            products.append({"head": row, "variants": [row]})
        elif products:
            products[-1]["variants"].append(row)
    lines = []
    for p in products:
        head = p["head"]
        attributes: dict = {}
        for facet in filter(None, head["facets"].split("|")):
            key, _, value = facet.partition(":")
            attributes.setdefault(key.strip(), [])
            if value.strip() not in attributes[key.strip()]:
                attributes[key.strip()].append(value.strip())
        groups = [g.strip() for g in head["optionGroups"].split("|") if g.strip()]
        for i, group in enumerate(groups):
            values = []
            for v in p["variants"]:
                opts = [o.strip() for o in v["optionValues"].split("|")]
                if i < len(opts) and opts[i] and opts[i] not in values:
                    values.append(opts[i])
            attributes[group] = values
        attributes = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v)
                      for k, v in attributes.items() if v}
        brand = attributes.pop("brand", None)
        category = attributes.pop("category", None)
        if isinstance(brand, list):
            brand = brand[0]
        category = " > ".join(category) if isinstance(category, list) else (category or "")
        prices = [float(v["price"]) for v in p["variants"] if v["price"]]
        lines.append({
            "item_id": head["slug"],
            "title": head["name"],
            "description": head["description"],
            "category": category,
            **({"brand": brand} if brand else {}),
            **({"price": min(prices), "currency": "USD"} if prices else {}),
            "attributes": attributes,
            "selling_points": sentences(head["description"])[:4],
        })
    target = out / "catalog.jsonl"
    target.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    print(f"{len(lines)} products -> {target}")


if __name__ == "__main__":
    main()
