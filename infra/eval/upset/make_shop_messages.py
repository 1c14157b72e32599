#!/usr/bin/env python3
"""Build the shop-message upset sets (infra/eval/upset/{train,test}_shop.jsonl).

The BANKING77 sets (make_messages.py) teach the head what an upset *banking* message looks
like against calm banking questions. A shop's calm messages are different: they report a
problem with a product ("the jug arrived cracked", "the jeans are a size too small"), and a
head that also learnt from product reviews reads that as negative. On a development help
centre written for this (infra/eval/helpcentre/dev3) the shipped head handed 8 of 30 calm
questions to a person as upset.

So this set pairs each of 80 everyday shop situations (written for this file: several product
kinds, delivery, payment, account; none taken from an evaluation help centre) with a calm
message and an upset one about the *same* situation, both written by the project's generator
(Qwen2.5-Coder-1.5B-Instruct, sampled), then translated into Chinese by it. With both tones
for one situation the head has to learn the tone, not the topic. Situations whose index is a
multiple of 5 (16) are the test side, the other 64 train; no situation is on both sides.

Calm rows are kept when they carry no upset cue (the same UPSET_CUE as the BANKING77 set) and
no exclamation mark; upset rows when they carry a cue; neither when it is a refusal or the
agent's side (NOT_A_SHOPPER). Chinese rows are translations of kept
English rows. The generated texts are committed; CI never runs this.

    python3 infra/eval/upset/make_shop_messages.py prompts --out /tmp/shop-prompts.jsonl
    ./target/release/shopmind generate --chat --batch /tmp/shop-prompts.jsonl --rows 8 \\
        --temperature 0.8 --seed 23 --max-tokens 70 > /tmp/shop-out.jsonl
    python3 infra/eval/upset/make_shop_messages.py collect --generated /tmp/shop-out.jsonl \\
        --out /tmp/shop-zh-prompts.jsonl
    ./target/release/shopmind generate --chat --batch /tmp/shop-zh-prompts.jsonl --rows 8 \\
        --max-tokens 90 > /tmp/shop-zh.jsonl
    python3 infra/eval/upset/make_shop_messages.py collect --generated /tmp/shop-out.jsonl \\
        --translated /tmp/shop-zh.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from make_messages import MOODS, SYSTEM, TRANSLATE, UPSET_CUE, message_line

HERE = Path(__file__).resolve().parent

SITUATIONS = [
    "A blender arrived with a cracked jug.",
    "The jeans they ordered are a size too small.",
    "The parcel's tracking has not updated for five days.",
    "They were charged twice for one order.",
    "A discount code is not accepted at checkout.",
    "The wrong colour of phone case was delivered.",
    "A book arrived with water-damaged pages.",
    "The price of a coat dropped two days after they bought it.",
    "A sofa cushion has a loose seam.",
    "A cordless vacuum cleaner stopped charging after three months.",
    "One item of a three-item order is missing from the box.",
    "They want to change the delivery address after ordering.",
    "They want to cancel an order placed this morning.",
    "The refund for a returned dress has not appeared yet.",
    "The courier left the parcel with a neighbour they do not know.",
    "The assembly instructions for a bookshelf are missing.",
    "They want to know if a mattress can be returned after sleeping on it.",
    "A gift card balance shows zero although it was never used.",
    "Their account is locked after too many password attempts.",
    "A pair of running shoes squeaks when walking.",
    "A delivered TV has a scratch on the screen.",
    "A face cream caused a mild rash.",
    "They received someone else's order.",
    "They need an invoice with their company name on it.",
    "A toy came without batteries although the listing said they were included.",
    "A kettle leaks from the bottom.",
    "A watch strap broke after a week.",
    "They want to exchange a shirt for a larger size.",
    "They want to know why the order was split into two parcels.",
    "The fridge delivery was missed because they were not home.",
    "A table lamp flickers.",
    "The curtains look a different colour from the photos.",
    "They paid for express shipping but the order came late.",
    "A coffee machine shows an error code.",
    "They want to return a gift without the receipt.",
    "The box looked opened and taped up again when it arrived.",
    "The laptop charger was missing from the box.",
    "Their loyalty points were not added after a purchase.",
    "They want to know whether they can refuse a damaged box at the door.",
    "A new rug smells strongly of chemicals.",
    "The zip on a backpack is stuck.",
    "They want to use two discount codes on one order.",
    "A frozen food delivery arrived thawed.",
    "Headphones only play sound in one ear.",
    "They were sent a used item instead of a new one.",
    "The order confirmation email never arrived.",
    "A dining chair wobbles because one leg is shorter.",
    "They want to know how to return an item bought in a sale.",
    "A printer does not connect to the wifi.",
    "The package is marked as delivered but it is not there.",
    "The size guide for a pair of boots was wrong.",
    "A bicycle arrived with a bent wheel.",
    "A subscription renewed although they had cancelled it.",
    "They want to know when a sold-out item comes back.",
    "A potted plant arrived with broken stems.",
    "They entered the wrong phone number for the delivery.",
    "A refund was paid to an old card that is now closed.",
    "The glass of a picture frame was shattered.",
    "A new dress has a stain on it straight out of the bag.",
    "They want to know if the warranty covers accidental damage.",
    "The return label will not print.",
    "A smartwatch will not pair with their phone.",
    "They ordered two of the same item by mistake.",
    "The paint on a bathroom cabinet is chipped.",
    "They want to know why their card payment was declined.",
    "A pram's front wheel is loose.",
    "A perfume bottle leaked in transit.",
    "They want the delivery on a specific day.",
    "A set of kitchen knives is missing one knife.",
    "They want to return a video game they have opened.",
    "A fan heater gives off a burning smell when first used.",
    "The free gift promised with their purchase did not come.",
    "A hoodie shrank after the first wash.",
    "The tracking link shows another person's address.",
    "They want to know whether an order can be collected from a store.",
    "A duvet is thinner than described.",
    "Their bank shows a pending charge for a cancelled order.",
    "A screen protector does not fit their phone model.",
    "They want to know if the shop delivers to an island.",
    "A suitcase handle broke on its first trip.",
]


def split_of(i: int) -> str:
    return "test" if i % 5 == 0 else "train"


def plan() -> list[dict]:
    rows = []
    for i, s in enumerate(SITUATIONS):
        split = split_of(i)
        rows.append({"id": f"shop-{split}-calm_en-{i}", "split": split, "kind": "calm_en", "original": s,
                     "prompt": ("Write the message a shopper sends to an online shop's customer service "
                                "about this situation. The shopper is calm and polite: they describe the "
                                "problem or ask their question plainly, without complaining about the shop "
                                "and without exclamation marks. One or two sentences, in the first person.\n\n"
                                f"Situation: {s}")})
        mood = MOODS[i % len(MOODS)]
        rows.append({"id": f"shop-{split}-upset_en-{i}", "split": split, "kind": "upset_en", "original": s,
                     "mood": mood,
                     "prompt": ("Write the message a shopper sends to an online shop's customer service "
                                f"about this situation. The shopper is clearly {mood}. One or two "
                                f"sentences, in the first person.\n\nSituation: {s}")})
    return rows


# Not a shopper's message: a refusal, or the agent's side of the conversation.
NOT_A_SHOPPER = re.compile(r"can't help|cannot help|unable to (assist|help|process)|as an ai|apologi[sz]e|"
                           r"I understand (that|your|how)|sorry for (the|any) inconvenience|dear customer|"
                           r"rewrit|the customer is|a message from a customer|sorry to hear", re.I)


def clean(text: str, zh: bool) -> str | None:
    t = message_line(text, zh)
    return None if t is None or NOT_A_SHOPPER.search(t) else t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prompts", "collect"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--generated", type=Path)
    ap.add_argument("--translated", type=Path)
    args = ap.parse_args()
    rows = plan()
    if args.step == "prompts":
        with open(args.out, "w") as f:
            for r in rows:
                f.write(json.dumps({"id": r["id"], "prompt": r["prompt"], "system": SYSTEM},
                                   ensure_ascii=False) + "\n")
        print(f"wrote {args.out}: {len(rows)} prompts")
        return
    generated = {json.loads(l)["id"]: json.loads(l) for l in open(args.generated)}
    kept, dropped = [], 0
    for r in rows:
        g = generated.get(r["id"])
        text = clean(g["text"], False) if g and g["finish"] in ("eos", "stop") else None
        if text is not None:
            cue = bool(UPSET_CUE.search(text))
            if r["kind"] == "calm_en" and (cue or "!" in text):
                text = None
            elif r["kind"] == "upset_en" and not cue:
                text = None
        if text is None:
            dropped += 1
            continue
        out = {"id": r["id"], "split": r["split"], "text": text, "label": r["kind"].split("_")[0],
               "lang": "en", "original": r["original"]}
        if "mood" in r:
            out["mood"] = r["mood"]
        kept.append(out)
    if not args.translated:
        with open(args.out, "w") as f:
            for o in kept:
                f.write(json.dumps({"id": o["id"] + "-zh", "prompt": TRANSLATE.format(o["text"]),
                                    "system": SYSTEM}, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}: translate these, then collect again with --translated")
        return
    translated = {json.loads(l)["id"]: json.loads(l) for l in open(args.translated)}
    for o in list(kept):
        g = translated.get(o["id"] + "-zh")
        text = clean(g["text"], True) if g and g["finish"] in ("eos", "stop") else None
        text = text and re.sub(r"\s*frustrated\s*", "沮丧", text, flags=re.I)
        if text is None:
            dropped += 1
            continue
        kept.append({**o, "id": o["id"] + "-zh", "text": text, "lang": "zh"})
    for split in ("train", "test"):
        path = HERE / f"{split}_shop.jsonl"
        items = [{k: v for k, v in o.items() if k != "split"} for o in kept if o["split"] == split]
        with open(path, "w") as f:
            for o in items:
                f.write(json.dumps(o, ensure_ascii=False) + "\n")
        counts = {}
        for o in items:
            counts[(o["label"], o["lang"])] = counts.get((o["label"], o["lang"]), 0) + 1
        print(f"wrote {path}: {len(items)} rows {dict(sorted(counts.items()))}")
    print(f"dropped {dropped} generated rows (tone not as asked, cut off, or not a translation)")


if __name__ == "__main__":
    main()
