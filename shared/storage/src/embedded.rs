//! The embedded store: redb (a pure-Rust, ACID, copy-on-write B-tree database — every commit
//! is durable and a crash mid-write leaves the last committed state) for records, and plain
//! files written atomically for blobs. The local default; no server, no account.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Result, StorageError};
use crate::types::*;
use crate::{BlobStore, ConversationStore, DraftStore, IdempotencyStore, ProfileStore};

const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles");
const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
const CONVERSATIONS_BY_OWNER: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("conversations_by_owner");
/// (handoff status, [`handoff_sort_key`]) of every handed-off conversation.
const HANDOFFS_BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("handoffs_by_status");
const TURNS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("turns");
const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("drafts");
const DRAFTS_BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("drafts_by_status");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    blobs: PathBuf,
}

fn db_err(op: &'static str) -> impl Fn(redb::Error) -> StorageError {
    move |e| StorageError::Backend {
        op,
        reason: e.to_string(),
    }
}

macro_rules! redb_try {
    ($op:literal, $e:expr) => {
        $e.map_err(|e| db_err($op)(e.into()))?
    };
}

/// One page of a `(status, sort key)` index: what `fetch` makes of each sort key after
/// `after` (`None` skips the row: gone, expired or filtered out), at most `limit` of them;
/// the last one's sort key when more follow.
fn index_page<T>(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    status: &str,
    after: Option<&str>,
    limit: usize,
    mut fetch: impl FnMut(&str) -> Result<Option<T>>,
) -> Result<(Vec<T>, Option<String>)> {
    let (mut items, mut last) = (Vec::new(), None);
    let start = after.unwrap_or_default();
    for entry in redb_try!("read", index.range((status, start)..)) {
        let (k, _) = redb_try!("read", entry);
        let (s, sort_key) = k.value();
        if s != status {
            break;
        }
        if after == Some(sort_key) {
            continue;
        }
        let Some(item) = fetch(sort_key)? else {
            continue;
        };
        if items.len() == limit {
            return Ok((items, last));
        }
        items.push(item);
        last = Some(sort_key.to_owned());
    }
    Ok((items, None))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`: `dir/shopmind.redb` and `dir/blobs/`.
    pub fn open(dir: &Path) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| StorageError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
        let db = redb_try!(
            "open embedded database",
            Database::create(dir.join("shopmind.redb"))
        );
        let txn = redb_try!("open embedded database", db.begin_write());
        {
            redb_try!("create tables", txn.open_table(PROFILES));
            redb_try!("create tables", txn.open_table(CONVERSATIONS));
            redb_try!("create tables", txn.open_table(CONVERSATIONS_BY_OWNER));
            redb_try!("create tables", txn.open_table(TURNS));
            redb_try!("create tables", txn.open_table(HANDOFFS_BY_STATUS));
            redb_try!("create tables", txn.open_table(DRAFTS));
            redb_try!("create tables", txn.open_table(DRAFTS_BY_STATUS));
            redb_try!("create tables", txn.open_table(IDEMPOTENCY));
        }
        redb_try!("create tables", txn.commit());
        Ok(Self {
            db: Arc::new(db),
            blobs,
        })
    }

    /// Runs blocking database work off the async executor.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::Backend {
                op: "embedded store task",
                reason: e.to_string(),
            })?
    }

    fn blob_path(&self, key: &str) -> Result<PathBuf> {
        let plain = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with(".tmp-"));
        if !plain {
            return Err(StorageError::InvalidKey(format!("blob key {key:?}")));
        }
        Ok(self.blobs.join(key))
    }
}

/// Shared by profiles and drafts: a versioned document under one key.
fn put_versioned(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    doc: &[u8],
    expected: Option<u64>,
    mut on_write: impl FnMut(&redb::WriteTransaction, Option<&[u8]>) -> Result<()>,
) -> Result<u64> {
    let txn = redb_try!("write", db.begin_write());
    let version = {
        let mut t = redb_try!("write", txn.open_table(table));
        let current: Option<Vec<u8>> = redb_try!("write", t.get(key)).map(|v| v.value().to_vec());
        let current_version = match &current {
            Some(bytes) => {
                Some(decode_doc::<Versioned<serde::de::IgnoredAny>>("record", bytes)?.version)
            }
            None => None,
        };
        if current_version != expected {
            return Err(StorageError::Conflict(format!(
                "{key}: expected version {expected:?}, stored {current_version:?}"
            )));
        }
        let version = expected.unwrap_or(0) + 1;
        let stored = wrap_version(version, doc);
        redb_try!("write", t.insert(key, stored.as_slice()));
        on_write(&txn, current.as_deref())?;
        version
    };
    redb_try!("commit", txn.commit());
    Ok(version)
}

/// `{"version": v, "value": <doc>}` without re-parsing `doc`.
fn wrap_version(version: u64, doc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len() + 32);
    out.extend_from_slice(format!("{{\"version\":{version},\"value\":").as_bytes());
    out.extend_from_slice(doc);
    out.push(b'}');
    out
}

#[async_trait]
impl ProfileStore for EmbeddedStore {
    async fn get_profile(&self, user_id: &str) -> Result<Option<Versioned<Json>>> {
        check_key_part(user_id)?;
        let key = user_id.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let t = redb_try!("read", txn.open_table(PROFILES));
            match redb_try!("read", t.get(key.as_str())) {
                Some(v) => Ok(Some(decode_doc("profile", v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_profile(
        &self,
        user_id: &str,
        profile: &Json,
        expected: Option<u64>,
    ) -> Result<u64> {
        check_key_part(user_id)?;
        let doc = encode_doc("profile", profile)?;
        let key = user_id.to_owned();
        self.blocking(move |db| put_versioned(db, PROFILES, &key, &doc, expected, |_, _| Ok(())))
            .await
    }

    async fn delete_profile(&self, user_id: &str) -> Result<bool> {
        check_key_part(user_id)?;
        let key = user_id.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("delete", db.begin_write());
            let removed = {
                let mut t = redb_try!("delete", txn.open_table(PROFILES));
                let removed = redb_try!("delete", t.remove(key.as_str())).is_some();
                removed
            };
            redb_try!("commit", txn.commit());
            Ok(removed)
        })
        .await
    }
}

#[async_trait]
impl ConversationStore for EmbeddedStore {
    async fn create_conversation(&self, meta: &ConversationMeta) -> Result<()> {
        check_key_part(&meta.id)?;
        check_key_part(&meta.owner)?;
        let doc = encode_doc("conversation", meta)?;
        let meta = meta.clone();
        self.blocking(move |db| {
            let txn = redb_try!("write", db.begin_write());
            {
                let mut t = redb_try!("write", txn.open_table(CONVERSATIONS));
                if let Some(existing) = redb_try!("write", t.get(meta.id.as_str())) {
                    let old: ConversationMeta = decode_doc("conversation", existing.value())?;
                    if old.expires_at > now_secs() {
                        return Err(StorageError::Conflict(format!(
                            "conversation {} exists",
                            meta.id
                        )));
                    }
                }
                redb_try!("write", t.insert(meta.id.as_str(), doc.as_slice()));
                let mut owners = redb_try!("write", txn.open_table(CONVERSATIONS_BY_OWNER));
                redb_try!(
                    "write",
                    owners.insert((meta.owner.as_str(), meta.id.as_str()), ())
                );
            }
            redb_try!("commit", txn.commit());
            Ok(())
        })
        .await
    }

    async fn get_conversation(&self, id: &str) -> Result<Option<ConversationMeta>> {
        check_key_part(id)?;
        let id = id.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let t = redb_try!("read", txn.open_table(CONVERSATIONS));
            let meta: Option<ConversationMeta> = match redb_try!("read", t.get(id.as_str())) {
                Some(v) => Some(decode_doc("conversation", v.value())?),
                None => None,
            };
            Ok(meta.filter(|m| m.expires_at > now_secs()))
        })
        .await
    }

    async fn append_turn(&self, id: &str, turn: &Turn) -> Result<()> {
        check_key_part(id)?;
        let doc = encode_doc("turn", turn)?;
        let (id, seq) = (id.to_owned(), turn.seq);
        self.blocking(move |db| {
            let txn = redb_try!("write", db.begin_write());
            {
                let convs = redb_try!("write", txn.open_table(CONVERSATIONS));
                if redb_try!("write", convs.get(id.as_str())).is_none() {
                    return Err(StorageError::NotFound(format!("conversation {id}")));
                }
                let mut t = redb_try!("write", txn.open_table(TURNS));
                if redb_try!("write", t.get((id.as_str(), seq))).is_some() {
                    return Err(StorageError::Conflict(format!("turn {seq} of {id} exists")));
                }
                redb_try!("write", t.insert((id.as_str(), seq), doc.as_slice()));
            }
            redb_try!("commit", txn.commit());
            Ok(())
        })
        .await
    }

    async fn list_turns(&self, id: &str, cursor: Option<&str>, limit: usize) -> Result<Page<Turn>> {
        check_key_part(id)?;
        let after = parse_turn_cursor(cursor)?;
        let (id, limit) = (id.to_owned(), limit.max(1));
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let t = redb_try!("read", txn.open_table(TURNS));
            let now = now_secs();
            let mut items = Vec::new();
            let mut more = false;
            for entry in redb_try!(
                "read",
                t.range((id.as_str(), after + 1)..=(id.as_str(), u64::MAX))
            ) {
                let (_, v) = redb_try!("read", entry);
                let turn: Turn = decode_doc("turn", v.value())?;
                if turn.expires_at <= now {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(turn);
            }
            let next = if more {
                items.last().map(|t| t.seq.to_string())
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn count_conversations_of(&self, owner: &str) -> Result<usize> {
        check_key_part(owner)?;
        let owner = owner.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let owners = redb_try!("read", txn.open_table(CONVERSATIONS_BY_OWNER));
            let convs = redb_try!("read", txn.open_table(CONVERSATIONS));
            let now = now_secs();
            let mut count = 0;
            for entry in redb_try!("read", owners.range((owner.as_str(), "")..)) {
                let (k, _) = redb_try!("read", entry);
                let (o, id) = k.value();
                if o != owner {
                    break;
                }
                if let Some(v) = redb_try!("read", convs.get(id)) {
                    let meta: ConversationMeta = decode_doc("conversation", v.value())?;
                    count += usize::from(meta.expires_at > now);
                }
            }
            Ok(count)
        })
        .await
    }

    async fn delete_conversations_of(&self, owner: &str) -> Result<usize> {
        check_key_part(owner)?;
        let owner = owner.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("delete", db.begin_write());
            let count = {
                let mut owners = redb_try!("delete", txn.open_table(CONVERSATIONS_BY_OWNER));
                let mut ids = Vec::new();
                for entry in redb_try!("delete", owners.range((owner.as_str(), "")..)) {
                    let (k, _) = redb_try!("delete", entry);
                    let (o, id) = k.value();
                    if o != owner {
                        break;
                    }
                    ids.push(id.to_owned());
                }
                let mut convs = redb_try!("delete", txn.open_table(CONVERSATIONS));
                let mut turns = redb_try!("delete", txn.open_table(TURNS));
                let mut handoffs = redb_try!("delete", txn.open_table(HANDOFFS_BY_STATUS));
                for id in &ids {
                    redb_try!("delete", owners.remove((owner.as_str(), id.as_str())));
                    let old = redb_try!("delete", convs.remove(id.as_str()))
                        .map(|v| decode_doc::<ConversationMeta>("conversation", v.value()))
                        .transpose()?;
                    if let Some(h) = old.and_then(|m| m.handoff) {
                        let key = handoff_sort_key(h.updated_at, id);
                        redb_try!("delete", handoffs.remove((h.status.as_str(), key.as_str())));
                    }
                    let seqs: Vec<u64> = redb_try!(
                        "delete",
                        turns.range((id.as_str(), 0)..=(id.as_str(), u64::MAX))
                    )
                    .map(|e| e.map(|(k, _)| k.value().1))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_err("delete")(e.into()))?;
                    for seq in seqs {
                        redb_try!("delete", turns.remove((id.as_str(), seq)));
                    }
                }
                ids.len()
            };
            redb_try!("commit", txn.commit());
            Ok(count)
        })
        .await
    }

    async fn set_handoff(&self, id: &str, handoff: &Handoff, expected: Option<&str>) -> Result<()> {
        check_key_part(id)?;
        check_handoff(handoff)?;
        let (id, handoff) = (id.to_owned(), handoff.clone());
        let expected = expected.map(str::to_owned);
        self.blocking(move |db| {
            let txn = redb_try!("write", db.begin_write());
            {
                let mut convs = redb_try!("write", txn.open_table(CONVERSATIONS));
                let mut meta: ConversationMeta = match redb_try!("write", convs.get(id.as_str())) {
                    Some(v) => decode_doc("conversation", v.value())?,
                    None => return Err(StorageError::NotFound(format!("conversation {id}"))),
                };
                if meta.expires_at <= now_secs() {
                    return Err(StorageError::NotFound(format!("conversation {id}")));
                }
                let current = meta.handoff.as_ref().map(|h| h.status.as_str());
                if current != expected.as_deref() {
                    return Err(StorageError::Conflict(format!(
                        "conversation {id} is {}, not {}",
                        current.unwrap_or("open"),
                        expected.as_deref().unwrap_or("open")
                    )));
                }
                let mut index = redb_try!("write", txn.open_table(HANDOFFS_BY_STATUS));
                if let Some(old) = &meta.handoff {
                    let key = handoff_sort_key(old.updated_at, &id);
                    redb_try!("write", index.remove((old.status.as_str(), key.as_str())));
                }
                let key = handoff_sort_key(handoff.updated_at, &id);
                redb_try!(
                    "write",
                    index.insert((handoff.status.as_str(), key.as_str()), ())
                );
                meta.handoff = Some(handoff);
                let doc = encode_doc("conversation", &meta)?;
                redb_try!("write", convs.insert(id.as_str(), doc.as_slice()));
            }
            redb_try!("commit", txn.commit());
            Ok(())
        })
        .await
    }

    async fn list_handoffs(
        &self,
        status: &str,
        reason: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ConversationMeta>> {
        check_key_part(status)?;
        let after = parse_handoff_cursor(cursor)?;
        let (status, limit) = (status.to_owned(), limit.max(1));
        let reason = reason.map(str::to_owned);
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let index = redb_try!("read", txn.open_table(HANDOFFS_BY_STATUS));
            let convs = redb_try!("read", txn.open_table(CONVERSATIONS));
            let now = now_secs();
            let (items, last) = index_page(&index, &status, after.as_deref(), limit, |sort_key| {
                let id = sort_key.split_once('|').map_or("", |(_, id)| id);
                let Some(v) = redb_try!("read", convs.get(id)) else {
                    return Ok(None);
                };
                let meta: ConversationMeta = decode_doc("conversation", v.value())?;
                let wanted = meta.expires_at > now
                    && reason
                        .as_deref()
                        .is_none_or(|r| meta.handoff.as_ref().is_some_and(|h| h.reason == r));
                Ok(wanted.then_some(meta))
            })?;
            Ok(Page {
                items,
                next: last.as_deref().map(handoff_cursor),
            })
        })
        .await
    }
}

fn reindex_draft(
    txn: &redb::WriteTransaction,
    key: &str,
    old: Option<&[u8]>,
    new: &DraftRecord,
) -> Result<()> {
    let mut index = redb_try!("write", txn.open_table(DRAFTS_BY_STATUS));
    if let Some(old) = old {
        let old: Versioned<DraftRecord> = decode_doc("draft", old)?;
        let old_key = draft_sort_key(&old.value, key);
        redb_try!(
            "write",
            index.remove((old.value.status.as_str(), old_key.as_str()))
        );
    }
    let new_key = draft_sort_key(new, key);
    redb_try!(
        "write",
        index.insert((new.status.as_str(), new_key.as_str()), ())
    );
    Ok(())
}

#[async_trait]
impl DraftStore for EmbeddedStore {
    async fn get_draft(&self, key: &DraftKey) -> Result<Option<Versioned<DraftRecord>>> {
        let key = key.encode()?;
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let t = redb_try!("read", txn.open_table(DRAFTS));
            match redb_try!("read", t.get(key.as_str())) {
                Some(v) => Ok(Some(decode_doc("draft", v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_draft(
        &self,
        key: &DraftKey,
        draft: &DraftRecord,
        expected: Option<u64>,
    ) -> Result<u64> {
        let key = key.encode()?;
        check_key_part(&draft.status)?;
        let doc = encode_doc("draft", draft)?;
        let draft = draft.clone();
        self.blocking(move |db| {
            put_versioned(db, DRAFTS, &key, &doc, expected, |txn, old| {
                reindex_draft(txn, &key, old, &draft)
            })
        })
        .await
    }

    async fn put_drafts(&self, drafts: &[(DraftKey, DraftRecord)]) -> Result<()> {
        let mut rows = Vec::with_capacity(drafts.len());
        for (key, draft) in drafts {
            check_key_part(&draft.status)?;
            rows.push((key.encode()?, encode_doc("draft", draft)?, draft.clone()));
        }
        self.blocking(move |db| {
            let txn = redb_try!("write", db.begin_write());
            {
                let mut t = redb_try!("write", txn.open_table(DRAFTS));
                for (key, doc, draft) in &rows {
                    let old = redb_try!("write", t.get(key.as_str())).map(|v| v.value().to_vec());
                    redb_try!(
                        "write",
                        t.insert(key.as_str(), wrap_version(1, doc).as_slice())
                    );
                    reindex_draft(&txn, key, old.as_deref(), draft)?;
                }
            }
            redb_try!("commit", txn.commit());
            Ok(())
        })
        .await
    }

    async fn list_drafts(
        &self,
        status: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(DraftKey, Versioned<DraftRecord>)>> {
        check_key_part(status)?;
        let after = parse_draft_cursor(cursor)?;
        let (status, limit) = (status.to_owned(), limit.max(1));
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let index = redb_try!("read", txn.open_table(DRAFTS_BY_STATUS));
            let drafts = redb_try!("read", txn.open_table(DRAFTS));
            let (items, last) = index_page(&index, &status, after.as_deref(), limit, |sort_key| {
                let key = sort_key.split_once('|').map_or("", |(_, k)| k);
                let Some(v) = redb_try!("read", drafts.get(key)) else {
                    return Ok(None);
                };
                Ok(Some((
                    DraftKey::decode(key)?,
                    decode_doc("draft", v.value())?,
                )))
            })?;
            Ok(Page {
                items,
                next: last.as_deref().map(draft_cursor),
            })
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn claim(&self, claim: &IdempotencyClaim) -> Result<ClaimOutcome> {
        check_key_part(&claim.key)?;
        let claim = claim.clone();
        self.blocking(move |db| {
            let txn = redb_try!("write", db.begin_write());
            let outcome = {
                let mut t = redb_try!("write", txn.open_table(IDEMPOTENCY));
                let existing: Option<IdempotencyRecord> =
                    match redb_try!("write", t.get(claim.key.as_str())) {
                        Some(v) => Some(decode_doc("idempotency record", v.value())?),
                        None => None,
                    };
                match existing {
                    Some(rec) if !claimable(&rec, claim.now_ms) => ClaimOutcome::Existing(rec),
                    _ => {
                        let rec = IdempotencyRecord {
                            key: claim.key.clone(),
                            status: IdempotencyStatus::InProgress,
                            payload_hash: claim.payload_hash.clone(),
                            expires_at: claim.expires_at,
                            in_progress_until: claim.in_progress_until,
                            result: None,
                        };
                        let doc = encode_doc("idempotency record", &rec)?;
                        redb_try!("write", t.insert(claim.key.as_str(), doc.as_slice()));
                        ClaimOutcome::Acquired
                    }
                }
            };
            redb_try!("commit", txn.commit());
            Ok(outcome)
        })
        .await
    }

    async fn complete(&self, key: &str, result: &Json, expires_at: i64) -> Result<()> {
        check_key_part(key)?;
        let (key, result) = (key.to_owned(), result.clone());
        self.blocking(move |db| {
            let txn = redb_try!("write", db.begin_write());
            {
                let mut t = redb_try!("write", txn.open_table(IDEMPOTENCY));
                let mut rec: IdempotencyRecord = match redb_try!("write", t.get(key.as_str())) {
                    Some(v) => decode_doc("idempotency record", v.value())?,
                    None => {
                        return Err(StorageError::NotFound(format!("idempotency record {key}")))
                    }
                };
                rec.status = IdempotencyStatus::Completed;
                rec.result = Some(result);
                rec.expires_at = expires_at;
                let doc = encode_doc("idempotency record", &rec)?;
                redb_try!("write", t.insert(key.as_str(), doc.as_slice()));
            }
            redb_try!("commit", txn.commit());
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<()> {
        check_key_part(key)?;
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("delete", db.begin_write());
            {
                let mut t = redb_try!("delete", txn.open_table(IDEMPOTENCY));
                let in_progress = match redb_try!("delete", t.get(key.as_str())) {
                    Some(v) => {
                        decode_doc::<IdempotencyRecord>("idempotency record", v.value())?.status
                            == IdempotencyStatus::InProgress
                    }
                    None => false,
                };
                if in_progress {
                    redb_try!("delete", t.remove(key.as_str()));
                }
            }
            redb_try!("commit", txn.commit());
            Ok(())
        })
        .await
    }

    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        check_key_part(key)?;
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("read", db.begin_read());
            let t = redb_try!("read", txn.open_table(IDEMPOTENCY));
            let rec: Option<IdempotencyRecord> = match redb_try!("read", t.get(key.as_str())) {
                Some(v) => Some(decode_doc("idempotency record", v.value())?),
                None => None,
            };
            Ok(rec.filter(|r| r.expires_at > now_secs()))
        })
        .await
    }

    async fn delete_idempotency_prefix(&self, prefix: &str) -> Result<usize> {
        check_key_part(prefix)?;
        let prefix = prefix.to_owned();
        self.blocking(move |db| {
            let txn = redb_try!("delete", db.begin_write());
            let n = {
                let mut t = redb_try!("delete", txn.open_table(IDEMPOTENCY));
                let keys: Vec<String> = redb_try!("delete", t.range(prefix.as_str()..))
                    .map(|e| e.map(|(k, _)| k.value().to_owned()))
                    .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_err("delete")(e.into()))?;
                for k in &keys {
                    redb_try!("delete", t.remove(k.as_str()));
                }
                keys.len()
            };
            redb_try!("commit", txn.commit());
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl BlobStore for EmbeddedStore {
    async fn put_blob(&self, key: &str, body: Bytes) -> Result<()> {
        let path = self.blob_path(key)?;
        tokio::task::spawn_blocking(move || write_atomic(&path, &body))
            .await
            .map_err(|e| StorageError::Backend {
                op: "put blob",
                reason: e.to_string(),
            })?
    }

    async fn get_blob(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.blob_path(key)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StorageError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    async fn list_blobs(&self, prefix: &str) -> Result<Vec<String>> {
        let root = self.blobs.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(StorageError::Io {
                            path: dir.display().to_string(),
                            source,
                        })
                    }
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                        continue;
                    }
                    if path.is_dir() {
                        // Only descend where the prefix can still match.
                        let as_dir = format!("{key}/");
                        if prefix.starts_with(&as_dir) || as_dir.starts_with(&prefix) {
                            stack.push(path);
                        }
                    } else if key.starts_with(&prefix) {
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| StorageError::Backend {
            op: "list blobs",
            reason: e.to_string(),
        })?
    }

    async fn delete_blob(&self, key: &str) -> Result<bool> {
        let path = self.blob_path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StorageError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Temp file + fsync + rename: readers see the old or the new object, never half of one.
fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| StorageError::Io { path: p, source }
    };
    let dir = path
        .parent()
        .ok_or_else(|| StorageError::InvalidKey(path.display().to_string()))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}
