//! DynamoDB + S3. One table per concern (see the README's table design), on-demand billing,
//! TTL on `expires_at`; every call goes through the SDK's standard retry mode with timeouts.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType,
    TimeToLiveSpecification, WriteRequest,
};
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_s3::Client as S3;
use bytes::Bytes;

use crate::error::{Result, StorageError};
use sha2::Digest;

use crate::types::*;
use crate::{BlobStore, ConversationStore, DraftStore, IdempotencyStore, ProfileStore};

/// Names of the tables and the bucket: `SHOPMIND_TABLE_PREFIX` (default `shopmind-`) and
/// `SHOPMIND_BUCKET` (default `shopmind-data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsNames {
    pub profiles: String,
    pub conversations: String,
    pub drafts: String,
    pub idempotency: String,
    pub bucket: String,
}

impl AwsNames {
    pub fn new(table_prefix: &str, bucket: &str) -> Self {
        Self {
            profiles: format!("{table_prefix}profiles"),
            conversations: format!("{table_prefix}conversations"),
            drafts: format!("{table_prefix}drafts"),
            idempotency: format!("{table_prefix}idempotency"),
            bucket: bucket.to_owned(),
        }
    }

    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        Self::new(
            &get("SHOPMIND_TABLE_PREFIX", "shopmind-"),
            &get("SHOPMIND_BUCKET", "shopmind-data"),
        )
    }
}

/// One table of the design: hash key (S), optional range key (N), optional GSI
/// (name, hash S, optional range S), TTL on `expires_at`.
struct TableSpec<'a> {
    name: &'a String,
    hash: &'static str,
    range: Option<&'static str>,
    gsis: &'static [(&'static str, &'static str, Option<&'static str>)],
    ttl: bool,
}

pub const OWNER_INDEX: &str = "by-owner";
pub const STATUS_INDEX: &str = "by-status";
/// Sparse: only conversations handed to staff carry `handoff_status`.
pub const HANDOFF_INDEX: &str = "by-handoff";
/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;
/// BatchWriteItem attempts in a row that may take none of the pending items before the write
/// fails. An attempt that takes some of them starts the count again: a table that is still
/// absorbing a large write under throttling is making progress, not failing.
const BATCH_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct AwsStore {
    ddb: Dynamo,
    s3: S3,
    names: AwsNames,
}

/// The SDK configuration Shopmind uses: the standard chain, standard retries (5 attempts) and
/// timeouts, so one slow call cannot eat a Lambda's whole deadline.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .load()
        .await
}

impl AwsStore {
    pub fn new(ddb: Dynamo, s3: S3, names: AwsNames) -> Self {
        Self { ddb, s3, names }
    }

