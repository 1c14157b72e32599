//! The catalog contract, read by the indexer (recommendations), the copy batch and the copy
//! scheduler: JSONL, one item per line. A bad line is reported with its number and skipped; it
//! never fails the rest of the catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use shopmind_jsonl::BadLine;
use shopmind_jsonl::Record;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    pub item_id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// A path such as `Women > Dresses > Summer`.
    #[serde(default)]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default = "in_stock_default")]
    pub in_stock: bool,
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Short claims the shop stands behind (bullet points), which copy may use as facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selling_points: Vec<String>,
    /// When the item was added to the shop: an RFC 3339 time or a `YYYY-MM-DD` date (UTC).
    /// Orders a new shop's first lists, newest first, until shoppers' behaviour says more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

fn in_stock_default() -> bool {
    true
}

impl CatalogItem {
    /// The text the encoder sees: what a shopper would read about the item, most telling first
    /// (the encoder truncates at its max length).
    pub fn text(&self) -> String {
        let mut parts = vec![self.title.trim().to_owned()];
        if !self.category.trim().is_empty() {
            parts.push(self.category.trim().to_owned());
        }
        if let Some(b) = self.brand.as_deref().filter(|b| !b.trim().is_empty()) {
            parts.push(b.trim().to_owned());
        }
        for (k, v) in &self.attributes {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{k}: {v}"));
        }
        for point in self.selling_points.iter().map(|p| p.trim()) {
            if !point.is_empty() {
                parts.push(point.to_owned());
            }
        }
        if !self.description.trim().is_empty() {
            parts.push(self.description.trim().to_owned());
        }
        parts.join(". ")
    }

    /// [`Self::created_at`] as Unix seconds; `None` when absent or unreadable (which
    /// [`parse_catalog`] reports).
    pub fn created_unix(&self) -> Option<i64> {
        self.created_at.as_deref().and_then(unix_seconds)
    }

    fn check(&self) -> Result<(), String> {
        check_item_id(&self.item_id)?;
        if self.title.trim().is_empty() {
            return Err("title is empty".into());
        }
        if let Some(p) = self.price {
            if !p.is_finite() || p < 0.0 {
                return Err(format!("price {p} must be a non-negative number"));
            }
        }
        if let Some(c) = &self.currency {
            if c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(format!(
                    "currency {c:?} must be an ISO 4217 code such as EUR"
                ));
            }
        }
        if let Some(t) = &self.created_at {
            if unix_seconds(t).is_none() {
                return Err(format!(
                    "created_at {t:?} must be an RFC 3339 time (2026-03-01T09:00:00Z) or a date (2026-03-01)"
                ));
            }
        }
        Ok(())
    }
}

/// The contract's rule for an `item_id`, for readers that take one from elsewhere (a URL).
/// The same rule as for every id a behaviour event carries: an item whose id an event may not
/// name could never be viewed, carted or bought.
pub fn check_item_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c == '|') {
        return Err("item_id must be 1-128 bytes without control characters or '|'".into());
    }
    Ok(())
}

fn unix_seconds(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let mut parts = text.splitn(3, '-');
    let mut number = || parts.next().filter(|p| p.len() >= 2)?.parse::<u16>().ok();
    let (year, month, day) = (number()?, number()?, number()?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?);
    Some(date.ok()?.midnight().assume_utc().unix_timestamp())
}

#[derive(Debug, Clone, Default)]
pub struct ParsedCatalog {
    pub items: Vec<CatalogItem>,
    pub bad: Vec<BadLine>,
}

/// Parses a JSONL catalog. Blank lines are skipped; a repeated `item_id` keeps the first line
/// and reports the later ones.
pub fn parse_catalog(text: &str) -> ParsedCatalog {
    parse_catalog_with(text, |_| Ok(()))
}

/// [`parse_catalog`] with a reader's own rule on top (e.g. ids that must also fit a key):
/// an item it refuses is reported with its line number like any other bad line.
pub fn parse_catalog_with(
    text: &str,
    also: impl Fn(&CatalogItem) -> Result<(), String>,
) -> ParsedCatalog {
    let (items, bad) = shopmind_jsonl::parse_lines(text, |item: &CatalogItem| {
        item.check().and_then(|()| also(item))
    });
    ParsedCatalog { items, bad }
}

impl Record for CatalogItem {
    fn key(&self) -> &str {
        &self.item_id
    }
    fn repeated(&self) -> String {
        format!("item_id {:?} repeats an earlier line", self.item_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_with_their_number_and_skipped() {
        let text = concat!(
            r#"{"item_id":"a","title":"Linen dress","category":"Women > Dresses","price":59.0,"currency":"EUR"}"#,
            "\n\n",
            "not json\n",
            r#"{"item_id":"b","title":""}"#,
            "\n",
            r#"{"item_id":"c","title":"Sandals","price":-1}"#,
            "\n",
            r#"{"item_id":"a","title":"Again"}"#,
            "\n",
            r#"{"item_id":"d","title":"Hat","colour":"red"}"#,
            "\n",
            r#"{"item_id":"e","title":"Scarf","in_stock":false,"attributes":{"material":"silk"}}"#,
            "\n",
            r#"{"item_id":"f","title":"Cap","created_at":"last week"}"#,
            "\n",
            r#"{"item_id":"g","title":"Belt","created_at":"2026-03-01"}"#,
            "\n",
            r#"{"item_id":"h","title":"Bag","created_at":"2026-03-01T10:00:00+01:00"}"#,
        );
        let parsed = parse_catalog(text);
        let ids: Vec<_> = parsed.items.iter().map(|i| i.item_id.as_str()).collect();
        assert_eq!(ids, ["a", "e", "g", "h"]);
        let lines: Vec<_> = parsed.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 9]);
        assert!(parsed.bad[5].reason.contains("created_at"));
        // 2026-03-01 is day 20513 of the Unix epoch; 10:00+01:00 is 09:00 UTC.
        assert_eq!(parsed.items[2].created_unix(), Some(20_513 * 86_400));
        assert_eq!(
            parsed.items[3].created_unix(),
            Some(20_513 * 86_400 + 9 * 3600)
        );
        assert_eq!(parsed.items[0].created_unix(), None);
        assert!(parsed.bad[2].reason.contains("price"));
        assert!(parsed.bad[3].reason.contains("repeats"));
        assert!(
            parsed.bad[4].reason.contains("colour"),
            "{:?}",
            parsed.bad[4]
        );
        assert!(parsed.items[0].in_stock);
        assert!(!parsed.items[1].in_stock);
        assert_eq!(parsed.items[1].text(), "Scarf. material: silk");
    }

    #[test]
    fn an_item_id_no_event_could_name_is_a_bad_line() {
        let parsed = parse_catalog(concat!(
            r#"{"item_id":"ok-1","title":"Hat"}"#,
            "\n",
            r#"{"item_id":"sku|red","title":"Scarf"}"#,
            "\n",
            r#"{"item_id":"tab\tid","title":"Cap"}"#,
        ));
        let ids: Vec<_> = parsed.items.iter().map(|i| i.item_id.as_str()).collect();
        assert_eq!(ids, ["ok-1"]);
        assert_eq!(parsed.bad.len(), 2);
        assert!(parsed.bad[0].reason.contains("'|'"), "{:?}", parsed.bad[0]);
        let long = "x".repeat(129);
        assert!(check_item_id(&long).is_err());
        assert!(check_item_id(&"x".repeat(128)).is_ok());
    }
}
