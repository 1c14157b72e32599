//! Step 1: choose and order what to say for the channel and audience. The plan is stored with
//! the draft, so a reviewer sees what the copy was built from and what was left out and why.

use serde::{Deserialize, Serialize};

use crate::product::{value_text, Channel, CopyRequest, Locale};
use crate::validate::{format_price, Context, Corpus, Rules};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactSource {
    SellingPoint,
    Attribute,
    Price,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Empty for a selling point (its text says it all).
    pub label: String,
    pub value: String,
    pub source: FactSource,
}

impl Fact {
    /// As the prompt and the composer state it.
    pub fn statement(&self) -> String {
        if self.label.is_empty() {
            self.value.clone()
        } else {
            format!("{}: {}", self.label, self.value)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    pub fact: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub channel: Channel,
    pub locale: Locale,
    pub title: String,
    pub brand: Option<String>,
    pub category: String,
    /// In the order the copy should use them.
    pub facts: Vec<Fact>,
    /// Facts left out: over the channel's budget, or worded against the rules.
    pub excluded: Vec<Excluded>,
    pub tone: String,
    pub audience: Option<String>,
    pub max_chars: usize,
    /// Price and currency, for channels that mention them.
    pub price: Option<String>,
}

/// Attribute names in the order shoppers weigh them; the rest follow alphabetically.
const ATTRIBUTE_ORDER: &[&str] = &[
    "material",
    "materials",
    "fabric",
    "dimensions",
    "size",
    "sizes",
    "capacity",
    "weight",
    "fit",
    "features",
    "colour",
    "color",
    "care",
];

fn attribute_rank(key: &str) -> usize {
    let k = key.to_lowercase();
    ATTRIBUTE_ORDER
        .iter()
        .position(|a| k == *a || k.starts_with(&format!("{a}_")))
        .unwrap_or(ATTRIBUTE_ORDER.len())
}

/// Builds the plan. Facts whose own wording breaks the advertising rules (a selling point
/// that says "best") are left out, so neither the model nor the composer repeats them.
pub fn plan(req: &CopyRequest, rules: &Rules, corpus: &Corpus) -> Plan {
    let p = &req.product;
    let mut candidates: Vec<Fact> = p
        .selling_points
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| Fact {
            label: String::new(),
            value: s.trim_end_matches(['.', '。']).to_owned(),
            source: FactSource::SellingPoint,
        })
        .collect();
    let mut attrs: Vec<(&String, &serde_json::Value)> = p.attributes.iter().collect();
    attrs.sort_by_key(|(k, _)| attribute_rank(k));
    candidates.extend(attrs.into_iter().filter_map(|(k, v)| {
        let value = value_text(v);
        (!value.is_empty()).then(|| Fact {
            label: k.replace('_', " "),
            value,
            source: FactSource::Attribute,
        })
    }));
    let price = p.price.map(|v| match &p.currency {
        Some(c) => format!("{} {c}", format_price(v)),
        None => format_price(v),
    });
    if let (Some(pr), true) = (
        &price,
        matches!(
            req.channel,
            Channel::Push | Channel::Sms | Channel::MarketingEmail
        ),
    ) {
        // Short channels sell on price: right after the first selling point.
        let at = candidates.len().min(1);
        candidates.insert(
            at,
            Fact {
                label: "price".into(),
                value: pr.clone(),
                source: FactSource::Price,
            },
        );
    }
    // The audience's interests first (stable: the order above breaks ties).
    if let Some(a) = &req.audience {
        let terms = a.terms();
        candidates.sort_by_key(|f| {
            let s = f.statement().to_lowercase();
            std::cmp::Reverse(terms.iter().filter(|t| s.contains(t.as_str())).count())
        });
    }
    let ctx = Context {
        corpus,
        channel: req.channel,
        locale: req.locale,
        max_chars: usize::MAX,
        brand: p.brand.as_deref(),
    };
    let mut facts = Vec::new();
    let mut excluded = Vec::new();
    for f in candidates {
        let statement = f.statement();
        let report = rules.check(&statement, &ctx);
        let wording: Vec<String> = report
            .violations
            .iter()
            .filter(|v| !v.rule.is_whole_text())
            .map(|v| v.message.clone())
            .collect();
        if !wording.is_empty() {
            excluded.push(Excluded {
                fact: statement,
                reason: wording.join("; "),
            });
        } else if facts.len() >= req.channel.max_facts() {
            excluded.push(Excluded {
                fact: statement,
                reason: format!("{} keeps {} facts", req.channel, req.channel.max_facts()),
            });
        } else {
            facts.push(f);
        }
    }
    Plan {
        channel: req.channel,
        locale: req.locale,
        title: p.title.trim().to_owned(),
        brand: p.brand.clone().filter(|b| !b.trim().is_empty()),
        category: p.category.clone(),
        facts,
        excluded,
        tone: req.tone.clone().unwrap_or_else(|| "warm and clear".into()),
        audience: req.audience.as_ref().map(|a| a.describe()),
        max_chars: req.max_chars(),
        price,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: serde_json::Value) -> CopyRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn orders_by_channel_and_leaves_out_bad_wording() {
        let r = req(json!({
            "product": {"id": "p", "title": "Kettle", "price": 49, "currency": "EUR",
                "attributes": {"colour": "white", "capacity": "1.7 l", "material": "steel"},
                "selling_points": ["Boils fast", "The best kettle ever", "Quiet"]},
            "channel": "sms", "locale": "en"
        }));
        let rules = Rules::default();
        let corpus = Corpus::of(&r.product, &rules);
        let p = plan(&r, &rules, &corpus);
        // SMS: two facts, the price right after the first selling point.
        assert_eq!(
            p.facts.iter().map(Fact::statement).collect::<Vec<_>>(),
            vec!["Boils fast", "price: 49.00 EUR"]
        );
        assert!(
            p.excluded[0].fact.contains("best") && p.excluded[0].reason.contains("superlative")
        );
        // PDP: no price, attributes by weight (material before capacity before colour).
        let mut pdp = r.clone();
        pdp.channel = Channel::PdpDescription;
        let p = plan(&pdp, &rules, &corpus);
        assert_eq!(
            p.facts.iter().map(Fact::statement).collect::<Vec<_>>(),
            vec![
                "Boils fast",
                "Quiet",
                "material: steel",
                "capacity: 1.7 l",
                "colour: white"
            ]
        );
    }

    #[test]
    fn audience_interests_come_first() {
        let r = req(json!({
            "product": {"id": "p", "title": "Jacket",
                "attributes": {"material": "wool"},
                "selling_points": ["Warm", "Packs small for travel", "Hiking-ready hood"]},
            "channel": "social_post", "locale": "en",
            "audience": {"name": "hikers", "categories": ["Outdoor > Hiking"]}
        }));
        let rules = Rules::default();
        let p = plan(&r, &rules, &Corpus::of(&r.product, &rules));
        assert_eq!(p.facts[0].value, "Hiking-ready hood");
        assert_eq!(p.facts.len(), 3);
    }
}