    /// A GetObject of `key` in the bucket; `None` when there is no such key.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>> {
        check_key_part(key)?;
        match self
            .s3
            .get_object()
            .bucket(&self.names.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(e) => {
                let service = e.into_service_error();
                if service.is_no_such_key() {
                    return Ok(None);
                }
                Err(StorageError::Backend {
                    op: "GetObject",
                    reason: aws_sdk_s3::error::DisplayErrorContext(&service).to_string(),
                })
            }
        }
    }

    /// The conversations `owner` created, through the owner index (keys only).
    fn owner_query(
        &self,
        owner: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.ddb
            .query()
            .table_name(&self.names.conversations)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
    }

    /// Clients from one configuration; S3 switches to path-style addressing when an endpoint
    /// override is set (emulators need it).
    pub fn from_sdk_config(conf: &aws_config::SdkConfig, names: AwsNames) -> Self {
        let path_style = conf.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(path_style)
            .build();
        Self::new(Dynamo::new(conf), S3::from_conf(s3), names)
    }

    /// The store every function runs on: the standard SDK configuration ([`sdk_config`],
    /// `AWS_ENDPOINT_URL` honoured) and the names from the environment.
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&sdk_config().await, AwsNames::from_env())
    }

    pub fn names(&self) -> &AwsNames {
        &self.names
    }

    /// Creates the tables (on demand, with their GSIs and TTL) and the bucket where missing.
    /// Returns what it created.
    pub async fn ensure_resources(&self) -> Result<Vec<String>> {
        let existing: Vec<String> = {
            let mut names = Vec::new();
            let mut start = None;
            loop {
                let out = self
                    .ddb
                    .list_tables()
                    .set_exclusive_start_table_name(start)
                    .send()
                    .await
                    .map_err(be("ListTables"))?;
                names.extend(out.table_names().iter().cloned());
                start = out.last_evaluated_table_name().map(str::to_owned);
                if start.is_none() {
                    break;
                }
            }
            names
        };
        let specs = [
            TableSpec {
                name: &self.names.profiles,
                hash: "user_id",
                range: None,
                gsis: &[],
                ttl: false,
            },
            TableSpec {
                name: &self.names.conversations,
                hash: "conversation_id",
                range: Some("seq"),
                gsis: &[
                    (OWNER_INDEX, "owner", None),
                    (HANDOFF_INDEX, "handoff_status", Some("handoff_sort")),
                ],
                ttl: true,
            },
            TableSpec {
                name: &self.names.drafts,
                hash: "draft_key",
                range: None,
                gsis: &[(STATUS_INDEX, "status", Some("status_sort"))],
                ttl: false,
            },
            TableSpec {
                name: &self.names.idempotency,
                hash: "idempotency_key",
                range: None,
                gsis: &[],
                ttl: true,
            },
        ];
        let mut created = Vec::new();
        for spec in specs {
            let table = spec.name;
            if existing.contains(table) {
                continue;
            }
            let mut req = self
                .ddb
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attr_def(spec.hash, ScalarAttributeType::S)?)
                .key_schema(key_elem(spec.hash, KeyType::Hash)?);
            if let Some(range) = spec.range {
                req = req
                    .attribute_definitions(attr_def(range, ScalarAttributeType::N)?)
                    .key_schema(key_elem(range, KeyType::Range)?);
            }
            for &(index, hash, range) in spec.gsis {
                // The owner index only finds ids (keys only); the status index serves listings.
                let projection = if range.is_some() {
                    ProjectionType::All
                } else {
                    ProjectionType::KeysOnly
                };
                let mut g = GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key_elem(hash, KeyType::Hash)?)
                    .projection(Projection::builder().projection_type(projection).build());
                req = req.attribute_definitions(attr_def(hash, ScalarAttributeType::S)?);
                if let Some(range) = range {
                    g = g.key_schema(key_elem(range, KeyType::Range)?);
                    req = req.attribute_definitions(attr_def(range, ScalarAttributeType::S)?);
                }
                req = req.global_secondary_indexes(g.build().map_err(build_err)?);
            }
            req.send().await.map_err(be("CreateTable"))?;
            if spec.ttl {
                self.ddb
                    .update_time_to_live()
                    .table_name(table)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .enabled(true)
                            .attribute_name("expires_at")
                            .build()
                            .map_err(build_err)?,
                    )
                    .send()
                    .await
                    .map_err(be("UpdateTimeToLive"))?;
            }
            created.push(table.clone());
        }
        if self
            .s3
            .head_bucket()
            .bucket(&self.names.bucket)
            .send()
            .await
            .is_err()
        {
            self.s3
                .create_bucket()
                .bucket(&self.names.bucket)
                .send()
                .await
                .map_err(be("CreateBucket"))?;
            created.push(format!("s3://{}", self.names.bucket));
        }
        Ok(created)
    }

    /// Writes `requests` in batches of 25, retrying unprocessed items with backoff until
    /// [`BATCH_ATTEMPTS`] attempts in a row take none of them.
    async fn batch_write(&self, table: &str, requests: Vec<WriteRequest>) -> Result<()> {
        for chunk in requests.chunks(BATCH) {
            let mut pending = chunk.to_vec();
            let (mut stalled, mut retries) = (0, 0u32);
            while !pending.is_empty() {
                if stalled == BATCH_ATTEMPTS {
                    return Err(StorageError::Backend {
                        op: "BatchWriteItem",
                        reason: format!(
                            "{} items still unprocessed after {BATCH_ATTEMPTS} attempts in a row took none of them",
                            pending.len()
                        ),
                    });
                }
                if retries > 0 {
                    // Unprocessed items mean the table is busy: back off even after progress.
                    tokio::time::sleep(Duration::from_millis(25 << retries.min(6))).await;
                }
                retries += 1;
                let out = self
                    .ddb
                    .batch_write_item()
                    .request_items(table, pending.clone())
                    .send()
                    .await
                    .map_err(be("BatchWriteItem"))?;
                let left = out
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
                    .cloned()
                    .unwrap_or_default();
                stalled = if left.len() < pending.len() {
                    0
                } else {
                    stalled + 1
                };
                if !left.is_empty() {
                    tracing::debug!(
                        table,
                        unprocessed = left.len(),
                        stalled,
                        "retrying unprocessed batch items"
                    );
                }
                pending = left;
            }
        }
        Ok(())
    }

    /// Deletes the items with these keys, in batches.
    async fn delete_keys(&self, table: &str, keys: Vec<Item>) -> Result<()> {
        let requests = keys
            .into_iter()
            .map(|k| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map_err(build_err)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(table, requests).await
    }

    async fn get_item(
        &self,
        table: &str,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>> {
        let out = self
            .ddb
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(be("GetItem"))?;
        Ok(out.item)
    }

    /// A versioned put: `attribute_not_exists` for a create, `version = :v` for an update.
    async fn put_versioned(
        &self,
        table: &str,
        hash_attr: &str,
        mut item: HashMap<String, AttributeValue>,
        expected: Option<u64>,
    ) -> Result<u64> {
        let version = expected.unwrap_or(0) + 1;
        item.insert("version".into(), num(version));
        let mut req = self.ddb.put_item().table_name(table).set_item(Some(item));
        req = match expected {
            None => req
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", hash_attr),
            Some(v) => req
                .condition_expression("version = :v")
                .expression_attribute_values(":v", num(v)),
        };
        match req.send().await {
            Ok(_) => Ok(version),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Err(StorageError::Conflict(format!(
                        "{table}: expected version {expected:?} is not the stored one"
                    )))
                } else {
                    Err(backend("PutItem", &e))
                }
            }
        }
    }
}

