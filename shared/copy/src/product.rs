//! What a copy request carries: the product, the channel, the locale, and the options.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shopmind_catalog::{BadLine, CatalogItem};

use crate::error::{CopyError, Result};

/// Bumped whenever the prompt, the plan or the validation rules change what a draft would
/// say: every stored draft then counts as stale and is regenerated (unless a human approved
/// or edited it).
pub const PROMPT_VERSION: &str = "copy-v2";

/// Limits on what one request may carry (a draft must fit a DynamoDB item with room to spare).
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_SELLING_POINTS: usize = 20;
pub const MAX_FIELD_CHARS: usize = 300;
pub const MAX_VARIANTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    PdpDescription,
    MarketingEmail,
    SocialPost,
    Push,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::PdpDescription,
        Channel::MarketingEmail,
        Channel::SocialPost,
        Channel::Push,
        Channel::Sms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::PdpDescription => "pdp_description",
            Channel::MarketingEmail => "marketing_email",
            Channel::SocialPost => "social_post",
            Channel::Push => "push",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                CopyError::Invalid(format!(
                    "unknown channel {s:?}; expected one of {}",
                    Self::ALL.map(Channel::as_str).join(", ")
                ))
            })
    }

    /// The most characters the channel takes. SMS is one GSM-7 segment (160), or 70 when the
    /// text needs UCS-2 (any Chinese character); see [`crate::validate::sms_limit`].
    pub fn max_chars(self) -> usize {
        match self {
            Channel::PdpDescription => 1200,
            Channel::MarketingEmail => 900,
            Channel::SocialPost => 280,
            Channel::Push => 120,
            Channel::Sms => 160,
        }
    }

    /// Shorter than this reads as a fragment, not copy.
    pub fn min_chars(self, locale: Locale) -> usize {
        let en = match self {
            Channel::PdpDescription => 120,
            Channel::MarketingEmail => 120,
            Channel::SocialPost => 40,
            Channel::Push | Channel::Sms => 20,
        };
        match locale {
            Locale::En => en,
            // A Chinese character carries about what three to four Latin letters do.
            Locale::ZhCn => en / 3,
        }
    }

    /// How many facts the plan keeps for this channel.
    pub fn max_facts(self) -> usize {
        match self {
            Channel::PdpDescription => 8,
            Channel::MarketingEmail => 5,
            Channel::SocialPost => 3,
            Channel::Push | Channel::Sms => 2,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Locale {
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::ZhCn];

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::ZhCn => "zh-CN",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                CopyError::Invalid(format!("unknown locale {s:?}; expected en or zh-CN"))
            })
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    #[serde(alias = "item_id")]
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Strings, numbers, booleans or lists of them; nested objects are read as `key.sub`.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    #[serde(default)]
    pub selling_points: Vec<String>,
}

/// Who the copy speaks to: a phrase, or a segment from the shopper profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    Phrase(String),
    Segment(Segment),
}

/// A shopper-profile segment: the categories, brands and price band its shoppers favour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub brands: Vec<String>,
    #[serde(default)]
    pub price_band: Option<String>,
}

