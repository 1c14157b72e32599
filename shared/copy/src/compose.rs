//! The deterministic composer, used when no generated candidate passes or no model is
//! configured: copy that joins the planned facts in sentences and says nothing else.

use crate::plan::{Fact, FactSource, Plan};
use crate::product::{Channel, Locale};

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

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Lower-cases the first letter when the first word is plainly a common word ("Airy" →
/// "airy"), not a name or code ("GORE-TEX", "iPhone", "McKinley" stay as written).
fn decapitalise(s: &str) -> String {
    let first = s.split_whitespace().next().unwrap_or_default();
    let mut chars = first.chars();
    let plain = chars.next().is_some_and(char::is_uppercase)
        && chars.clone().count() > 0
        && chars.all(|c| c.is_lowercase() || c == '-' || c == '\'');
    if !plain {
        return s.to_owned();
    }
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The product as copy names it: "the linen summer dress by Norda". A sentence-case title
/// ("Linen summer dress") is a description and reads lower-case mid-sentence; a title-case or
/// one-word title ("Cruiser Skateboard", "Laptop") is a name and stays as written.
fn name(plan: &Plan) -> String {
    let words: Vec<&str> = plan.title.split_whitespace().collect();
    let sentence_case = words.len() > 1
        && words[1..]
            .iter()
            .all(|w| w.chars().next().is_some_and(|c| !c.is_uppercase()));
    let title = if sentence_case {
        decapitalise(&plan.title)
    } else {
        plan.title.clone()
    };
    match &plan.brand {
        Some(b) if !plan.title.to_lowercase().contains(&b.to_lowercase()) => {
            format!("the {title} by {b}")
        }
        _ => format!("the {title}"),
    }
}

fn zh_name(plan: &Plan) -> String {
    match &plan.brand {
        Some(b) if !plan.title.contains(b.as_str()) => format!("{b} {}", plan.title),
        _ => plan.title.clone(),
    }
}

/// Chinese followed by Latin text takes a space between them ("采用 copper").
fn zh_join(zh: &str, value: &str) -> String {
    if value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("{zh} {value}")
    } else {
        format!("{zh}{value}")
    }
}

/// The attributes as one phrase: material and colour read naturally ("made of linen, in
/// sand"); the rest are listed with their names.
fn attribute_phrases(facts: &[&Fact], locale: Locale) -> (Vec<String>, Vec<String>) {
    let mut natural = Vec::new();
    let mut listed = Vec::new();
    for f in facts.iter().filter(|f| f.source == FactSource::Attribute) {
        let label = f.label.to_lowercase();
        match (locale, label.as_str()) {
            (Locale::En, "material" | "materials" | "fabric") => {
                natural.push(format!("made of {}", f.value))
            }
            (Locale::En, "colour" | "color") => natural.push(format!("in {}", f.value)),
            (Locale::En, _) => listed.push(format!("{} {}", label, f.value)),
            (Locale::ZhCn, "material" | "materials" | "fabric") => {
                natural.push(zh_join("采用", &f.value))
            }
            (Locale::ZhCn, "colour" | "color") => natural.push(zh_join("颜色为", &f.value)),
            (Locale::ZhCn, _) => listed.push(format!("{}：{}", zh_label(&f.label), f.value)),
        }
    }
    (natural, listed)
}

/// Selling points as sentences, two short ones joined: "Airy midi cut and a tie waist"
/// would need grammar we do not have, so they join as written: "Airy midi cut, tie waist."
fn selling_sentences(facts: &[&Fact], locale: Locale) -> Vec<String> {
    let points: Vec<&str> = facts
        .iter()
        .filter(|f| f.source == FactSource::SellingPoint)
        .map(|f| f.value.trim())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let a = points[i];
        // A question or an exclamation keeps its own mark and stands alone.
        let closed = |s: &str| s.ends_with(['?', '!', '？', '！', '…']);
        let short =
            |s: &str| s.chars().count() <= 32 && !s.contains([',', '，', ';', '；']) && !closed(s);
        let stop = |s: &str, mark: &str| {
            if closed(s) {
                s.to_owned()
            } else {
                format!("{s}{mark}")
            }
        };
        match (locale, points.get(i + 1)) {
            (Locale::En, Some(b)) if short(a) && short(b) => {
                out.push(format!("{}, and {}.", capitalise(a), decapitalise(b)));
                i += 2;
            }
            (Locale::En, _) => {
                out.push(stop(&capitalise(a), "."));
                i += 1;
            }
            (Locale::ZhCn, Some(b)) if short(a) && short(b) => {
                out.push(format!("{a}，{b}。"));
                i += 2;
            }
            (Locale::ZhCn, _) => {
                out.push(stop(a, "。"));
                i += 1;
            }
        }
    }
    out
}

/// The first option that fits `limit`, else the last (cut later).
fn fitting(options: Vec<String>, limit: usize) -> String {
    let last = options.last().cloned().unwrap_or_default();
    options
        .into_iter()
        .find(|o| o.chars().count() <= limit)
        .unwrap_or(last)
}