type Item = HashMap<String, AttributeValue>;

/// Every item of a paginated Query or Scan; `page` sends one request from a start key and
/// returns its items and the next start key.
async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Item>>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>)>>,
{
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let (mut got, next) = page(start).await?;
        items.append(&mut got);
        match next {
            Some(key) => start = Some(key),
            None => return Ok(items),
        }
    }
}

fn attr_def(name: &str, ty: ScalarAttributeType) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ty)
        .build()
        .map_err(build_err)
}

fn key_elem(name: &str, kt: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kt)
        .build()
        .map_err(build_err)
}

fn build_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend {
        op: "build request",
        reason: e.to_string(),
    }
}

fn backend<E: ProvideErrorMetadata + std::fmt::Display>(op: &'static str, e: &E) -> StorageError {
    StorageError::Backend {
        op,
        reason: format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or(&e.to_string())
        ),
    }
}

fn be<E, R>(op: &'static str) -> impl Fn(aws_sdk_dynamodb::error::SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| StorageError::Backend {
        op,
        reason: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn num(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key1(name: &str, value: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(name.to_owned(), s(value))])
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StorageError::Corrupt(format!(
            "attribute {name} missing or not a string"
        ))),
    }
}

fn get_n<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StorageError::Corrupt(format!("attribute {name} is not a number"))),
        _ => Err(StorageError::Corrupt(format!(
            "attribute {name} missing or not a number"
        ))),
    }
}

fn body_string(what: &str, value: &impl serde::Serialize) -> Result<String> {
    String::from_utf8(encode_doc(what, value)?).map_err(|e| StorageError::Corrupt(e.to_string()))
}

