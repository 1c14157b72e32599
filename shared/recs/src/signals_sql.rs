//! The signals aggregation as one SQL statement, for archives too large for one invocation:
//! Amazon Athena runs it over the archive's Glue table (`infra/template.yaml`), and the job
//! reads the tallies it returns and makes the lists here, with the same [`finish`] as the
//! Lambda paths.
//!
//! The statement is Athena's dialect (Trino). Athena cannot run here, so the tests run the
//! same text in DuckDB (`infra/scripts/duckdb_signals.py`, which defines the three Trino
//! functions DuckDB names differently) over the same archive files and compare its tallies
//! with [`crate::build_signals`]'s exactly.
//!
//! What the SQL computes, row for row what the Rust code does:
//! - the events of each `dt=` partition in the window, one per `event_id` per partition (the
//!   first object's copy, as keys sort), only those whose time falls on that date, and only
//!   lines an event parses from (an id, a known type, an RFC 3339 time);
//! - per shopper (`user_id`, else `anonymous_id`), the weighted item events ordered by time
//!   then id, cut into sessions where [`SignalsConfig::continues`] would cut;
//! - per session and item the strongest weight and the relation of its first event with that
//!   weight; per pair of items in a session the product of weights, summed, the sessions
//!   together and the strongest of the two items' weaker relation; per item Σ weight²;
//! - per item the decayed popularity and trending sums, w·2^(−(now − min(at, now))/h).
//!
//! The result has one row per item (`item`), per pair (`pair`) and one total (`total`):
//! `kind, a, b, x, y, z, n, m` with
//! - `item`: a = item, x = Σ w², y = popularity, z = trending;
//! - `pair`: a < b, x = Σ wₐ·w_b, n = sessions together, m = relation (0 view, 1 cart,
//!   2 purchase); for cosine lists only the pairs within either item's best `top_m` (the
//!   result grows with the items, not with the window's pairs);
//! - `total`: n = events, m = sessions.
//!
//! Athena writes a result as CSV (a header, every value quoted, NULL empty).

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use crate::cooc::{finish, pair_key, IdMap, Interner, Relation, Signals, SignalsConfig, Tally};
use crate::error::RecsError;
use crate::window::{date_of, window_days};

/// The shape of an RFC 3339 time, which the Rust reader requires (`T` and `Z` in either
/// case): ISO 8601 parsers accept more (a date alone, no offset, a space).
const RFC3339: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

/// Pairs returned past an item's `top_m`, so float noise at the cut cannot drop one.
const KEEP_MARGIN: usize = 8;

/// The result's columns, in order.
pub const COLUMNS: [&str; 8] = ["kind", "a", "b", "x", "y", "z", "n", "m"];

