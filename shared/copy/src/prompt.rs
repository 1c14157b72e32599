//! The chat the generator completes: per channel and locale, the plan's facts as a list, the
//! length budget in the unit the channel counts, the rules the validator enforces, and one
//! worked example of the register (a different, made-up product, so nothing of it can be
//! copied into the real copy without the grounding check noticing).

use shopmind_inference::ChatMessage;

use crate::plan::Plan;
use crate::product::{Channel, Locale};

/// Hashtags a channel may carry. Social posts take a couple; nothing else does.
pub fn hashtag_allowance(channel: Channel) -> usize {
    match channel {
        Channel::SocialPost => 2,
        _ => 0,
    }
}

/// What to write, with the budget in words (en) or characters (zh), well inside the hard
/// limit so a candidate rarely needs cutting.
fn brief(channel: Channel, locale: Locale, max_chars: usize) -> String {
    match locale {
        Locale::En => {
            let words = |lo: usize, hi: usize| {
                // About six characters a word, spaces included.
                let hi = hi.min(max_chars / 6).max(lo.min(max_chars / 6));
                let lo = lo.min(hi);
                format!("{lo} to {hi} words, at most {max_chars} characters")
            };
            match channel {
                Channel::PdpDescription => format!(
                    "a product page description: three to five sentences in one paragraph, {}",
                    words(60, 110)
                ),
                Channel::MarketingEmail => format!(
                    "the body of a marketing email (the shop adds the greeting and the \
                     sign-off): an opening sentence that names the product, two or three \
                     sentences about it, and a short call to action such as \"Shop it now.\"; \
                     {}",
                    words(45, 90)
                ),
                Channel::SocialPost => format!(
                    "a social media post: one or two lively sentences, {}, and at most two \
                     hashtags at the end",
                    words(15, 40)
                ),
                Channel::Push => {
                    format!("a push notification: one short sentence, {}", words(6, 16))
                }
                Channel::Sms => format!("a text message: one sentence, {}", words(8, 22)),
            }
        }
        Locale::ZhCn => {
            let chars = |lo: usize, hi: usize| {
                let hi = hi.min(max_chars);
                format!("{}到{hi}个字", lo.min(hi))
            };
            match channel {
                Channel::PdpDescription => {
                    format!("一段商品详情页描述：三到五句话，{}", chars(120, 260))
                }
                Channel::MarketingEmail => format!(
                    "一封营销邮件的正文（问候语和落款由商店添加）：第一句点出商品，再用两三句介绍，\
                     最后一句简短的行动号召（如“立即选购”），{}",
                    chars(80, 180)
                ),
                Channel::SocialPost => format!(
                    "一条社交媒体帖子：一到两句生动的话，{}，结尾最多两个话题标签（#话题#）",
                    chars(30, 90)
                ),
                Channel::Push => format!("一条推送通知：一句话，{}", chars(10, 30)),
                // UCS-2 SMS: 70 characters a segment.
                Channel::Sms => format!("一条短信：一句话，{}", chars(15, 60)),
            }
        }
    }
}

/// One made-up product and copy that uses its facts and nothing else, per channel.
struct Example {
    user: String,
    reply: &'static str,
}

