#!/usr/bin/env python3
"""Build the support-message upset sets (infra/eval/upset/{train,test}.jsonl) from BANKING77.

BANKING77's questions are real, calm customer-service messages (PolyAI, CC BY 4.0). No
registry package ships labelled *upset* support messages (searched: review, tweet, complaint
and emotion corpora; the reviews we have are about products, not service), so the upset side
is written by the project's generator (Qwen2.5-Coder-1.5B-Instruct): each sampled question
rewritten by an upset shopper in one of several moods (English), or in Chinese; Chinese calm
counterparts are the generator's plain translations, so the language alone says nothing.

Train rows come from BANKING77's train split, test rows from its test split (different
people's questions; the generated rows of each side are rewrites of that side's questions
only). The generated texts are committed; CI never runs this.

    python3 infra/eval/upset/make_messages.py prompts --banking77 ../shared/data/banking77 \\
        --out /tmp/upset-prompts.jsonl
    ./target/release/shopmind generate --chat --batch /tmp/upset-prompts.jsonl --rows 8 \\
        --temperature 0.8 --seed 17 --max-tokens 70 > /tmp/upset-out.jsonl
    python3 infra/eval/upset/make_messages.py collect --banking77 ../shared/data/banking77 \\
        --generated /tmp/upset-out.jsonl --out /tmp/upset-zh-prompts.jsonl
    ./target/release/shopmind generate --chat --batch /tmp/upset-zh-prompts.jsonl --rows 8 \\
        --max-tokens 90 > /tmp/upset-zh.jsonl
    python3 infra/eval/upset/make_messages.py collect --banking77 ../shared/data/banking77 \\
        --generated /tmp/upset-out.jsonl --translated /tmp/upset-zh.jsonl

The generator's Chinese rewrites "in a mood" came back calm (of 50 test rows read, two or
three were upset), so Chinese upset rows are its plain translations of the English upset
rewrites instead, as the calm Chinese rows are translations of calm questions. English
rewrites that did not come out upset are dropped: on the test side by reading each one
(NOT_UPSET_TEST, 39 of 96: questions in capitals, apologies, answers instead of a message,
plain questions), on the train side by requiring an explicit cue (UPSET_CUE), which a reader
would also call upset; rows it lets through are kept as they are.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261204
# (split, calm English originals kept, English upset rewrites, Chinese upset, Chinese calm)
COUNTS = {"train": (600, 300, 150, 150), "test": (0, 100, 50, 50)}

# Moods a real upset shopper writes in; each rewrite gets one, in turn.
MOODS = [
    "angry",
    "frustrated because this is the third time they have had to ask",
    "furious and threatening to close their account or leave a bad review",
    "sarcastic and annoyed",
    "upset and demanding to speak to a manager",
    "exasperated, with a few words in capital letters",
    "disappointed and fed up with the service",
    "outraged, calling the service a joke",
]
MOODS_ZH = ["非常生气", "很不耐烦，已经是第三次问了", "愤怒，威胁要投诉或差评", "失望透顶，对服务非常不满",
            "讽刺又恼火", "气坏了，要求找经理"]

SYSTEM = "You rewrite customer messages for a support team's training set. Reply with the rewritten message only."


def read(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [row["text"].strip() for row in csv.DictReader(f) if row["text"].strip()]


def samples(banking77: Path) -> dict[str, list[str]]:
    out = {}
    for split in ("train", "test"):
        rows = sorted(set(read(banking77 / f"{split}.csv")))
        random.Random(f"{SEED}-{split}").shuffle(rows)
        out[split] = rows
    return out


def plan(banking77: Path) -> list[dict]:
    """Every output row: its original, what to ask the generator (or None), its label."""
    rows = []
    for split, (calm, en, zh_up, zh_calm) in COUNTS.items():
        texts = samples(banking77)[split]
        i = 0
        for kind, n in (("calm_en", calm), ("upset_en", en), ("upset_zh", zh_up), ("calm_zh", zh_calm)):
            for k in range(n):
                q = texts[i]
                i += 1
                row = {"id": f"{split}-{kind}-{k}", "split": split, "kind": kind, "original": q}
                if kind == "upset_en":
                    mood = MOODS[k % len(MOODS)]
                    row["mood"] = mood
                    row["prompt"] = (f"Rewrite this bank customer's message so the customer is clearly "
                                     f"{mood}. Keep the same request. One or two sentences.\n\nMessage: {q}")
                elif kind == "upset_zh":
                    mood = MOODS_ZH[k % len(MOODS_ZH)]
                    row["mood"] = mood
                    row["prompt"] = (f"把这条银行客户的消息改写成中文，让客户显得{mood}。保持同样的请求，一两句话。"
                                     f"只写改写后的中文消息。\n\n消息：{q}")
                elif kind == "calm_zh":
                    row["prompt"] = f"把这条银行客户的消息翻译成中文。只写译文。\n\n消息：{q}"
                rows.append(row)
    return rows


HAN = re.compile(r"[\u4e00-\u9fff]")

# Test rewrites read and judged not upset (the `k` of `test-upset_en-k`).
NOT_UPSET_TEST = {4, 5, 9, 12, 13, 19, 21, 22, 23, 27, 29, 32, 33, 35, 37, 40, 43, 45, 48, 51,
                  53, 55, 61, 63, 64, 67, 69, 72, 75, 77, 78, 83, 85, 87, 88, 89, 91, 93, 99}
# Train rewrites are kept when they say so plainly.
UPSET_CUE = re.compile(
    r"frustrat|angry|anger|furious|upset|disappoint|a joke|ridiculous|unacceptable|fed up|"
    r"outrag|terrible|worst|bad review|negative review|poor review|close (my|this) account|"
    r"manager|third time|sick of|tired of|fed-up|livid|annoy|disgust|useless|incompetent|nuts",
    re.I)
TRANSLATE = "把这条客户消息翻译成中文，保留原来的语气。只写译文。\n\n消息：{}"


def message_line(text: str, zh: bool) -> str | None:
    """The generated message: quotes and a "Message:" label off, its first line; None when
    empty, over 400 characters or in the wrong script."""
    t = text.strip().strip('"“”').strip()
    t = re.sub(r"^(rewritten message|message|subject|消息|改写后的消息|译文)\s*[:：]\s*", "", t,
               flags=re.I).strip()
    t = t.split("\n")[0].strip().strip('"“”').strip()
    if not t or len(t) > 400:
        return None
    if zh and len(HAN.findall(t)) < max(4, len(t) // 3):
        return None
    if not zh and HAN.search(t):
        return None
    return t


def clean(text: str, kind: str, original: str) -> str | None:
    t = message_line(text, kind.endswith("_zh"))
    return None if t == original else t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prompts", "collect"])
    ap.add_argument("--banking77", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--generated", type=Path)
    ap.add_argument("--translated", type=Path)
    args = ap.parse_args()
    rows = plan(args.banking77)
    if args.step == "prompts":
        with open(args.out, "w") as f:
            for r in rows:
                if "prompt" in r:
                    f.write(json.dumps({"id": r["id"], "prompt": r["prompt"], "system": SYSTEM},
                                       ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
        return
    generated = {}
    for line in open(args.generated):
        g = json.loads(line)
        generated[g["id"]] = g
    translated = {}
    if args.translated:
        for line in open(args.translated):
            g = json.loads(line)
            translated[g["id"]] = g
    kept, dropped = {"train": [], "test": []}, 0
    for r in rows:
        if r["kind"] == "upset_zh":
            continue
        if "prompt" not in r:
            text = r["original"]
        else:
            g = generated.get(r["id"])
            text = clean(g["text"], r["kind"], r["original"]) if g and g["finish"] in ("eos", "stop") else None
            if text is not None and r["kind"] == "upset_en":
                k = int(r["id"].rsplit("-", 1)[1])
                upset = (k not in NOT_UPSET_TEST) if r["split"] == "test" else bool(UPSET_CUE.search(text))
                text = text if upset else None
            if text is None:
                dropped += 1
                continue
        out = {"id": r["id"], "text": text, "label": r["kind"].split("_")[0],
               "lang": r["kind"].split("_")[1], "original": r["original"]}
        if "mood" in r:
            out["mood"] = r["mood"]
        kept[r["split"]].append(out)
    if not args.translated:
        with open(args.out, "w") as f:
            for items in kept.values():
                for o in items:
                    if o["label"] == "upset":
                        f.write(json.dumps({"id": o["id"] + "-zh", "prompt": TRANSLATE.format(o["text"]),
                                            "system": SYSTEM}, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}: translate these, then collect again with --translated")
        return
    for items in kept.values():
        for o in [o for o in items if o["label"] == "upset"]:
            g = translated.get(o["id"] + "-zh")
            text = clean(g["text"], "upset_zh", o["text"]) if g and g["finish"] in ("eos", "stop") else None
            # The generator often leaves "frustrated" in English (about a third of the rows):
            # put the Chinese word in, so the language of one word says nothing.
            text = text and re.sub(r"\s*frustrated\s*", "沮丧", text, flags=re.I)
            if text is None:
                dropped += 1
                continue
            items.append({"id": o["id"] + "-zh", "text": text, "label": "upset", "lang": "zh",
                          "original": o["original"], "mood": o["mood"]})
    for split, items in kept.items():
        path = HERE / f"{split}.jsonl"
        with open(path, "w") as f:
            for o in items:
                f.write(json.dumps(o, ensure_ascii=False) + "\n")
        print(f"wrote {path}: {len(items)} rows")
    print(f"dropped {dropped} generated rows that were not an upset message or a translation")


if __name__ == "__main__":
    main()