#[async_trait]
impl ProfileStore for AwsStore {
    async fn get_profile(&self, user_id: &str) -> Result<Option<Versioned<Json>>> {
        check_key_part(user_id)?;
        let Some(item) = self
            .get_item(&self.names.profiles, key1("user_id", user_id))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            version: get_n(&item, "version")?,
            value: decode_doc("profile", get_s(&item, "body")?.as_bytes())?,
        }))
    }

    async fn put_profile(
        &self,
        user_id: &str,
        profile: &Json,
        expected: Option<u64>,
    ) -> Result<u64> {
        check_key_part(user_id)?;
        let item = HashMap::from([
            ("user_id".to_owned(), s(user_id)),
            ("body".to_owned(), s(body_string("profile", profile)?)),
        ]);
        self.put_versioned(&self.names.profiles, "user_id", item, expected)
            .await
    }

    async fn delete_profile(&self, user_id: &str) -> Result<bool> {
        check_key_part(user_id)?;
        let out = self
            .ddb
            .delete_item()
            .table_name(&self.names.profiles)
            .set_key(Some(key1("user_id", user_id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(be("DeleteItem"))?;
        Ok(out.attributes.is_some())
    }
}

/// A conversation's header item (seq 0), from the table or the handoff index.
fn conv_from_item(item: &HashMap<String, AttributeValue>) -> Result<ConversationMeta> {
    Ok(ConversationMeta {
        id: get_s(item, "conversation_id")?.to_owned(),
        owner: get_s(item, "owner")?.to_owned(),
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        handoff: match item.get("handoff") {
            None => None,
            Some(_) => Some(decode_doc("handoff", get_s(item, "handoff")?.as_bytes())?),
        },
    })
}

fn conv_key(id: &str, seq: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("conversation_id".to_owned(), s(id)),
        ("seq".to_owned(), num(seq)),
    ])
}