fn example(channel: Channel, locale: Locale) -> Example {
    match locale {
        Locale::En => {
            let (facts, reply) = match channel {
                Channel::PdpDescription => (
                    "- Room for a 15-inch laptop\n- Inside zip pocket\n- material: cotton canvas\n- handles: leather",
                    "The Harbour canvas tote by Keel is cut from cotton canvas and finished with \
                     leather handles. Inside there is room for a 15-inch laptop, and a zip \
                     pocket keeps keys and cards in one place. A tote that carries the working \
                     day as easily as the weekend.",
                ),
                Channel::MarketingEmail => (
                    "- Room for a 15-inch laptop\n- price: 49.00 EUR\n- material: cotton canvas",
                    "Meet the Harbour canvas tote by Keel. Its cotton canvas body has room for a \
                     15-inch laptop and everything that goes with it. It is yours for 49.00 EUR. \
                     Shop it now.",
                ),
                Channel::SocialPost => (
                    "- Room for a 15-inch laptop\n- material: cotton canvas",
                    "Laptop, lunch and the rest of the day: the Harbour canvas tote by Keel \
                     takes a 15-inch laptop in cotton canvas. #Keel #ToteBag",
                ),
                Channel::Push => (
                    "- Room for a 15-inch laptop\n- price: 49.00 EUR",
                    "The Harbour canvas tote by Keel fits your 15-inch laptop, now 49.00 EUR.",
                ),
                Channel::Sms => (
                    "- Room for a 15-inch laptop\n- price: 49.00 EUR",
                    "Keel: the Harbour canvas tote takes a 15-inch laptop and costs 49.00 EUR.",
                ),
            };
            Example {
                user: format!(
                    "Product: Harbour canvas tote\nBrand: Keel\nCategory: Bags\nFacts:\n{facts}"
                ),
                reply,
            }
        }
        Locale::ZhCn => {
            let (facts, reply) = match channel {
                Channel::PdpDescription => (
                    "- 可放入15英寸笔记本电脑\n- 内置拉链口袋\n- 材质：棉帆布\n- 提手：皮革",
                    "Keel 港湾帆布托特包采用棉帆布制成，配以皮革提手。包内可放入15英寸笔记本电脑，\
                     内置拉链口袋让钥匙和卡片各有其位。通勤上班或周末出门，一只包就够了。",
                ),
                Channel::MarketingEmail => (
                    "- 可放入15英寸笔记本电脑\n- 价格：49.00 EUR\n- 材质：棉帆布",
                    "认识一下 Keel 港湾帆布托特包。棉帆布包身可放入15英寸笔记本电脑和日常随身物品。\
                     现价49.00 EUR。立即选购。",
                ),
                Channel::SocialPost => (
                    "- 可放入15英寸笔记本电脑\n- 材质：棉帆布",
                    "电脑、午餐和一天的随身物品，Keel 港湾帆布托特包都装得下：棉帆布包身，\
                     可放入15英寸笔记本电脑。#Keel# #托特包#",
                ),
                Channel::Push => (
                    "- 可放入15英寸笔记本电脑\n- 价格：49.00 EUR",
                    "Keel 港湾帆布托特包，可放15英寸电脑，现价49.00 EUR。",
                ),
                Channel::Sms => (
                    "- 可放入15英寸笔记本电脑\n- 价格：49.00 EUR",
                    "Keel 港湾帆布托特包可放入15英寸笔记本电脑，现价49.00 EUR。",
                ),
            };
            Example {
                user: format!("商品：港湾帆布托特包\n品牌：Keel\n类目：箱包\n事实：\n{facts}"),
                reply,
            }
        }
    }
}

/// The product as the prompt states it: title, brand, category, then the facts as a list.
fn product_message(plan: &Plan) -> String {
    let facts: String = plan
        .facts
        .iter()
        .map(|f| format!("- {}\n", f.statement()))
        .collect();
    let category = plan
        .category
        .rsplit('>')
        .next()
        .map(str::trim)
        .unwrap_or_default();
    match plan.locale {
        Locale::En => {
            let mut m = format!("Product: {}\n", plan.title);
            if let Some(b) = &plan.brand {
                m.push_str(&format!("Brand: {b}\n"));
            }
            if !category.is_empty() {
                m.push_str(&format!("Category: {category}\n"));
            }
            if let Some(a) = &plan.audience {
                m.push_str(&format!("Audience: {a}\n"));
            }
            m.push_str(&format!("Facts:\n{facts}"));
            m
        }
        Locale::ZhCn => {
            let mut m = format!("商品：{}\n", plan.title);
            if let Some(b) = &plan.brand {
                m.push_str(&format!("品牌：{b}\n"));
            }
            if !category.is_empty() {
                m.push_str(&format!("类目：{category}\n"));
            }
            if let Some(a) = &plan.audience {
                m.push_str(&format!("受众：{a}\n"));
            }
            m.push_str(&format!("事实：\n{facts}"));
            m
        }
    }
}

