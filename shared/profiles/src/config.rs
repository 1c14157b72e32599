//! Profile-updater settings, from the environment at cold start.

use crate::error::ProfileError;
use crate::event::EventType;

/// Per-type weights for affinities (and for item vectors in the profile embedding).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub view: f64,
    pub add_to_cart: f64,
    pub remove_from_cart: f64,
    pub purchase: f64,
    /// Multiplied by (rating − 3): a 5-star review counts +2×, a 1-star −2×.
    pub review_per_star: f64,
    /// Weight of a search query's embedding in the profile embedding.
    pub search: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            view: 1.0,
            add_to_cart: 3.0,
            remove_from_cart: -1.0,
            purchase: 5.0,
            review_per_star: 1.0,
            search: 1.0,
        }
    }
}

/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_PROFILE_HALF_LIFE_DAYS` | `30` |
/// | `SHOPMIND_EVENT_RETENTION_DAYS` | `180`: older events are ignored (and counted) |
/// | `SHOPMIND_EVENT_MAX_SKEW_SECS` | `300`: events further in the future are rejected |
/// | `SHOPMIND_PROFILE_RECENT_ITEMS` | `50` |
/// | `SHOPMIND_PROFILE_PURCHASED_ITEMS` | `200` |
/// | `SHOPMIND_PROFILE_WEIGHTS` | `view=1,add_to_cart=3,remove_from_cart=-1,purchase=5,review_per_star=1,search=1` |
#[derive(Debug, Clone, PartialEq)]
pub struct UpdaterConfig {
    pub half_life_days: f64,
    pub retention_days: i64,
    pub max_future_skew_secs: i64,
    pub recent_limit: usize,
    pub purchased_limit: usize,
    /// Event ids remembered in the profile itself for atomic de-duplication.
    pub applied_window: usize,
    /// Optimistic-concurrency attempts before giving up (the record is then retried by SQS).
    pub max_attempts: u32,
    pub weights: Weights,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        Self {
            half_life_days: 30.0,
            retention_days: 180,
            max_future_skew_secs: 300,
            recent_limit: 50,
            purchased_limit: 200,
            applied_window: 500,
            max_attempts: 50,
            weights: Weights::default(),
        }
    }
}

impl UpdaterConfig {
    pub fn half_life_secs(&self) -> f64 {
        self.half_life_days * 86_400.0
    }

    pub fn weight(&self, kind: EventType, value: Option<f64>) -> f64 {
        let w = &self.weights;
        match kind {
            EventType::View => w.view,
            EventType::AddToCart => w.add_to_cart * value.unwrap_or(1.0).clamp(1.0, 10.0),
            EventType::RemoveFromCart => w.remove_from_cart,
            EventType::Purchase => w.purchase * value.unwrap_or(1.0).clamp(1.0, 10.0),
            EventType::Review => w.review_per_star * (value.unwrap_or(3.0).min(5.0) - 3.0),
            EventType::Search | EventType::Identify => 0.0,
        }
    }

    pub fn from_env() -> Result<Self, ProfileError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ProfileError> {
        let d = Self::default();
        fn num<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &str,
            default: T,
        ) -> Result<T, ProfileError> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| ProfileError::Config(format!("{name}={v:?} is not a number"))),
            }
        }
        let mut cfg = Self {
            half_life_days: num(&get, "SHOPMIND_PROFILE_HALF_LIFE_DAYS", d.half_life_days)?,
            retention_days: num(&get, "SHOPMIND_EVENT_RETENTION_DAYS", d.retention_days)?,
            max_future_skew_secs: num(
                &get,
                "SHOPMIND_EVENT_MAX_SKEW_SECS",
                d.max_future_skew_secs,
            )?,
            recent_limit: num(&get, "SHOPMIND_PROFILE_RECENT_ITEMS", d.recent_limit)?,
            purchased_limit: num(&get, "SHOPMIND_PROFILE_PURCHASED_ITEMS", d.purchased_limit)?,
            ..d
        };
        if !cfg.half_life_days.is_finite()
            || cfg.half_life_days <= 0.0
            || cfg.retention_days <= 0
            || cfg.max_future_skew_secs < 0
        {
            return Err(ProfileError::Config(
                "half-life and retention must be positive, skew not negative".into(),
            ));
        }
        if let Some(spec) = get("SHOPMIND_PROFILE_WEIGHTS").filter(|v| !v.trim().is_empty()) {
            for part in spec.split(',') {
                let (k, v) = part.split_once('=').ok_or_else(|| {
                    ProfileError::Config(format!("weight {part:?} is not name=value"))
                })?;
                let v: f64 = v.trim().parse().map_err(|_| {
                    ProfileError::Config(format!("weight {part:?} is not a number"))
                })?;
                let w = &mut cfg.weights;
                match k.trim() {
                    "view" => w.view = v,
                    "add_to_cart" => w.add_to_cart = v,
                    "remove_from_cart" => w.remove_from_cart = v,
                    "purchase" => w.purchase = v,
                    "review_per_star" => w.review_per_star = v,
                    "search" => w.search = v,
                    other => return Err(ProfileError::Config(format!("unknown weight {other:?}"))),
                }
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_counts_for_more_than_a_view() {
        let c = UpdaterConfig::default();
        assert!(c.weight(EventType::Purchase, None) > c.weight(EventType::View, None));
        assert!(c.weight(EventType::Review, Some(1.0)) < 0.0);
        assert_eq!(c.weight(EventType::Search, None), 0.0);
    }

    #[test]
    fn weights_and_numbers_from_the_environment() {
        let c = UpdaterConfig::from_lookup(|k| match k {
            "SHOPMIND_PROFILE_WEIGHTS" => Some("view=0.5, purchase=8".into()),
            "SHOPMIND_PROFILE_HALF_LIFE_DAYS" => Some("7".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.weights.view, 0.5);
        assert_eq!(c.weights.purchase, 8.0);
        assert_eq!(c.half_life_days, 7.0);
        assert!(UpdaterConfig::from_lookup(
            |k| (k == "SHOPMIND_PROFILE_WEIGHTS").then(|| "click=1".into())
        )
        .is_err());
        assert!(UpdaterConfig::from_lookup(
            |k| (k == "SHOPMIND_PROFILE_HALF_LIFE_DAYS").then(|| "0".into())
        )
        .is_err());
    }
}