/// A table name as SQL may quote it: `name` or `database.name`, letters, digits and `_`.
fn check_table(table: &str) -> Result<String, RecsError> {
    let parts: Vec<&str> = table.split('.').collect();
    let ok = (1..=2).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !ok {
        return Err(RecsError::Config(format!(
            "Athena table {table:?}: expected `table` or `database.table` of letters, digits and _"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// A finite number as an SQL double literal that reads back as the same f64.
fn double(v: f64) -> Result<String, RecsError> {
    if !v.is_finite() {
        return Err(RecsError::Config(format!("{v} is not a finite number")));
    }
    // `{:e}` is the shortest round-tripping form with an exponent: a DOUBLE literal in both
    // Trino and DuckDB (a plain `1.5` would be DECIMAL).
    Ok(format!("{v:e}"))
}

/// The statement for the window ending at `now`, over `table` (the Glue table of the
/// archive: columns as the event contract, partitioned by `dt` as `YYYY-MM-DD` text).
pub fn signals_sql(table: &str, now: i64, cfg: &SignalsConfig) -> Result<String, RecsError> {
    cfg.check_window()?;
    let table = check_table(table)?;
    let days = window_days(now, cfg);
    let (from, to) = (date_of(*days.start()), date_of(*days.end()));
    let (view, cart, purchase, review) = (
        double(cfg.view)?,
        double(cfg.cart)?,
        double(cfg.purchase)?,
        double(cfg.review)?,
    );
    let (pop_h, trend_h) = (
        double(cfg.popularity_half_life_secs)?,
        double(cfg.trending_half_life_secs)?,
    );
    let (gap, max) = (cfg.session_gap_secs, cfg.session_max_secs);
    // EASE needs every pair; cosine drops pairs seen in fewer sessions than the minimum.
    let min_pairs = if cfg.ease_lambda.is_some() {
        1
    } else {
        cfg.min_sessions.max(1)
    };
    // Cosine lists are cut here, so the result is bounded by items × top_m, not by the
    // window's pairs: a pair is returned while it ranks within either item's best top_m
    // (plus a margin, so a last-bit difference in a score cannot drop one Rust would keep;
    // `finish` makes the exact cut). EASE solves over every pair and gets them all.
    let kept = match cfg.ease_lambda {
        None if cfg.top_m > 0 => {
            let keep = cfg.top_m + KEEP_MARGIN;
            format!("rank_a <= {keep} OR rank_b <= {keep}")
        }
        _ => "TRUE".into(),
    };
    let order = "ORDER BY secs, event_id";
    Ok(format!(
        r#"WITH raw AS (
  SELECT event_id, coalesce(user_id, anonymous_id, '') AS shopper, "type" AS kind, item_id,
         session_id, dt, "$path" AS path,
         CAST(floor(to_unixtime(try(from_iso8601_timestamp(upper("timestamp"))))) AS BIGINT) AS secs,
         regexp_like("timestamp", '{RFC3339}') AS rfc3339
  FROM {table}
  WHERE dt BETWEEN '{from}' AND '{to}'
),
parsed AS (
  SELECT *, row_number() OVER (PARTITION BY dt, event_id ORDER BY path) AS copy
  FROM raw
  WHERE event_id IS NOT NULL AND secs IS NOT NULL AND rfc3339
    AND kind IN ('view', 'add_to_cart', 'remove_from_cart', 'purchase', 'search', 'review', 'identify')
),
kept AS (
  SELECT event_id, shopper, kind, item_id, session_id, secs
  FROM parsed
  WHERE copy = 1
    AND floor(CAST(secs AS DOUBLE) / 86400e0) = date_diff('day', DATE '1970-01-01', CAST(dt AS DATE))
),
weighted AS (
  SELECT shopper, event_id, item_id, session_id, secs,
         CASE kind WHEN 'view' THEN {view} WHEN 'add_to_cart' THEN {cart}
                   WHEN 'purchase' THEN {purchase} ELSE {review} END AS w,
         CASE kind WHEN 'view' THEN 0 WHEN 'add_to_cart' THEN 1 ELSE 2 END AS rel,
         lag(secs) OVER (PARTITION BY shopper {order}) AS prev_secs,
         lag(session_id) OVER (PARTITION BY shopper {order}) AS prev_sid
  FROM kept
  WHERE item_id IS NOT NULL AND kind IN ('view', 'add_to_cart', 'purchase', 'review')
),
cut AS (
  SELECT *,
         CASE WHEN prev_secs IS NULL THEN 1
              WHEN secs - prev_secs > {max} THEN 1
              WHEN session_id IS NOT NULL AND prev_sid IS NOT NULL
                THEN CASE WHEN session_id = prev_sid THEN 0 ELSE 1 END
              WHEN secs - prev_secs > {gap} THEN 1
              ELSE 0 END AS starts
  FROM weighted
),
sessions AS (
  SELECT *, sum(starts) OVER (PARTITION BY shopper {order} ROWS UNBOUNDED PRECEDING) AS session
  FROM cut
),
basket AS (
  SELECT shopper, session, item_id, w, rel
  FROM (
    SELECT shopper, session, item_id, w, rel,
           row_number() OVER (PARTITION BY shopper, session, item_id ORDER BY w DESC, secs, event_id) AS r
    FROM sessions
  ) firsts
  WHERE r = 1
),
pairs AS (
  SELECT x.item_id AS a, y.item_id AS b, sum(x.w * y.w) AS dot, count(*) AS n,
         max(least(x.rel, y.rel)) AS rel
  FROM basket x
  JOIN basket y ON x.shopper = y.shopper AND x.session = y.session AND x.item_id < y.item_id
  GROUP BY x.item_id, y.item_id
  HAVING count(*) >= {min_pairs}
),
norms AS (
  SELECT item_id, sum(w * w) AS norm FROM basket GROUP BY item_id
),
ranked AS (
  SELECT scored.*,
         row_number() OVER (PARTITION BY a ORDER BY score DESC, b) AS rank_a,
         row_number() OVER (PARTITION BY b ORDER BY score DESC, a) AS rank_b
  FROM (
    SELECT pairs.*, dot / sqrt(na.norm * nb.norm) AS score
    FROM pairs
    JOIN norms na ON na.item_id = pairs.a
    JOIN norms nb ON nb.item_id = pairs.b
    WHERE na.norm * nb.norm > 0
  ) scored
),
decayed AS (
  SELECT item_id,
         sum(w * pow(2e0, CAST(least(secs, {now}) - {now} AS DOUBLE) / {pop_h})) AS popular,
         sum(w * pow(2e0, CAST(least(secs, {now}) - {now} AS DOUBLE) / {trend_h})) AS trending
  FROM sessions
  GROUP BY item_id
)
SELECT 'item' AS kind, norms.item_id AS a, CAST(NULL AS VARCHAR) AS b, norm AS x,
       popular AS y, trending AS z, CAST(NULL AS BIGINT) AS n, CAST(NULL AS BIGINT) AS m
FROM norms JOIN decayed ON norms.item_id = decayed.item_id
UNION ALL
SELECT 'pair', a, b, dot, NULL, NULL, n, rel FROM ranked
WHERE {kept}
UNION ALL
SELECT 'total', NULL, NULL, NULL, NULL, NULL,
       (SELECT count(*) FROM kept),
       (SELECT count(*) FROM (SELECT DISTINCT shopper, session FROM sessions) s)
"#
    ))
}

/// An SQL engine over the event archive's table (Amazon Athena in AWS; DuckDB in the tests).
#[async_trait]
pub trait SqlEngine: Send + Sync + std::fmt::Debug {
    /// The table the statement reads: `table` or `database.table`.
    fn table(&self) -> &str;
    /// Runs one statement to the end and returns its result as Athena writes it (CSV).
    async fn query(&self, sql: &str) -> Result<SqlResult, RecsError>;
}

/// A finished query's result and what it cost.
#[derive(Debug, Clone)]
pub struct SqlResult {
    pub csv: Bytes,
    pub stats: SqlStats,
}

/// For the job's report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SqlStats {
    pub query_id: String,
    pub bytes_scanned: Option<i64>,
    pub engine_ms: Option<i64>,
    pub result_bytes: usize,
}

/// The signals of the window ending at `now`, aggregated by `engine`.
pub async fn signals_by_sql(
    engine: &dyn SqlEngine,
    category_of: &(dyn Fn(&str) -> Option<String> + Sync),
    now: i64,
    cfg: &SignalsConfig,
) -> Result<(Signals, SqlStats), RecsError> {
    let sql = signals_sql(engine.table(), now, cfg)?;
    let result = engine.query(&sql).await?;
    let signals = signals_from_sql_result(&result.csv, category_of, cfg)?;
    Ok((signals, result.stats))
}

/// What the statement returned, as the Lambda paths hold it before the lists are made.
#[derive(Debug, Default)]
pub(crate) struct SqlTallies {
    pub(crate) names: Interner,
    pub(crate) tally: Tally,
    pub(crate) popular: IdMap<f64>,
    pub(crate) trending: IdMap<f64>,
    pub(crate) events: usize,
}

fn relation_of(code: u64) -> Option<Relation> {
    match code {
        0 => Some(Relation::CoView),
        1 => Some(Relation::CoCart),
        2 => Some(Relation::CoPurchase),
        _ => None,
    }
}

/// Reads the statement's CSV result (Athena's: a header row, values quoted, NULL empty).
pub(crate) fn parse_tallies(csv_body: &[u8]) -> Result<SqlTallies, RecsError> {
    let bad = |row: usize, why: String| RecsError::Corrupt {
        what: "signals query result".into(),
        reason: format!("row {row}: {why}"),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_body);
    let header = reader
        .headers()
        .map_err(|e| bad(0, e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if header != COLUMNS {
        return Err(bad(0, format!("columns {header:?}, expected {COLUMNS:?}")));
    }
    let mut out = SqlTallies::default();
    let mut totals = 0;
    let mut pairs_seen = HashSet::new();
    for (i, rec) in reader.records().enumerate() {
        let row = i + 1;
        let rec = rec.map_err(|e| bad(row, e.to_string()))?;
        let field = |c: usize| rec.get(c).unwrap_or("");
        let text = |c: usize| -> Result<&str, RecsError> {
            Some(field(c))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(row, format!("no {}", COLUMNS[c])))
        };
        let num = |c: usize| -> Result<f64, RecsError> {
            text(c)?
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    bad(
                        row,
                        format!("{} {:?} is not a number", COLUMNS[c], field(c)),
                    )
                })
        };
        let count = |c: usize| -> Result<u64, RecsError> {
            text(c)?
                .parse::<u64>()
                .map_err(|_| bad(row, format!("{} {:?} is not a count", COLUMNS[c], field(c))))
        };
        match field(0) {
            "item" => {
                let id = out.names.id(text(1)?);
                if out.tally.norm.insert(id, num(3)?).is_some() {
                    return Err(bad(row, format!("item {:?} twice", field(1))));
                }
                out.popular.insert(id, num(4)?);
                out.trending.insert(id, num(5)?);
            }
            "pair" => {
                let (a, b) = (out.names.id(text(1)?), out.names.id(text(2)?));
                if a == b || !pairs_seen.insert(pair_key(a, b)) {
                    return Err(bad(
                        row,
                        format!("pair {:?} {:?} repeated", field(1), field(2)),
                    ));
                }
                let n = u32::try_from(count(6)?).map_err(|_| bad(row, "n too large".into()))?;
                let rel = relation_of(count(7)?)
                    .ok_or_else(|| bad(row, format!("relation {:?}", field(7))))?;
                out.tally.add_pair(pair_key(a, b), num(3)?, n, rel);
            }
            "total" => {
                totals += 1;
                out.events = usize::try_from(count(6)?).map_err(|_| bad(row, "events".into()))?;
                out.tally.sessions =
                    usize::try_from(count(7)?).map_err(|_| bad(row, "sessions".into()))?;
            }
            other => return Err(bad(row, format!("unknown kind {other:?}"))),
        }
    }
    if totals != 1 {
        return Err(bad(0, format!("{totals} total rows, expected 1")));
    }
    // Every item of a pair has its own row: a pair without one would be scored against a
    // zero norm.
    for &(a, b) in &pairs_seen {
        for id in [a, b] {
            if !out.tally.norm.contains_key(&id) {
                return Err(bad(
                    0,
                    format!(
                        "item {:?} is in a pair but has no item row",
                        out.names.names[id as usize]
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The signals from the statement's CSV result: the same lists the Lambda paths make.
pub fn signals_from_sql_result(
    csv_body: &[u8],
    category_of: &dyn Fn(&str) -> Option<String>,
    cfg: &SignalsConfig,
) -> Result<Signals, RecsError> {
    let t = parse_tallies(csv_body)?;
    Ok(finish(
        &t.names.names,
        t.tally,
        &t.popular,
        &t.trending,
        t.events,
        category_of,
        cfg,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use bytes::Bytes;
    use shopmind_storage::embedded::EmbeddedStore;
    use shopmind_storage::BlobStore;

    use super::*;
    use crate::archive_fixture::{archive, category, write, DAY0};
    use crate::cooc::build_signals;
    use crate::window::read_window;

    /// `sql` run by DuckDB over the archive in an embedded store's directory (its blobs are
    /// files under `blobs/`), as Athena would return it.
    fn duckdb(store_dir: &Path, sql: &str) -> Vec<u8> {
        shopmind_e2e::duckdb_signals(&store_dir.join("blobs"), sql).csv
    }

    fn line(id: &str, kind: &str, item: &str, ts: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","user_id":"edge","type":"{kind}","item_id":"{item}","timestamp":"{ts}"}}"#
        )
    }

    /// Lines the generated archive does not have: other offsets, fractions and cases of
    /// RFC 3339, and lines the Rust reader refuses that an ISO 8601 parser or a JSON
    /// table would take.
    async fn edge_lines(blobs: &dyn BlobStore) {
        let day = date_of(DAY0 + 1);
        let lines = [
            // 22:30 UTC the day before: misfiled under this date.
            line("x1", "view", "i1", &format!("{day}T00:30:00+02:00")),
            line("x2", "view", "i2", &format!("{day}T10:00:00.750-03:00")),
            line("x3", "add_to_cart", "i3", &format!("{day}t13:10:00z")),
            line("x4", "purchase", "i1", &format!("{day}T13:20:00Z")),
            line("x5", "view", "i4", &day),
            line("x6", "view", "i4", &format!("{day} 13:00:00")),
            line("x7", "wave", "i4", &format!("{day}T13:00:00Z")),
            line("x8", "view", "i4", "yesterday"),
            format!(
                r#"{{"event_id":"x9","user_id":"edge","item_id":"i4","timestamp":"{day}T13:00:00Z"}}"#
            ),
            "[1, 2]".to_owned(),
            line("x10", "search", "i4", &format!("{day}T13:30:00Z")),
        ];
        let body = lines.join("\n") + "\n";
        blobs
            .put_blob(&format!("events/dt={day}/edge.jsonl"), Bytes::from(body))
            .await
            .unwrap();
    }

    fn by_name(list: &[crate::Scored]) -> BTreeMap<&str, f64> {
        list.iter().map(|s| (s.item_id.as_str(), s.score)).collect()
    }

    fn assert_close(sql: &BTreeMap<&str, f64>, rust: &BTreeMap<&str, f64>, what: &str) {
        assert_eq!(
            sql.keys().collect::<Vec<_>>(),
            rust.keys().collect::<Vec<_>>(),
            "{what}: items"
        );
        for (k, r) in rust {
            let s = sql[k];
            assert!(
                (s - r).abs() <= 1e-12 * r.abs().max(1e-300),
                "{what} {k}: sql {s} rust {r}"
            );
        }
    }

    /// The statement, run by DuckDB over the archive's files, gives the Rust full
    /// recompute's tallies: neighbour lists bit for bit (the default weights are whole
    /// numbers, so the sums are exact whatever their order), the counts exactly, and the
    /// decayed sums to 1e-12 (exponentials added in another order).
    #[tokio::test]
    async fn the_athena_statement_run_by_duckdb_matches_the_rust_aggregation() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = EmbeddedStore::open(dir.path()).unwrap();
        let days = 6;
        write(&blobs, &archive(0x05EE_D0FA_7E4A, days), "a").await;
        edge_lines(&blobs).await;
        let now = (DAY0 + days - 1) * crate::cooc::DAY + 15 * 3600;
        for cfg in [
            SignalsConfig {
                window_days: days as u32,
                ..SignalsConfig::default()
            },
            SignalsConfig {
                window_days: 3,
                min_sessions: 2,
                // Below the items' neighbour counts: the statement's cut is exercised.
                top_m: 3,
                ..SignalsConfig::default()
            },
            SignalsConfig {
                window_days: days as u32,
                ease_lambda: Some(0.5),
                session_gap_secs: 600,
                ..SignalsConfig::default()
            },
        ] {
            let sql = signals_sql("shopmind.events", now, &cfg).unwrap();
            let from_sql =
                signals_from_sql_result(&duckdb(dir.path(), &sql), &category, &cfg).unwrap();
            let (events, _) = read_window(&blobs, window_days(now, &cfg)).await.unwrap();
            let rust = build_signals(&events, &category, now, &cfg);
            assert!(rust.sessions > 30 && !rust.neighbours.is_empty(), "{cfg:?}");
            let ids: Vec<&str> = events.iter().map(|e| e.event.event_id.as_str()).collect();
            if cfg.window_days == days as u32 {
                // Offsets, fractions and lower-case t/z read; the rest of the edge lines do not.
                let right = ["x2", "x3", "x4", "x10"];
                assert!(right.iter().all(|i| ids.contains(i)), "{ids:?}");
                let wrong = ["x1", "x5", "x6", "x7", "x8", "x9"];
                let read: Vec<&&str> = ids.iter().filter(|i| wrong.contains(i)).collect();
                assert!(read.is_empty(), "{read:?}");
            }
            assert_eq!(
                (from_sql.events, from_sql.sessions),
                (rust.events, rust.sessions)
            );
            assert_eq!(from_sql.neighbours, rust.neighbours, "{cfg:?}");
            assert_close(
                &by_name(&from_sql.popular),
                &by_name(&rust.popular),
                "popular",
            );
            assert_eq!(
                from_sql.trending.keys().collect::<Vec<_>>(),
                rust.trending.keys().collect::<Vec<_>>()
            );
            for (cat, list) in &rust.trending {
                assert_close(&by_name(&from_sql.trending[cat]), &by_name(list), cat);
            }
        }
    }

    const HEADER: &str = "\"kind\",\"a\",\"b\",\"x\",\"y\",\"z\",\"n\",\"m\"\n";

    fn parse(rows: &str) -> Result<SqlTallies, RecsError> {
        parse_tallies(format!("{HEADER}{rows}").as_bytes())
    }

    #[test]
    fn a_result_reads_as_tallies_with_quoted_names_and_athena_nulls() {
        let t = parse(
            "\"item\",\"a,\"\"1\"\"\",,\"2.0\",\"0.5\",\"1.5E-4\",,\n\
             \"item\",\"b\",,\"1.0\",\"1\",\"2\",,\n\
             \"pair\",\"a,\"\"1\"\"\",\"b\",\"1.0\",,,\"3\",\"2\"\n\
             \"total\",,,,,,\"7\",\"4\"\n",
        )
        .unwrap();
        assert_eq!(t.names.names, ["a,\"1\"", "b"]);
        assert_eq!((t.events, t.tally.sessions), (7, 4));
        assert_eq!(t.tally.pair[&(0, 1)], (1.0, 3, Relation::CoPurchase));
        assert_eq!((t.tally.norm[&0], t.trending[&0]), (2.0, 1.5e-4));
    }

    #[test]
    fn a_result_that_is_not_the_statement_s_is_refused_with_its_row() {
        let total = "\"total\",,,,,,\"1\",\"1\"\n";
        let item = "\"item\",\"a\",,\"1\",\"1\",\"1\",,\n";
        for (rows, says) in [
            (total.replace("total", "totals"), "unknown kind"),
            (String::new(), "0 total rows"),
            (format!("{total}{total}"), "2 total rows"),
            (format!("{item}\"pair\",\"a\",\"b\",\"1\",,,\"1\",\"0\"\n{total}"), "no item row"),
            (format!("{item}\"pair\",\"a\",\"a\",\"1\",,,\"1\",\"0\"\n{total}"), "repeated"),
            (format!("{item}{item}{total}"), "twice"),
            (format!("\"item\",\"a\",,\"NaN\",\"1\",\"1\",,\n{total}"), "not a number"),
            (format!("\"item\",,,\"1\",\"1\",\"1\",,\n{total}"), "row 1: no a"),
            (format!("{item}\"item\",\"b\",,\"1\",\"1\",\"1\",,\n\"pair\",\"a\",\"b\",\"1\",,,\"1\",\"7\"\n{total}"), "relation"),
        ] {
            let e = parse(&rows).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{rows:?}: {e:?}");
        }
        let e = parse_tallies(b"\"kind\",\"a\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("columns"), "{e}");
    }

    #[test]
    fn table_names_are_identifiers_and_settings_are_checked() {
        let cfg = SignalsConfig::default();
        let sql = signals_sql("db_1.events", 1_800_000_000, &cfg).unwrap();
        assert!(sql.contains(r#"FROM "db_1"."events""#));
        assert!(
            sql.contains("dt BETWEEN '2026-12-17' AND '2027-01-15'"),
            "{sql}"
        );
        for bad in ["", "a.b.c", "events; DROP TABLE x", "e\"x", "db."] {
            assert!(signals_sql(bad, 0, &cfg).is_err(), "{bad:?}");
        }
        let nan = SignalsConfig {
            view: f64::NAN,
            ..SignalsConfig::default()
        };
        assert!(signals_sql("events", 0, &nan).is_err());
    }
}