fn system(plan: &Plan) -> String {
    let brief = brief(plan.channel, plan.locale, plan.max_chars);
    let hashtags = hashtag_allowance(plan.channel);
    match plan.locale {
        Locale::En => {
            let brand = plan
                .brand
                .as_ref()
                .map(|b| format!(" and the brand exactly as \"{b}\""))
                .unwrap_or_default();
            format!(
                "You write product copy for an online shop. Write {brief}, in English, in a \
                 {tone} tone.\n\
                 Rules:\n\
                 - Every sentence must come from the facts, the product's name, brand or \
                 category. Do not add features, parts, materials, sizes, numbers, \
                 certifications, awards, origins, reviews, ratings or who it is for unless a \
                 fact says so.\n\
                 - Name the product as \"{title}\"{brand}.\n\
                 - No superlatives (best, #1, ultimate, world's leading), no guarantees, no \
                 health or environmental claims unless a fact states them.\n\
                 - No greeting, no letter, no sign-off, no placeholders, no links{tags}.\n\
                 - Reply with the copy only.",
                tone = plan.tone,
                title = plan.title,
                tags = if hashtags == 0 {
                    ", no hashtags".to_owned()
                } else {
                    format!(", at most {hashtags} hashtags")
                },
            )
        }
        Locale::ZhCn => {
            let brand = plan
                .brand
                .as_ref()
                .map(|b| format!("，品牌写作“{b}”"))
                .unwrap_or_default();
            format!(
                "你为网店撰写商品文案。请用简体中文写{brief}，语气{tone}。\n\
                 规则：\n\
                 - 每句话都必须来自给出的事实、商品名称、品牌或类目。事实中没有的功能、部件、材质、\
                 尺寸、数字、认证、奖项、产地、评价、销量或适用人群一律不写。\n\
                 - 商品名称写作“{title}”{brand}。\n\
                 - 遵守《广告法》：不用“最”“第一”“唯一”“顶级”“极致”“国家级”“100%”等绝对化用语，\
                 不承诺保证，不写事实中没有的功效、医疗或环保说法。\n\
                 - 不写称呼、书信格式、落款、占位符或链接{tags}。\n\
                 - 只回复文案本身。",
                tone = plan.tone,
                title = plan.title,
                tags = if hashtags == 0 {
                    "，不加话题标签".to_owned()
                } else {
                    format!("，最多{hashtags}个话题标签")
                },
            )
        }
    }
}

/// The chat: the rules, the worked example as an earlier turn, then the product. The rules
/// are the ones the validator enforces; a small model breaks them anyway, which is why the
/// validator exists.
pub fn prompt(plan: &Plan) -> Vec<ChatMessage> {
    let ex = example(plan.channel, plan.locale);
    let msg = |role: &str, content: String| ChatMessage {
        role: role.into(),
        content,
    };
    vec![
        msg("system", system(plan)),
        msg("user", ex.user),
        msg("assistant", ex.reply.to_owned()),
        msg("user", product_message(plan)),
    ]
}

/// Tokens worth generating for the channel: the brief's budget with room to finish the
/// sentence (about 4 characters a token in English, 1.5 for Chinese with Qwen's vocabulary).
pub fn max_new_tokens(channel: Channel) -> usize {
    match channel {
        Channel::PdpDescription => 220,
        Channel::MarketingEmail => 180,
        Channel::SocialPost => 90,
        Channel::Push => 40,
        Channel::Sms => 50,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::product::CopyRequest;
    use crate::validate::{Corpus, Rules};
    use serde_json::json;

    fn plan_for(channel: &str, locale: &str) -> Plan {
        let r: CopyRequest = serde_json::from_value(json!({
            "product": {"id": "p", "title": "Linen summer dress", "brand": "Norda",
                "category": "Women > Dresses", "price": 79, "currency": "EUR",
                "attributes": {"material": "linen"}, "selling_points": ["Tie waist"]},
            "channel": channel, "locale": locale
        }))
        .unwrap();
        let rules = Rules::default();
        plan(&r, &rules, &Corpus::of(&r.product, &rules))
    }

    #[test]
    fn the_product_turn_lists_every_planned_fact_and_names_title_and_brand() {
        let p = plan_for("pdp_description", "en");
        let m = prompt(&p);
        assert_eq!(
            m.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(),
            ["system", "user", "assistant", "user"]
        );
        let last = &m[3].content;
        for f in &p.facts {
            assert!(last.contains(&format!("- {}\n", f.statement())), "{last}");
        }
        assert!(last.contains("Category: Dresses"));
        assert!(m[0].content.contains("\"Linen summer dress\""));
        assert!(m[0].content.contains("exactly as \"Norda\""));
        assert!(m[0].content.contains("no hashtags"));
        assert!(m[0].content.contains("at most 1200 characters"));
    }

    #[test]
    fn budgets_follow_the_channel_and_locale() {
        let sms = system(&plan_for("sms", "en"));
        assert!(
            sms.contains("8 to 22 words, at most 160 characters"),
            "{sms}"
        );
        let social = system(&plan_for("social_post", "zh-CN"));
        assert!(social.contains("30到90个字"), "{social}");
        assert!(social.contains("最多2个话题标签"), "{social}");
        assert!(social.contains("广告法"));
    }

    #[test]
    fn examples_only_state_their_own_facts() {
        // Every number in an example reply is in its facts: the example shows restraint.
        for locale in [Locale::En, Locale::ZhCn] {
            for channel in Channel::ALL {
                let ex = example(channel, locale);
                for n in ex
                    .reply
                    .split(|c: char| !c.is_ascii_digit() && c != '.')
                    .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
                {
                    let n = n.trim_end_matches('.');
                    assert!(ex.user.contains(n), "{channel:?} {locale:?}: {n}");
                }
            }
        }
    }
}