#[async_trait]
impl ConversationStore for AwsStore {
    async fn create_conversation(&self, meta: &ConversationMeta) -> Result<()> {
        check_key_part(&meta.id)?;
        check_key_part(&meta.owner)?;
        let mut item = conv_key(&meta.id, 0);
        item.insert("owner".into(), s(&meta.owner));
        item.insert("created_at".into(), num(meta.created_at));
        item.insert("expires_at".into(), num(meta.expires_at));
        let res = self
            .ddb
            .put_item()
            .table_name(&self.names.conversations)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(conversation_id) OR expires_at < :now")
            .expression_attribute_values(":now", num(now_secs()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Err(StorageError::Conflict(format!(
                        "conversation {} exists",
                        meta.id
                    )))
                } else {
                    Err(backend("PutItem", &e))
                }
            }
        }
    }

    async fn get_conversation(&self, id: &str) -> Result<Option<ConversationMeta>> {
        check_key_part(id)?;
        let Some(item) = self
            .get_item(&self.names.conversations, conv_key(id, 0))
            .await?
        else {
            return Ok(None);
        };
        let meta = conv_from_item(&item)?;
        // DynamoDB deletes expired items lazily (up to days later): filter on read.
        Ok(Some(meta).filter(|m| m.expires_at > now_secs()))
    }

    async fn append_turn(&self, id: &str, turn: &Turn) -> Result<()> {
        check_key_part(id)?;
        if turn.seq == 0 {
            return Err(StorageError::InvalidKey("turn seq starts at 1".into()));
        }
        let body = body_string("turn", &turn.body)?;
        if self
            .get_item(&self.names.conversations, conv_key(id, 0))
            .await?
            .is_none()
        {
            return Err(StorageError::NotFound(format!("conversation {id}")));
        }
        let mut item = conv_key(id, turn.seq);
        item.insert("body".into(), s(body));
        item.insert("expires_at".into(), num(turn.expires_at));
        let res = self
            .ddb
            .put_item()
            .table_name(&self.names.conversations)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(seq)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Err(StorageError::Conflict(format!(
                        "turn {} of {id} exists",
                        turn.seq
                    )))
                } else {
                    Err(backend("PutItem", &e))
                }
            }
        }
    }

    async fn set_handoff(&self, id: &str, handoff: &Handoff, expected: Option<&str>) -> Result<()> {
        check_key_part(id)?;
        check_handoff(handoff)?;
        let mut update = self
            .ddb
            .update_item()
            .table_name(&self.names.conversations)
            .set_key(Some(conv_key(id, 0)))
            .update_expression(
                "SET handoff = :h, handoff_status = :s, handoff_sort = :k, handoff_reason = :r",
            )
            .expression_attribute_values(":h", s(body_string("handoff", handoff)?))
            .expression_attribute_values(":s", s(&handoff.status))
            .expression_attribute_values(":k", s(handoff_sort_key(handoff.updated_at, id)))
            .expression_attribute_values(":r", s(&handoff.reason))
            .expression_attribute_values(":now", num(now_secs()));
        update = match expected {
            None => update.condition_expression(
                "attribute_exists(conversation_id) AND expires_at > :now AND \
                 attribute_not_exists(handoff_status)",
            ),
            Some(e) => update
                .condition_expression(
                    "attribute_exists(conversation_id) AND expires_at > :now AND \
                     handoff_status = :e",
                )
                .expression_attribute_values(":e", s(e)),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if !e.is_conditional_check_failed_exception() {
                    return Err(backend("UpdateItem", &e));
                }
                // Which condition failed decides the answer: gone, or changed by someone else.
                match self.get_conversation(id).await? {
                    None => Err(StorageError::NotFound(format!("conversation {id}"))),
                    Some(m) => Err(StorageError::Conflict(format!(
                        "conversation {id} is {}, not {}",
                        m.handoff.as_ref().map_or("open", |h| h.status.as_str()),
                        expected.unwrap_or("open")
                    ))),
                }
            }
        }
    }

    async fn list_handoffs(
        &self,
        status: &str,
        reason: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ConversationMeta>> {
        check_key_part(status)?;
        let after = parse_handoff_cursor(cursor)?.unwrap_or_default();
        let mut filter = "expires_at > :now".to_owned();
        if reason.is_some() {
            filter.push_str(" AND handoff_reason = :r");
        }
        let mut query = self
            .ddb
            .query()
            .table_name(&self.names.conversations)
            .index_name(HANDOFF_INDEX)
            .filter_expression(&filter)
            .expression_attribute_values(":s", s(status))
            .expression_attribute_values(":now", num(now_secs()));
        if let Some(r) = reason {
            query = query.expression_attribute_values(":r", s(r));
        }
        let (items, last) = index_page(
            query,
            "handoff_status = :s",
            "handoff_sort",
            &after,
            limit,
            conv_from_item,
        )
        .await?;
        Ok(Page {
            items,
            next: last.as_deref().map(handoff_cursor),
        })
    }

    async fn list_turns(&self, id: &str, cursor: Option<&str>, limit: usize) -> Result<Page<Turn>> {
        check_key_part(id)?;
        let after = parse_turn_cursor(cursor)?;
        let limit = limit.max(1);
        let now = now_secs();
        let mut items = Vec::new();
        let mut start = None;
        let mut more = false;
        // A DynamoDB page stops at 1 MB whatever the Limit: keep going until the page is full.
        'pages: loop {
            let out = self
                .ddb
                .query()
                .table_name(&self.names.conversations)
                .key_condition_expression("conversation_id = :id AND seq > :after")
                .expression_attribute_values(":id", s(id))
                .expression_attribute_values(":after", num(after))
                .consistent_read(true)
                .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(be("Query"))?;
            for item in out.items() {
                let turn = Turn {
                    seq: get_n(item, "seq")?,
                    body: decode_doc("turn", get_s(item, "body")?.as_bytes())?,
                    expires_at: get_n(item, "expires_at")?,
                };
                if turn.expires_at <= now {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break 'pages;
                }
                items.push(turn);
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let next = if more {
            items.last().map(|t| t.seq.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn count_conversations_of(&self, owner: &str) -> Result<usize> {
        check_key_part(owner)?;
        // The owner index holds keys only, so expiry cannot be read here: what TTL has not
        // yet deleted counts (see the trait).
        let mut count = 0usize;
        let mut start = None;
        loop {
            let out = self
                .owner_query(owner)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(be("Query"))?;
            count += usize::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(count),
            }
        }
    }

    async fn delete_conversations_of(&self, owner: &str) -> Result<usize> {
        check_key_part(owner)?;
        let headers = all_pages(|start| {
            let query = self.owner_query(owner).set_exclusive_start_key(start);
            async move {
                let out = query.send().await.map_err(be("Query"))?;
                Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
            }
        })
        .await?;
        for header in &headers {
            let id = get_s(header, "conversation_id")?;
            let keys = all_pages(|start| {
                let query = self
                    .ddb
                    .query()
                    .table_name(&self.names.conversations)
                    .key_condition_expression("conversation_id = :id")
                    .expression_attribute_values(":id", s(id))
                    .projection_expression("conversation_id, seq")
                    .set_exclusive_start_key(start);
                async move {
                    let out = query.send().await.map_err(be("Query"))?;
                    Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
                }
            })
            .await?;
            self.delete_keys(&self.names.conversations, keys).await?;
        }
        Ok(headers.len())
    }
}

fn draft_item(key: &str, draft: &DraftRecord) -> Result<HashMap<String, AttributeValue>> {
    Ok(HashMap::from([
        ("draft_key".to_owned(), s(key)),
        ("status".to_owned(), s(&draft.status)),
        ("status_sort".to_owned(), s(draft_sort_key(draft, key))),
        ("body".to_owned(), s(body_string("draft", draft)?)),
    ]))
}

fn draft_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<(DraftKey, Versioned<DraftRecord>)> {
    Ok((
        DraftKey::decode(get_s(item, "draft_key")?)?,
        Versioned {
            version: get_n(item, "version")?,
            value: decode_doc("draft", get_s(item, "body")?.as_bytes())?,
        },
    ))
}

#[async_trait]
impl DraftStore for AwsStore {
    async fn get_draft(&self, key: &DraftKey) -> Result<Option<Versioned<DraftRecord>>> {
        let key = key.encode()?;
        match self
            .get_item(&self.names.drafts, key1("draft_key", &key))
            .await?
        {
            Some(item) => Ok(Some(draft_from_item(&item)?.1)),
            None => Ok(None),
        }
    }

    async fn put_draft(
        &self,
        key: &DraftKey,
        draft: &DraftRecord,
        expected: Option<u64>,
    ) -> Result<u64> {
        check_key_part(&draft.status)?;
        let item = draft_item(&key.encode()?, draft)?;
        self.put_versioned(&self.names.drafts, "draft_key", item, expected)
            .await
    }

    async fn put_drafts(&self, drafts: &[(DraftKey, DraftRecord)]) -> Result<()> {
        let mut requests = Vec::with_capacity(drafts.len());
        for (key, draft) in drafts {
            check_key_part(&draft.status)?;
            let mut item = draft_item(&key.encode()?, draft)?;
            item.insert("version".into(), num(1));
            requests.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        self.batch_write(&self.names.drafts, requests).await
    }

    async fn list_drafts(
        &self,
        status: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(DraftKey, Versioned<DraftRecord>)>> {
        check_key_part(status)?;
        let after = parse_draft_cursor(cursor)?.unwrap_or_default();
        let query = self
            .ddb
            .query()
            .table_name(&self.names.drafts)
            .index_name(STATUS_INDEX)
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", s(status));
        let (items, last) = index_page(
            query,
            "#s = :s",
            "status_sort",
            &after,
            limit,
            draft_from_item,
        )
        .await?;
        Ok(Page {
            items,
            next: last.as_deref().map(draft_cursor),
        })
    }
}

/// One page of a listing kept in a GSI's sort key: `query` (table, index, `:s` and any
/// filter) with the key condition `hash_condition`, past `after` when a cursor gave one,
/// reading on through DynamoDB's own pages (a filter can leave one empty) until `limit` items
/// are in. The items, and the last one's sort key when more follow.
async fn index_page<T>(
    query: QueryFluentBuilder,
    hash_condition: &str,
    sort_key: &str,
    after: &str,
    limit: usize,
    convert: impl Fn(&HashMap<String, AttributeValue>) -> Result<T>,
) -> Result<(Vec<T>, Option<String>)> {
    let limit = limit.max(1);
    // DynamoDB refuses an empty string in a key condition: no cursor, no range part.
    let query = if after.is_empty() {
        query.key_condition_expression(hash_condition)
    } else {
        query
            .key_condition_expression(format!("{hash_condition} AND {sort_key} > :after"))
            .expression_attribute_values(":after", s(after))
    };
    let (mut items, mut last, mut start) = (Vec::new(), None, None);
    loop {
        let out = query
            .clone()
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(be("Query"))?;
        for item in out.items() {
            if items.len() == limit {
                return Ok((items, last));
            }
            items.push(convert(item)?);
            last = Some(get_s(item, sort_key)?.to_owned());
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok((items, None));
        }
    }
}

fn idem_from_item(item: &HashMap<String, AttributeValue>) -> Result<IdempotencyRecord> {
    let status = match get_s(item, "status")? {
        "in_progress" => IdempotencyStatus::InProgress,
        "completed" => IdempotencyStatus::Completed,
        other => {
            return Err(StorageError::Corrupt(format!(
                "idempotency status {other:?}"
            )))
        }
    };
    Ok(IdempotencyRecord {
        key: get_s(item, "idempotency_key")?.to_owned(),
        status,
        payload_hash: get_s(item, "payload_hash")?.to_owned(),
        expires_at: get_n(item, "expires_at")?,
        in_progress_until: get_n(item, "in_progress_until")?,
        result: match item.get("result") {
            Some(AttributeValue::S(r)) => Some(decode_doc("idempotency result", r.as_bytes())?),
            _ => None,
        },
    })
}

#[async_trait]
impl IdempotencyStore for AwsStore {
    async fn claim(&self, claim: &IdempotencyClaim) -> Result<ClaimOutcome> {
        check_key_part(&claim.key)?;
        // Two tries: the record that blocked us may expire or vanish before we read it.
        for _ in 0..2 {
            let item = HashMap::from([
                ("idempotency_key".to_owned(), s(&claim.key)),
                ("status".to_owned(), s("in_progress")),
                ("payload_hash".to_owned(), s(&claim.payload_hash)),
                ("expires_at".to_owned(), num(claim.expires_at)),
                ("in_progress_until".to_owned(), num(claim.in_progress_until)),
            ]);
            let res = self
                .ddb
                .put_item()
                .table_name(&self.names.idempotency)
                .set_item(Some(item))
                .condition_expression(
                    "attribute_not_exists(idempotency_key) OR expires_at <= :now_s OR (#st = :inprog AND in_progress_until <= :now_ms)",
                )
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":now_s", num(claim.now_ms.div_euclid(1000)))
                .expression_attribute_values(":now_ms", num(claim.now_ms))
                .expression_attribute_values(":inprog", s("in_progress"))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(ClaimOutcome::Acquired),
                Err(e) => {
                    let e = e.into_service_error();
                    if !e.is_conditional_check_failed_exception() {
                        return Err(backend("PutItem", &e));
                    }
                }
            }
            if let Some(item) = self
                .get_item(&self.names.idempotency, key1("idempotency_key", &claim.key))
                .await?
            {
                let rec = idem_from_item(&item)?;
                if !claimable(&rec, claim.now_ms) {
                    return Ok(ClaimOutcome::Existing(rec));
                }
            }
        }
        Err(StorageError::Conflict(format!(
            "idempotency key {} is contended",
            claim.key
        )))
    }

    async fn complete(&self, key: &str, result: &Json, expires_at: i64) -> Result<()> {
        check_key_part(key)?;
        let res = self
            .ddb
            .update_item()
            .table_name(&self.names.idempotency)
            .set_key(Some(key1("idempotency_key", key)))
            .update_expression("SET #st = :done, #r = :r, expires_at = :e")
            .condition_expression("attribute_exists(idempotency_key)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#r", "result")
            .expression_attribute_values(":done", s("completed"))
            .expression_attribute_values(":r", s(body_string("idempotency result", result)?))
            .expression_attribute_values(":e", num(expires_at))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Err(StorageError::NotFound(format!("idempotency record {key}")))
                } else {
                    Err(backend("UpdateItem", &e))
                }
            }
        }
    }

    async fn release(&self, key: &str) -> Result<()> {
        check_key_part(key)?;
        let res = self
            .ddb
            .delete_item()
            .table_name(&self.names.idempotency)
            .set_key(Some(key1("idempotency_key", key)))
            .condition_expression("#st = :inprog")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":inprog", s("in_progress"))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                // Completed (or already gone): nothing to release.
                if e.is_conditional_check_failed_exception() {
                    Ok(())
                } else {
                    Err(backend("DeleteItem", &e))
                }
            }
        }
    }

    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        check_key_part(key)?;
        match self
            .get_item(&self.names.idempotency, key1("idempotency_key", key))
            .await?
        {
            Some(item) => Ok(Some(idem_from_item(&item)?).filter(|r| r.expires_at > now_secs())),
            None => Ok(None),
        }
    }

    async fn delete_idempotency_prefix(&self, prefix: &str) -> Result<usize> {
        check_key_part(prefix)?;
        // A scan: right-to-be-forgotten requests are rare, and keys are not partitioned by user.
        let keys = all_pages(|start| {
            let scan = self
                .ddb
                .scan()
                .table_name(&self.names.idempotency)
                .filter_expression("begins_with(idempotency_key, :p)")
                .expression_attribute_values(":p", s(prefix))
                .projection_expression("idempotency_key")
                .set_exclusive_start_key(start);
            async move {
                let out = scan.send().await.map_err(be("Scan"))?;
                Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
            }
        })
        .await?;
        let n = keys.len();
        self.delete_keys(&self.names.idempotency, keys).await?;
        Ok(n)
    }
}

