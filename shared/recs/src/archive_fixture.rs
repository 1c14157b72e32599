//! A synthetic event archive for the signals tests: shoppers in bursts around midnights,
//! session ids and anonymous shoppers, redelivered objects, an unreadable line and a
//! misfiled event.

use std::collections::BTreeMap;

use bytes::Bytes;
use shopmind_profiles::EventType;
use shopmind_storage::BlobStore;

use crate::cooc::{day_of, TimedEvent, DAY};
use crate::window::day_prefix;

pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub(crate) const DAY0: i64 = 20_400; // 2025-11-09

/// Shoppers in bursts, half of them around a midnight, some with session ids (one
/// reused after a long pause), some anonymous; weighted and unweighted kinds.
pub(crate) fn archive(seed: u64, days: i64) -> Vec<TimedEvent> {
    let mut rng = Rng(seed);
    let kinds = [
        EventType::View,
        EventType::View,
        EventType::AddToCart,
        EventType::Purchase,
        EventType::Review,
        EventType::Search,
    ];
    let mut out = Vec::new();
    for u in 0..60u64 {
        let mut at = if rng.below(2) == 0 {
            (DAY0 + 1 + rng.below(days as u64 - 1) as i64) * DAY - 3600 + rng.below(7200) as i64
        } else {
            DAY0 * DAY + rng.below((days * DAY) as u64) as i64
        };
        for burst in 0..1 + rng.below(4) {
            let sid = match rng.below(3) {
                0 => None,
                1 => Some(format!("s{u}-{burst}")),
                _ => Some(format!("s{u}")),
            };
            for k in 0..1 + rng.below(6) {
                let mut ev = TimedEvent::on_item(
                    format!("e{u}-{burst}-{k}"),
                    format!("u{u}"),
                    kinds[rng.below(kinds.len() as u64) as usize],
                    format!("i{}", rng.below(25) * rng.below(25) / 25),
                    at,
                );
                ev.event.session_id = sid.clone();
                if u.is_multiple_of(7) {
                    ev.event.anonymous_id = ev.event.user_id.take();
                }
                out.push(ev);
                at += [10, 300, 1700, 2000, 4 * 3600][rng.below(5) as usize];
            }
            at += [600, 3000, 9 * 3600, 20 * 3600][rng.below(4) as usize];
        }
    }
    out.retain(|e| day_of(e.at) < DAY0 + days);
    out
}

/// Writes each day's events in three objects, a few twice (redelivered batches), with an
/// unreadable line on the first day and one event filed under the wrong date.
pub(crate) async fn write(blobs: &dyn BlobStore, events: &[TimedEvent], tag: &str) {
    let mut objects: BTreeMap<String, Vec<&TimedEvent>> = BTreeMap::new();
    for (i, ev) in events.iter().enumerate() {
        let mut day = day_of(ev.at);
        if i == misfiled(events) {
            day += 1;
        }
        for copy in 0..1 + usize::from(i.is_multiple_of(9)) {
            objects
                .entry(format!("{}{tag}{}.jsonl", day_prefix(day), (i + copy) % 3))
                .or_default()
                .push(ev);
        }
    }
    for (n, (k, evs)) in objects.into_iter().enumerate() {
        let mut body = crate::cooc::archive_object(evs).unwrap();
        if n == 0 {
            body.extend_from_slice(b"{not json\n");
        }
        blobs.put_blob(&k, Bytes::from(body)).await.unwrap();
    }
}

/// The event `write` files under the next day's date: the first one of the first day.
pub(crate) fn misfiled(events: &[TimedEvent]) -> usize {
    events
        .iter()
        .position(|e| day_of(e.at) == DAY0)
        .unwrap_or(0)
}

pub(crate) fn category(id: &str) -> Option<String> {
    Some(
        if id.len().is_multiple_of(2) {
            "Home > Lamps"
        } else {
            "Garden"
        }
        .into(),
    )
}