/// Copy from the plan alone, per channel and locale: the product named with its material and
/// colour, the selling points, the other attributes, and the price where the channel sells on
/// it. Nothing is invented, so it passes validation by construction (the tests check it on the
/// trap products); sentences that do not fit `limit` are left out, last first.
pub fn compose(plan: &Plan, limit: usize) -> String {
    let facts: Vec<&Fact> = plan.facts.iter().collect();
    let price = facts
        .iter()
        .find(|f| f.source == FactSource::Price)
        .map(|f| f.value.clone());
    let (natural, listed) = attribute_phrases(&facts, plan.locale);
    let points = selling_sentences(&facts, plan.locale);
    let short = matches!(plan.channel, Channel::Sms | Channel::Push);
    // The head sentence always comes first; the rest are added in order while they fit.
    let (head, rest): (String, Vec<String>) = match plan.locale {
        Locale::En => {
            let mut head = capitalise(&name(plan));
            if !natural.is_empty() {
                head = format!("{head}, {}", natural.join(", "));
            }
            if short {
                let named = capitalise(&name(plan));
                let first = points
                    .first()
                    .map(|p| decapitalise(p.trim_end_matches('.')));
                let mut options = Vec::new();
                if let (Some(p), Some(pr)) = (&first, &price) {
                    options.push(format!("{named}: {p}. Now {pr}."));
                }
                if let Some(p) = &first {
                    options.push(format!("{named}: {p}."));
                }
                if let Some(pr) = &price {
                    options.push(format!("{head}. Now {pr}."));
                    options.push(format!("{named}. Now {pr}."));
                }
                options.push(format!("{head}."));
                options.push(format!("{named}."));
                (fitting(options, limit), Vec::new())
            } else {
                let mut rest = points;
                if !listed.is_empty() {
                    rest.push(format!("Details: {}.", listed.join("; ")));
                }
                let lead = match plan.channel {
                    Channel::PdpDescription => "This is",
                    _ => "Meet",
                };
                let head = format!("{lead} {}.", decapitalise(&head));
                match (plan.channel, &price) {
                    (Channel::MarketingEmail, Some(pr)) => {
                        rest.push(format!("Shop it now for {pr}."))
                    }
                    (Channel::MarketingEmail, None) => rest.push("Shop it now.".into()),
                    (_, Some(pr)) => rest.push(format!("Now {pr}.")),
                    _ => {}
                }
                (head, rest)
            }
        }
        Locale::ZhCn => {
            let mut head = zh_name(plan);
            if !natural.is_empty() {
                head = format!("{head}，{}", natural.join("，"));
            }
            if short {
                let named = zh_name(plan);
                let first = points.first().map(|p| p.trim_end_matches('。').to_owned());
                let mut options = Vec::new();
                if let (Some(p), Some(pr)) = (&first, &price) {
                    options.push(format!("{named}：{p}，现价{pr}。"));
                }
                if let Some(p) = &first {
                    options.push(format!("{named}：{p}。"));
                }
                if let Some(pr) = &price {
                    options.push(format!("{head}，现价{pr}。"));
                    options.push(format!("{named}，现价{pr}。"));
                }
                options.push(format!("{head}。"));
                options.push(format!("{named}。"));
                (fitting(options, limit), Vec::new())
            } else {
                let mut rest = points;
                if !listed.is_empty() {
                    rest.push(format!("{}。", listed.join("，")));
                }
                match (plan.channel, &price) {
                    (Channel::MarketingEmail, Some(pr)) => {
                        rest.push(format!("现价{pr}，立即选购。"))
                    }
                    (Channel::MarketingEmail, None) => rest.push("立即选购。".into()),
                    (_, Some(pr)) => rest.push(format!("现价{pr}。")),
                    _ => {}
                }
                (format!("{head}。"), rest)
            }
        }
    };
    let sep = match plan.locale {
        Locale::En => " ",
        Locale::ZhCn => "",
    };
    let mut out = head;
    for s in rest {
        if out.chars().count() + sep.len() + s.chars().count() <= limit {
            out.push_str(sep);
            out.push_str(&s);
        }
    }
    if out.chars().count() > limit {
        // Even the head is too long: cut at a character boundary with an ellipsis.
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
            "The copper hose fitting by Acme: fits standard garden taps. Now 12.50 EUR."
        );
        // Shorter limits drop the price, then the selling point; the name is cut last.
        assert_eq!(
            compose(&p, 60),
            "The copper hose fitting by Acme: fits standard garden taps."
        );
        assert_eq!(compose(&p, 40), "The copper hose fitting by Acme.");
        assert_eq!(compose(&p, 20).chars().count(), 20);
        let mut pdp = r.clone();
        pdp.channel = Channel::PdpDescription;
        let p = plan(&pdp, &rules, &corpus);
        assert_eq!(
            compose(&p, 1200),
            "This is the copper hose fitting by Acme, made of copper. Fits standard garden \
             taps, and resists corrosion. Details: thread 9/16 inch."
        );
        let mut email = r.clone();
        email.channel = Channel::MarketingEmail;
        let p = plan(&email, &rules, &corpus);
        assert_eq!(
            compose(&p, 900),
            "Meet the copper hose fitting by Acme, made of copper. Fits standard garden taps, \
             and resists corrosion. Details: thread 9/16 inch. Shop it now for 12.50 EUR."
        );
        let mut zh = r.clone();
        zh.locale = Locale::ZhCn;
        zh.channel = Channel::PdpDescription;
        let p = plan(&zh, &rules, &corpus);
        assert_eq!(
            compose(&p, 1200),
            "Acme Copper hose fitting，采用 copper。Fits standard garden taps，Resists corrosion。thread：9/16 inch。"
        );
        assert_eq!(compose(&p, 10).chars().count(), 10);
    }

    #[test]
    fn questions_keep_their_mark() {
        let r: CopyRequest = serde_json::from_value(json!({
            "product": {"id": "p", "title": "Twin Lens Camera", "brand": "Rolleiflex",
                "selling_points": ["What makes a Rolleiflex TLR so special?", "Many things."]},
            "channel": "pdp_description", "locale": "en"
        }))
        .unwrap();
        let rules = Rules::default();
        let p = plan(&r, &rules, &Corpus::of(&r.product, &rules));
        assert_eq!(
            compose(&p, 1200),
            "This is the Twin Lens Camera by Rolleiflex. What makes a Rolleiflex TLR so \
             special? Many things."
        );
    }
}