fn s3_err<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    op: &'static str,
) -> impl Fn(aws_sdk_s3::error::SdkError<E, R>) -> StorageError {
    move |e| StorageError::Backend {
        op,
        reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
    }
}

#[async_trait]
impl BlobStore for AwsStore {
    async fn put_blob(&self, key: &str, body: Bytes) -> Result<()> {
        check_key_part(key)?;
        self.s3
            .put_object()
            .bucket(&self.names.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .map_err(s3_err("PutObject"))?;
        Ok(())
    }

    async fn get_blob(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Backend {
                op: "GetObject",
                reason: e.to_string(),
            })?;
        Ok(Some(data.into_bytes()))
    }

    /// Hashes each part of the body as it arrives: the check is done when the transfer is.
    async fn get_blob_sha256(&self, key: &str) -> Result<Option<(Bytes, [u8; 32])>> {
        let Some(mut out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let size = out
            .content_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let mut body = bytes::BytesMut::with_capacity(size);
        let mut hasher = sha2::Sha256::new();
        while let Some(part) = out.body.next().await {
            let part = part.map_err(|e| StorageError::Backend {
                op: "GetObject",
                reason: e.to_string(),
            })?;
            hasher.update(&part);
            body.extend_from_slice(&part);
        }
        Ok(Some((body.freeze(), hasher.finalize().into())))
    }

    async fn list_blobs(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.names.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(s3_err("ListObjectsV2"))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete_blob(&self, key: &str) -> Result<bool> {
        check_key_part(key)?;
        // S3 deletes answer 204 whether or not the key existed; ask first to report which.
        let existed = match self
            .s3
            .head_object()
            .bucket(&self.names.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) => {
                let service = e.into_service_error();
                if service.is_not_found() {
                    false
                } else {
                    return Err(StorageError::Backend {
                        op: "HeadObject",
                        reason: aws_sdk_s3::error::DisplayErrorContext(&service).to_string(),
                    });
                }
            }
        };
        if existed {
            self.s3
                .delete_object()
                .bucket(&self.names.bucket)
                .key(key)
                .send()
                .await
                .map_err(s3_err("DeleteObject"))?;
        }
        Ok(existed)
    }
}
