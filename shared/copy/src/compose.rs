//! The prompt the generator gets, and the deterministic composer used when no generated
//! candidate passes: plain, factual copy from the plan and nothing else.

use shopmind_inference::ChatMessage;

use crate::plan::{Fact, FactSource, Plan};
use crate::product::{Channel, Locale};

fn channel_brief(channel: Channel, locale: Locale) -> &'static str {
    match (locale, channel) {
        (Locale::En, Channel::PdpDescription) => "a product page description of 3 to 5 sentences",
        (Locale::En, Channel::MarketingEmail) => {
            "a short marketing email body: one greeting line, three sentences and a call to action"
        }
        (Locale::En, Channel::SocialPost) => "a social media post of two sentences",
        (Locale::En, Channel::Push) => "a push notification of one short sentence",
        (Locale::En, Channel::Sms) => "an SMS of one short sentence",
        (Locale::ZhCn, Channel::PdpDescription) => "一段3到5句的商品详情描述",
        (Locale::ZhCn, Channel::MarketingEmail) => {
            "一封简短的营销邮件正文（问候、三句话和行动号召）"
        }
        (Locale::ZhCn, Channel::SocialPost) => "一条两句话的社交媒体帖子",
        (Locale::ZhCn, Channel::Push) => "一条一句话的推送通知",
        (Locale::ZhCn, Channel::Sms) => "一条一句话的短信",
    }
}

/// The chat the generator completes. The rules it is told are the rules the validator
/// enforces; a small model breaks them anyway, which is why the validator exists.
pub fn prompt(plan: &Plan) -> Vec<ChatMessage> {
    let facts: String = plan
        .facts
        .iter()
        .map(|f| format!("- {}\n", f.statement()))
        .collect();
    let (system, user) = match plan.locale {
        Locale::En => (
            format!(
                "You are a copywriter for an online shop. Write {} in English. Use only the \
                 facts given. Do not add numbers, sizes, materials, certifications or claims \
                 that are not in the facts. No superlatives such as best or #1, no guarantees. \
                 Tone: {}. At most {} characters. Reply with the copy only.",
                channel_brief(plan.channel, plan.locale),
                plan.tone,
                plan.max_chars
            ),
            format!(
                "Product: {}\n{}{}Facts:\n{facts}",
                plan.title,
                plan.brand
                    .as_ref()
                    .map(|b| format!("Brand: {b}\n"))
                    .unwrap_or_default(),
                plan.audience
                    .as_ref()
                    .map(|a| format!("Audience: {a}\n"))
                    .unwrap_or_default(),
            ),
        ),
        Locale::ZhCn => (
            format!(
                "你是网店的文案。请用简体中文写{}。只使用给出的事实，不要添加事实中没有的数字、尺寸、\
                 材质、认证或功效。不要使用“最”“第一”“唯一”“顶级”等绝对化用语，不要承诺保证。\
                 语气：{}。不超过{}个字。只回复文案本身。",
                channel_brief(plan.channel, plan.locale),
                plan.tone,
                plan.max_chars
            ),
            format!(
                "商品：{}\n{}{}事实：\n{facts}",
                plan.title,
                plan.brand
                    .as_ref()
                    .map(|b| format!("品牌：{b}\n"))
                    .unwrap_or_default(),
                plan.audience
                    .as_ref()
                    .map(|a| format!("受众：{a}\n"))
                    .unwrap_or_default(),
            ),
        ),
    };
    vec![
        ChatMessage {
            role: "system".into(),
            content: system,
        },
        ChatMessage {
            role: "user".into(),
            content: user,
        },
    ]
}

/// Tokens worth generating for the channel (about 4 characters a token in English).
pub fn max_new_tokens(channel: Channel) -> usize {
    match channel {
        Channel::PdpDescription => 220,
        Channel::MarketingEmail => 200,
        Channel::SocialPost => 90,
        Channel::Push => 40,
        Channel::Sms => 50,
    }
}