impl Audience {
    /// Words that mark a fact as relevant to this audience.
    pub fn terms(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Audience::Phrase(p) => vec![p.clone()],
            Audience::Segment(s) => s
                .categories
                .iter()
                .chain(&s.brands)
                .chain(&s.price_band)
                .chain(&s.name)
                .cloned()
                .collect(),
        };
        out = out
            .iter()
            .flat_map(|t| {
                t.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| w.chars().count() >= 3)
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// How the prompt names the audience.
    pub fn describe(&self) -> String {
        match self {
            Audience::Phrase(p) => p.clone(),
            Audience::Segment(s) => {
                let mut parts = Vec::new();
                if let Some(n) = &s.name {
                    parts.push(n.clone());
                }
                if !s.categories.is_empty() {
                    parts.push(format!("shoppers of {}", s.categories.join(", ")));
                }
                if !s.brands.is_empty() {
                    parts.push(format!("fans of {}", s.brands.join(", ")));
                }
                if let Some(b) = &s.price_band {
                    parts.push(format!("{b} price band"));
                }
                parts.join("; ")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    pub product: Product,
    pub channel: Channel,
    pub locale: Locale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    /// At most the channel's own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<usize>,
    /// Candidates to keep (1–5); default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<usize>,
}

impl CopyRequest {
    pub fn variants(&self) -> usize {
        self.variants.unwrap_or(2)
    }

    pub fn max_chars(&self) -> usize {
        self.max_chars
            .unwrap_or(self.channel.max_chars())
            .min(self.channel.max_chars())
    }

    /// Refuses what the pipeline cannot honour, with a message that names the field.
    pub fn check(&self) -> Result<()> {
        let p = &self.product;
        check_id(&p.id)?;
        let short = |name: &str, v: &str, max: usize| -> Result<()> {
            if v.chars().count() > max {
                return Err(CopyError::Invalid(format!(
                    "{name} is longer than {max} characters"
                )));
            }
            Ok(())
        };
        if p.title.trim().is_empty() {
            return Err(CopyError::Invalid("product.title must not be empty".into()));
        }
        check_plain(self)?;
        short("product.title", &p.title, MAX_FIELD_CHARS)?;
        short("product.category", &p.category, MAX_FIELD_CHARS)?;
        short("product.brand", p.brand.as_deref().unwrap_or(""), 100)?;
        if let Some(price) = p.price {
            if !price.is_finite() || price < 0.0 {
                return Err(CopyError::Invalid(
                    "product.price must be a number ≥ 0".into(),
                ));
            }
        }
        if let Some(c) = &p.currency {
            if c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(CopyError::Invalid(format!(
                    "product.currency {c:?} must be an ISO 4217 code such as EUR"
                )));
            }
        }
        let attr_bytes = serde_json::to_vec(&p.attributes).map_or(usize::MAX, |b| b.len());
        if attr_bytes > MAX_ATTRIBUTES_BYTES {
            return Err(CopyError::TooLarge(format!(
                "product.attributes is {attr_bytes} bytes of JSON; the limit is {MAX_ATTRIBUTES_BYTES}"
            )));
        }
        if p.attributes.len() > MAX_ATTRIBUTES {
            return Err(CopyError::Invalid(format!(
                "product.attributes has {} entries; the limit is {MAX_ATTRIBUTES}",
                p.attributes.len()
            )));
        }
        for (k, v) in &p.attributes {
            if k.trim().is_empty() {
                return Err(CopyError::Invalid(
                    "product.attributes has an empty name".into(),
                ));
            }
            short(&format!("product.attributes name {k:?}"), k, 100)?;
            check_attribute(k, v, 0)?;
        }
        if p.selling_points.len() > MAX_SELLING_POINTS {
            return Err(CopyError::Invalid(format!(
                "product.selling_points has {} entries; the limit is {MAX_SELLING_POINTS}",
                p.selling_points.len()
            )));
        }
        for s in &p.selling_points {
            short("a selling point", s, MAX_FIELD_CHARS)?;
        }
        short("tone", self.tone.as_deref().unwrap_or(""), 40)?;
        if let Some(a) = &self.audience {
            short("audience", &a.describe(), MAX_FIELD_CHARS)?;
        }
        if let Some(m) = self.max_chars {
            let limit = self.channel.max_chars();
            if !(20..=limit).contains(&m) {
                return Err(CopyError::Invalid(format!(
                    "max_chars must be from 20 to {limit} for {}",
                    self.channel
                )));
            }
        }
        if let Some(v) = self.variants {
            if !(1..=MAX_VARIANTS).contains(&v) {
                return Err(CopyError::Invalid(format!(
                    "variants must be from 1 to {MAX_VARIANTS}"
                )));
            }
        }
        Ok(())
    }

    /// What decides whether a stored draft is stale: the product as given, channel, locale,
    /// tone, audience, length and the prompt version (sha256 of canonical JSON; serde_json's
    /// maps are sorted, so key order in the request does not matter).
    pub fn input_hash(&self) -> String {
        let doc = serde_json::json!({
            "product": self.product,
            "channel": self.channel,
            "locale": self.locale,
            "tone": self.tone,
            "audience": self.audience,
            "max_chars": self.max_chars(),
            "prompt_version": PROMPT_VERSION,
        });
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

/// A product id is part of the draft key: 1–128 characters, no `|`, `/` or control characters.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.chars().count() > 128
        || id.chars().any(|c| c.is_control() || c == '|' || c == '/')
    {
        return Err(CopyError::Invalid(
            "product.id must be 1-128 characters without '|', '/' or control characters".into(),
        ));
    }
    Ok(())
}

/// Copy is plain text, so product data holding markup (a title `<img onerror=…> Mug`) is
/// refused rather than carried into a draft for a web page or an e-mail.
fn check_plain(req: &CopyRequest) -> Result<()> {
    let p = &req.product;
    let refuse = |name: &str, v: &str| -> Result<()> {
        match crate::markup::find_markup(v) {
            Some(m) => Err(CopyError::Invalid(format!(
                "{name} holds markup ({}); product data must be plain text",
                m.chars().take(40).collect::<String>()
            ))),
            None => Ok(()),
        }
    };
    refuse("product.title", &p.title)?;
    refuse("product.category", &p.category)?;
    refuse("product.brand", p.brand.as_deref().unwrap_or(""))?;
    for s in &p.selling_points {
        refuse("a selling point", s)?;
    }
    for (k, v) in &p.attributes {
        refuse("a product.attributes name", k)?;
        refuse(&format!("product.attributes.{k}"), &value_text(v))?;
    }
    refuse("tone", req.tone.as_deref().unwrap_or(""))?;
    if let Some(a) = &req.audience {
        refuse("audience", &a.describe())?;
    }
    Ok(())
}

fn check_attribute(key: &str, v: &Value, depth: usize) -> Result<()> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => Ok(()),
        Value::Array(items) if depth == 0 => items
            .iter()
            .try_for_each(|i| check_attribute(key, i, depth + 1)),
        Value::Object(map) if depth == 0 => map
            .values()
            .try_for_each(|i| check_attribute(key, i, depth + 1)),
        _ => Err(CopyError::Invalid(format!(
            "product.attributes.{key} nests too deep: use strings, numbers or one level of lists"
        ))),
    }
}

/// An attribute's value as text: `a, b` for lists, `k: v` pairs for an object.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(value_text)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", value_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The products of a catalog (the shared JSONL contract, [`shopmind_catalog`]) and the lines
/// skipped, each with its number: the contract's own checks, then the product id rule drafts
/// need (no '|' or '/'). Description, stock and image are not copy inputs and are dropped, so a
/// restock does not make every draft stale.
pub fn parse_catalog(text: &str) -> (Vec<Product>, Vec<BadLine>) {
    let parsed = shopmind_catalog::parse_catalog_with(text, |item| {
        check_id(&item.item_id).map_err(|e| e.to_string())
    });
    (parsed.items.iter().map(Product::from).collect(), parsed.bad)
}

impl From<&CatalogItem> for Product {
    fn from(item: &CatalogItem) -> Self {
        Self {
            id: item.item_id.clone(),
            title: item.title.clone(),
            category: item.category.clone(),
            brand: item.brand.clone(),
            price: item.price,
            currency: item.currency.clone(),
            attributes: item.attributes.clone(),
            selling_points: item.selling_points.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> Result<CopyRequest> {
        serde_json::from_value(v).map_err(|e| CopyError::Invalid(e.to_string()))
    }

    fn base() -> Value {
        json!({
            "product": {"id": "p1", "title": "Lamp", "attributes": {"material": "brass"}},
            "channel": "sms", "locale": "en"
        })
    }

    #[test]
    fn unknown_channel_and_locale_name_the_choices() {
        let mut v = base();
        v["channel"] = json!("fax");
        let e = request(v).unwrap_err().to_string();
        assert!(
            e.contains("unknown variant `fax`") && e.contains("pdp_description"),
            "{e}"
        );
        let mut v = base();
        v["locale"] = json!("de");
        assert!(request(v).unwrap_err().to_string().contains("zh-CN"));
        assert!(Channel::parse("push").is_ok());
        assert!(Channel::parse("Push").is_err());
    }

    #[test]
    fn product_data_holding_markup_is_refused_naming_the_field() {
        // Issue 21 finding 5: this title gave a passing draft holding the tag.
        for (path, value, field) in [
            (
                "/product/title",
                json!("<img src=x onerror=alert(1)> Mug"),
                "product.title",
            ),
            (
                "/product/category",
                json!("Kitchen<script>"),
                "product.category",
            ),
            (
                "/product/attributes/material",
                json!("<b>brass</b>"),
                "product.attributes.material",
            ),
            (
                "/product/selling_points",
                json!(["javascript:alert(1)"]),
                "a selling point",
            ),
            ("/tone", json!("warm &amp; bright"), "tone"),
        ] {
            let mut v = base();
            *v.pointer_mut(path.rsplit_once('/').unwrap().0)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .entry(path.rsplit_once('/').unwrap().1)
                .or_insert(Value::Null) = value;
            let e = request(v).unwrap().check().unwrap_err();
            assert!(
                matches!(&e, CopyError::Invalid(m) if m.starts_with(field) && m.contains("markup")),
                "{path}: {e}"
            );
        }
        // Angle brackets and ampersands in plain text pass.
        let mut v = base();
        v["product"]["title"] = json!("Salt & Pepper grinder for pots < 20 cm");
        assert!(request(v).unwrap().check().is_ok());
    }

    #[test]
    fn missing_or_empty_title_is_refused() {
        let mut v = base();
        v["product"].as_object_mut().unwrap().remove("title");
        assert!(request(v)
            .unwrap_err()
            .to_string()
            .contains("missing field `title`"));
        let mut v = base();
        v["product"]["title"] = json!("  ");
        let e = request(v).unwrap().check().unwrap_err();
        assert!(matches!(e, CopyError::Invalid(m) if m.contains("title")));
    }

    #[test]
    fn oversized_attributes_are_too_large_not_invalid() {
        let mut v = base();
        v["product"]["attributes"] = json!({"notes": "x".repeat(MAX_ATTRIBUTES_BYTES)});
        assert!(matches!(
            request(v).unwrap().check(),
            Err(CopyError::TooLarge(_))
        ));
        let mut v = base();
        v["product"]["attributes"] = json!({"a": {"b": {"c": 1}}});
        assert!(matches!(
            request(v).unwrap().check(),
            Err(CopyError::Invalid(m)) if m.contains("nests")
        ));
    }

    #[test]
    fn limits_on_options() {
        for (field, value) in [
            ("variants", json!(0)),
            ("variants", json!(6)),
            ("max_chars", json!(161)),
            ("max_chars", json!(5)),
        ] {
            let mut v = base();
            v[field] = value;
            assert!(request(v).unwrap().check().is_err(), "{field}");
        }
        let mut v = base();
        v["product"]["id"] = json!("a|b");
        assert!(request(v).unwrap().check().is_err());
    }

    #[test]
    fn input_hash_ignores_key_order_and_sees_every_input() {
        let a = request(json!({
            "product": {"id": "p1", "title": "Lamp", "attributes": {"a": 1, "b": 2}},
            "channel": "sms", "locale": "en"
        }))
        .unwrap();
        let b = request(json!({
            "locale": "en", "channel": "sms",
            "product": {"attributes": {"b": 2, "a": 1}, "title": "Lamp", "id": "p1"}
        }))
        .unwrap();
        assert_eq!(a.input_hash(), b.input_hash());
        let mut c = a.clone();
        c.product.attributes.insert("b".into(), json!(3));
        assert_ne!(a.input_hash(), c.input_hash());
        let mut d = a.clone();
        d.locale = Locale::ZhCn;
        assert_ne!(a.input_hash(), d.input_hash());
    }

    #[test]
    fn catalog_lines_report_their_errors() {
        let text = concat!(
            r#"{"item_id": "a", "title": "A", "description": "ignored", "in_stock": true, "selling_points": ["Tie waist"]}"#,
            "\n\nnot json\n",
            r#"{"item_id": "b", "title": ""}"#,
            "\n",
            r#"{"id": "c", "title": "C"}"#,
            "\n",
            r#"{"item_id": "d/1", "title": "D"}"#,
        );
        let (products, bad) = parse_catalog(text);
        assert_eq!(products.len(), 1);
        assert_eq!(products[0].id, "a");
        assert_eq!(products[0].selling_points, ["Tie waist"]);
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        assert!(bad[2].reason.contains("`id`"), "{bad:?}");
        // A valid catalog id that cannot key a draft.
        assert!(bad[3].reason.contains("'/'"), "{bad:?}");
    }
}