fn zh_label(label: &str) -> String {
    match label.to_lowercase().as_str() {
        "material" | "materials" | "fabric" => "材质".into(),
        "colour" | "color" => "颜色".into(),
        "size" | "sizes" | "dimensions" => "尺寸".into(),
        "weight" => "重量".into(),
        "capacity" => "容量".into(),
        "price" => "价格".into(),
        "care" => "护理".into(),
        "features" => "特点".into(),
        _ => label.to_owned(),
    }
}

fn sentence(f: &Fact, locale: Locale) -> String {
    match (locale, f.label.is_empty()) {
        (Locale::En, true) => capitalise(&f.value) + ".",
        (Locale::En, false) => format!("{}: {}.", capitalise(&f.label), f.value),
        (Locale::ZhCn, true) => format!("{}。", f.value),
        (Locale::ZhCn, false) => format!("{}：{}。", zh_label(&f.label), f.value),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Factual copy from the plan: the product, then each fact as its own sentence while it fits
/// `max_chars`. Nothing is invented, so it passes validation by construction (the tests check
/// it on the trap products).
pub fn compose(plan: &Plan, limit: usize) -> String {
    let sep = match plan.locale {
        Locale::En => " ",
        Locale::ZhCn => "",
    };
    let head = match (plan.locale, &plan.brand) {
        (Locale::En, Some(b)) if !plan.title.contains(b.as_str()) => {
            format!("{} by {b}.", plan.title)
        }
        (Locale::En, _) => format!("{}.", plan.title),
        (Locale::ZhCn, Some(b)) if !plan.title.contains(b.as_str()) => {
            format!("{b} {}。", plan.title)
        }
        (Locale::ZhCn, _) => format!("{}。", plan.title),
    };
    let mut out = head;
    // Short channels say a selling point and the price before any attribute.
    let short = matches!(plan.channel, Channel::Sms | Channel::Push);
    let mut facts: Vec<&Fact> = plan.facts.iter().collect();
    if short {
        facts.sort_by_key(|f| f.source == FactSource::Attribute);
    }
    for f in facts {
        let s = sentence(f, plan.locale);
        if out.chars().count() + sep.len() + s.chars().count() <= limit {
            out.push_str(sep);
            out.push_str(&s);
        }
    }
    if out.chars().count() > limit {
        // Even the title is too long: cut at a character boundary with an ellipsis.
        out = out
            .chars()
            .take(limit.saturating_sub(1))
            .collect::<String>()
            + "…";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::product::CopyRequest;
    use crate::validate::{Corpus, Rules};
    use serde_json::json;

    #[test]
    fn composes_within_the_limit_from_the_plan_only() {
        let r: CopyRequest = serde_json::from_value(json!({
            "product": {"id": "p", "title": "Copper hose fitting", "brand": "Acme",
                "price": 12.5, "currency": "EUR",
                "attributes": {"material": "copper", "thread": "9/16 inch"},
                "selling_points": ["Fits standard garden taps", "Resists corrosion"]},
            "channel": "sms", "locale": "en"
        }))
        .unwrap();
        let rules = Rules::default();
        let corpus = Corpus::of(&r.product, &rules);
        let p = plan(&r, &rules, &corpus);
        let text = compose(&p, 160);
        assert_eq!(
            text,
            "Copper hose fitting by Acme. Fits standard garden taps. Price: 12.50 EUR."
        );
        let text = compose(&p, 40);
        assert_eq!(text, "Copper hose fitting by Acme.");
        let mut zh = r.clone();
        zh.locale = Locale::ZhCn;
        zh.channel = Channel::PdpDescription;
        let p = plan(&zh, &rules, &corpus);
        assert_eq!(
            compose(&p, 1200),
            "Acme Copper hose fitting。Fits standard garden taps。Resists corrosion。材质：copper。thread：9/16 inch。"
        );
        assert_eq!(compose(&p, 10).chars().count(), 10);
    }
}
