//! The item index: ids, unit-length embeddings as one row-major f32 matrix, and the metadata
//! the filters and reasons need. Stored as a versioned artifact of kind `items`:
//! `vectors.f32` (little-endian), `items.jsonl` (one [`ItemMeta`] per row, in row order) and,
//! from the indexer, `text_keys.bin` (each row's [`TextKey`], so the next catalog version
//! embeds only the items whose text changed; serving never reads it).

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shopmind_storage::BlobStore;

use crate::error::RecsError;
use crate::topk::{f32_rows, f32s_to_le, top_k_quantised, QuantRows, Rows};
use shopmind_artifacts as artifact;
use shopmind_catalog::CatalogItem;

pub const KIND: &str = "items";
/// The per-row text keys' file: [`TextKey::LEN`] bytes a row, in row order.
pub const TEXT_KEYS_FILE: &str = "text_keys.bin";
/// The int8 rows the first stage of [`ItemIndex::nearest`] scans, and their scales: published
/// so a cold start reads them instead of quantising every row again.
pub const QUANT_CODES_FILE: &str = "vectors.i8";
pub const QUANT_SCALES_FILE: &str = "scales.f32";

/// What a row's vector was embedded from: the first 16 bytes of the sha256 of the exact text
/// the encoder read. Two items with the same key have the same vector under the same model,
/// so a new catalog version reuses it instead of embedding the text again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextKey(pub [u8; 16]);

impl TextKey {
    pub const LEN: usize = 16;

    pub fn of(text: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(text.as_bytes());
        let mut key = [0u8; Self::LEN];
        key.copy_from_slice(&digest[..Self::LEN]);
        Self(key)
    }

    /// Reads a `text_keys.bin` body; `None` when it is not whole keys.
    pub fn parse_all(raw: &[u8]) -> Option<Vec<Self>> {
        if !raw.len().is_multiple_of(Self::LEN) {
            return None;
        }
        Some(
            raw.chunks_exact(Self::LEN)
                .map(|c| {
                    let mut key = [0u8; Self::LEN];
                    key.copy_from_slice(c);
                    Self(key)
                })
                .collect(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemMeta {
    pub item_id: String,
    pub title: String,
    #[serde(default)]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    pub in_stock: bool,
    /// When the item was added (Unix seconds), from the catalog's `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
}

impl From<&CatalogItem> for ItemMeta {
    fn from(c: &CatalogItem) -> Self {
        Self {
            item_id: c.item_id.clone(),
            title: c.title.clone(),
            category: c.category.clone(),
            brand: c.brand.clone(),
            price: c.price,
            in_stock: c.in_stock,
            created_at: c.created_unix(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ItemIndex {
    version: String,
    model: String,
    dim: usize,
    meta: Vec<ItemMeta>,
    vectors: Rows<f32>,
    /// The same rows in int8 for the first stage of [`Self::nearest`].
    quant: QuantRows,
    rows: HashMap<String, usize>,
    /// See [`Self::showcase`]; built on the first list that needs it, not at load, since
    /// only a shop without enough behaviour (or a narrow filter) ever reads it.
    showcase: std::sync::OnceLock<Vec<u32>>,
    /// Each row's [`TextKey`] when the indexer built this index (empty when loaded to serve).
    text_keys: Vec<TextKey>,
}

impl ItemIndex {
    /// Checks shapes, ids and values; rows are L2-normalised so a dot product is a cosine.
    pub fn new(
        version: &str,
        model: &str,
        dim: usize,
        meta: Vec<ItemMeta>,
        mut vectors: Vec<f32>,
    ) -> Result<Self, RecsError> {
        check_shape(dim, vectors.len(), meta.len())?;
        if let Some(bad) = vectors.iter().position(|x| !x.is_finite()) {
            return Err(RecsError::Invalid(format!(
                "item {} has a non-finite embedding value",
                meta[bad / dim].item_id
            )));
        }
        for row in vectors.chunks_exact_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            // A row that is unit length already is left bit for bit as it is: a vector
            // reused from the previous version stays the one that was published.
            if norm > 1e-12 && (norm - 1.0).abs() > 1e-6 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let quant = QuantRows::new(&vectors, dim);
        Self::assemble(version, model, dim, meta, Rows::Owned(vectors), quant)
    }

    /// A published version's rows as they were read: their bytes are sha256-equal to what
    /// [`Self::new`] checked (finite) and normalised when the indexer built them, so a cold
    /// start only checks the shapes and keeps the rows in the file's own bytes.
    fn published(
        version: &str,
        model: &str,
        dim: usize,
        meta: Vec<ItemMeta>,
        vectors: Rows<f32>,
        quant: Option<QuantRows>,
    ) -> Result<Self, RecsError> {
        let values = vectors.as_slice();
        check_shape(dim, values.len(), meta.len())?;
        // Versions published before the int8 rows were stored are quantised here.
        let quant = quant.unwrap_or_else(|| QuantRows::new(values, dim));
        Self::assemble(version, model, dim, meta, vectors, quant)
    }

    fn assemble(
        version: &str,
        model: &str,
        dim: usize,
        meta: Vec<ItemMeta>,
        vectors: Rows<f32>,
        quant: QuantRows,
    ) -> Result<Self, RecsError> {
        let mut rows = HashMap::with_capacity(meta.len());
        for (i, m) in meta.iter().enumerate() {
            if rows.insert(m.item_id.clone(), i).is_some() {
                return Err(RecsError::Invalid(format!(
                    "item_id {:?} appears twice",
                    m.item_id
                )));
            }
        }
        Ok(Self {
            version: version.to_owned(),
            model: model.to_owned(),
            dim,
            showcase: std::sync::OnceLock::new(),
            meta,
            quant,
            vectors,
            rows,
            text_keys: Vec::new(),
        })
    }

    /// Records what each row was embedded from, written as `text_keys.bin` on publish.
    pub fn with_text_keys(mut self, keys: Vec<TextKey>) -> Result<Self, RecsError> {
        if keys.len() != self.meta.len() {
            return Err(RecsError::Invalid(format!(
                "{} text keys for {} items",
                keys.len(),
                self.meta.len()
            )));
        }
        self.text_keys = keys;
        Ok(self)
    }

    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn model(&self) -> &str {
        &self.model
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn len(&self) -> usize {
        self.meta.len()
    }
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }
    pub fn row(&self, item_id: &str) -> Option<usize> {
        self.rows.get(item_id).copied()
    }
    pub fn meta(&self, row: usize) -> Option<&ItemMeta> {
        self.meta.get(row)
    }
    pub fn items(&self) -> &[ItemMeta] {
        &self.meta
    }
    /// Every row in the order a shop with no behaviour to go on shows its catalog: newest
    /// first (dated items before undated ones, which keep catalog order), taking one item
    /// from each top-level category in turn so the first few span the range, not one aisle.
    pub fn showcase(&self) -> impl Iterator<Item = usize> + '_ {
        self.showcase
            .get_or_init(|| showcase_order(&self.meta))
            .iter()
            .map(|&r| r as usize)
    }
    pub fn vector(&self, row: usize) -> Option<&[f32]> {
        self.vectors
            .as_slice()
            .get(row * self.dim..(row + 1) * self.dim)
    }
    /// The whole matrix, row-major.
    pub fn matrix(&self) -> &[f32] {
        self.vectors.as_slice()
    }
    /// Bytes held in memory, for sizing Lambda memory (vectors + metadata + id map, estimated).
    pub fn memory_bytes(&self) -> usize {
        let meta: usize = self
            .meta
            .iter()
            .map(|m| {
                std::mem::size_of::<ItemMeta>()
                    + m.item_id.len() * 2
                    + m.title.len()
                    + m.category.len()
                    + m.brand.as_ref().map_or(0, String::len)
                    + std::mem::size_of::<(String, usize)>()
                    + std::mem::size_of::<u32>()
            })
            .sum();
        self.vectors.as_slice().len() * 4 + self.quant.memory_bytes() + meta
    }

    /// The `k` rows nearest `query` (a unit vector) among those `keep` accepts, best first,
    /// with exact cosine scores: an int8 scan shortlists, the f32 rows decide.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        keep: impl FnMut(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        top_k_quantised(self.vectors.as_slice(), &self.quant, query, k, keep)
    }

    /// Writes this index as a new version and moves `LATEST` to it.
    pub async fn publish(
        &self,
        blobs: &dyn BlobStore,
        created_at: i64,
    ) -> Result<artifact::ArtifactManifest, RecsError> {
        let (files, meta) = self.files()?;
        artifact::publish(blobs, KIND, &self.version, created_at, files, meta)
            .await
            .map_err(RecsError::from)
    }

    /// Writes this index as a new version and moves `LATEST` to it unless `LATEST` names a
    /// newer version already; whether it moved.
    pub async fn publish_unless_newer(
        &self,
        blobs: &dyn BlobStore,
        created_at: i64,
    ) -> Result<bool, RecsError> {
        let (files, meta) = self.files()?;
        artifact::write_version(blobs, KIND, &self.version, created_at, files, meta).await?;
        Ok(artifact::move_pointer_unless_newer(blobs, KIND, &self.version).await?)
    }

    /// The version's files and manifest facts.
    #[allow(clippy::type_complexity)]
    fn files(&self) -> Result<(Vec<(String, Bytes)>, serde_json::Value), RecsError> {
        let vectors = f32s_to_le(self.vectors.as_slice());
        let items = meta_jsonl(&self.meta)?;
        let meta = serde_json::json!({
            "model": self.model, "dimension": self.dim, "count": self.len(), "dtype": "f32le",
        });
        let (codes, scales) = self.quant.to_bytes();
        let mut files = vec![
            ("vectors.f32".into(), Bytes::from(vectors)),
            (QUANT_CODES_FILE.into(), Bytes::from(codes)),
            (QUANT_SCALES_FILE.into(), Bytes::from(scales)),
            ("items.jsonl".into(), Bytes::from(items)),
        ];
        if !self.text_keys.is_empty() {
            let keys: Vec<u8> = self.text_keys.iter().flat_map(|k| k.0).collect();
            files.push((TEXT_KEYS_FILE.into(), Bytes::from(keys)));
        }
        Ok((files, meta))
    }

    /// A version name for an index built now from `items` (time + content hash). The hash
    /// covers every item's metadata, not only its id (a price or stock change is a new index),
    /// and what the vectors are a function of — the model and each row's text key — rather
    /// than the vectors themselves, which at a million rows would be 2 GB to hash again.
    pub fn version_for(
        created_at: i64,
        model: &str,
        meta: &[ItemMeta],
        text_keys: &[TextKey],
    ) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(model.as_bytes());
        h.update([0]);
        for m in meta {
            // Serialising plain data cannot fail; an empty line would still separate items.
            h.update(serde_json::to_vec(m).unwrap_or_default());
            h.update([0]);
        }
        for k in text_keys {
            h.update(k.0);
        }
        artifact::version_name(created_at, &hex::encode(h.finalize()))
    }

    /// The version `LATEST` points at, if any.
    pub async fn latest_version(blobs: &dyn BlobStore) -> Result<Option<String>, RecsError> {
        Ok(artifact::latest(blobs, KIND).await?)
    }

    /// Loads and verifies one version.
    pub async fn load(blobs: &dyn BlobStore, version: &str) -> Result<Self, RecsError> {
        let corrupt = |reason: String| RecsError::Corrupt {
            what: format!("items {version}"),
            reason,
        };
        // items.jsonl is parsed on the blocking pool while the rows still download and hash.
        let items = async {
            let (_, mut files) =
                artifact::load_files(blobs, KIND, version, |name| name == "items.jsonl").await?;
            let raw = artifact::take_file(&mut files, "items.jsonl")?;
            tokio::task::spawn_blocking(move || parse_meta(&raw))
                .await
                .map_err(|e| corrupt(format!("parsing items.jsonl failed: {e}")))?
                .map_err(&corrupt)
        };
        let rows = artifact::load_files(blobs, KIND, version, |name| {
            name != TEXT_KEYS_FILE && name != "items.jsonl"
        });
        let (meta, rows) = tokio::join!(items, rows);
        let (meta, (manifest, mut files)) = (meta?, rows?);
        let dim = manifest.meta["dimension"]
            .as_u64()
            .ok_or_else(|| corrupt("the manifest has no dimension".into()))?
            as usize;
        let model = manifest.meta["model"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let raw = artifact::take_file(&mut files, "vectors.f32")?;
        let vectors =
            f32_rows(raw).ok_or_else(|| corrupt("vectors.f32 is not whole f32 values".into()))?;
        let quant = match (
            artifact::take_file(&mut files, QUANT_CODES_FILE),
            artifact::take_file(&mut files, QUANT_SCALES_FILE),
        ) {
            (Ok(codes), Ok(scales)) => Some(
                QuantRows::from_bytes(codes, &scales, meta.len(), dim).ok_or_else(|| {
                    corrupt("vectors.i8 and scales.f32 do not fit the rows".into())
                })?,
            ),
            _ => None,
        };
        Self::published(version, &model, dim, meta, vectors, quant)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// The items of the version `LATEST` points at, without their vectors (jobs that need
    /// only ids and categories read one small file instead of the whole matrix).
    pub async fn load_latest_meta(
        blobs: &dyn BlobStore,
    ) -> Result<Option<Vec<ItemMeta>>, RecsError> {
        let Some(version) = Self::latest_version(blobs).await? else {
            return Ok(None);
        };
        let (_, mut files) =
            artifact::load_files(blobs, KIND, &version, |name| name == "items.jsonl").await?;
        let meta =
            parse_meta(&artifact::take_file(&mut files, "items.jsonl")?).map_err(|reason| {
                RecsError::Corrupt {
                    what: format!("items {version}"),
                    reason,
                }
            })?;
        Ok(Some(meta))
    }

    /// Loads whatever `LATEST` points at.
    pub async fn load_latest(blobs: &dyn BlobStore) -> Result<Option<Self>, RecsError> {
        match Self::latest_version(blobs).await? {
            Some(v) => Ok(Some(Self::load(blobs, &v).await?)),
            None => Ok(None),
        }
    }
}

/// `values` row-major values are one row of `dim` for each of `items` items.
fn check_shape(dim: usize, values: usize, items: usize) -> Result<(), RecsError> {
    if dim == 0 || values != items * dim {
        return Err(RecsError::Invalid(format!(
            "{values} values for {items} items of dimension {dim}"
        )));
    }
    Ok(())
}

/// `items.jsonl`: one [`ItemMeta`] per line, as [`parse_meta`] reads it.
pub(crate) fn meta_jsonl(meta: &[ItemMeta]) -> Result<Vec<u8>, RecsError> {
    let mut items = Vec::new();
    for m in meta {
        serde_json::to_writer(&mut items, m).map_err(|e| RecsError::Invalid(e.to_string()))?;
        items.push(b'\n');
    }
    Ok(items)
}

/// `items.jsonl`: one [`ItemMeta`] per line.
pub(crate) fn parse_meta(items: &[u8]) -> Result<Vec<ItemMeta>, String> {
    let mut meta = Vec::new();
    for (i, line) in items.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        meta.push(
            serde_json::from_slice::<ItemMeta>(line)
                .map_err(|e| format!("items.jsonl line {}: {e}", i + 1))?,
        );
    }
    Ok(meta)
}

fn showcase_order(meta: &[ItemMeta]) -> Vec<u32> {
    let mut newest: Vec<usize> = (0..meta.len()).collect();
    // `None` sorts below every time, so undated items come last; ties keep catalog order.
    newest.sort_by(|&a, &b| meta[b].created_at.cmp(&meta[a].created_at).then(a.cmp(&b)));
    let mut aisles: Vec<Vec<u32>> = Vec::new();
    let mut aisle_of: HashMap<&str, usize> = HashMap::new();
    for row in newest {
        let top = crate::cooc::top_category(&meta[row].category);
        let k = *aisle_of.entry(top).or_insert_with(|| {
            aisles.push(Vec::new());
            aisles.len() - 1
        });
        // Rows fit u32: an index of 4 billion items is far past what one instance holds.
        aisles[k].push(row as u32);
    }
    let mut order = Vec::with_capacity(meta.len());
    let mut depth = 0;
    while !aisles.is_empty() {
        aisles.retain(|a| a.len() > depth);
        order.extend(aisles.iter().map(|a| a[depth]));
        depth += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_change_alone_is_a_new_version() {
        let item = |in_stock: bool, price: f64| ItemMeta {
            item_id: "hat".into(),
            title: "Hat".into(),
            category: "Accessories".into(),
            brand: None,
            price: Some(price),
            in_stock,
            created_at: None,
        };
        let key = [TextKey::of("Hat. Accessories")];
        let v = |m: ItemMeta| ItemIndex::version_for(1_700_000_000, "m", &[m], &key);
        assert_eq!(v(item(true, 20.0)), v(item(true, 20.0)));
        assert_ne!(v(item(true, 20.0)), v(item(false, 20.0)), "stock");
        assert_ne!(v(item(true, 20.0)), v(item(true, 25.0)), "price");
        // What the vectors come from: another text, or another model, is another index.
        let other = [TextKey::of("Hat. Accessories. Wool")];
        assert_ne!(
            v(item(true, 20.0)),
            ItemIndex::version_for(1_700_000_000, "m", &[item(true, 20.0)], &other)
        );
        assert_ne!(
            v(item(true, 20.0)),
            ItemIndex::version_for(1_700_000_000, "m2", &[item(true, 20.0)], &key)
        );
    }

    #[test]
    fn text_keys_are_the_sha256_prefix_and_parse_back() {
        // sha256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 … (FIPS 180-2, appendix B.1).
        let k = TextKey::of("abc");
        assert_eq!(hex::encode(k.0), "ba7816bf8f01cfea414140de5dae2223");
        let raw: Vec<u8> = [k, TextKey::of("")].iter().flat_map(|k| k.0).collect();
        assert_eq!(TextKey::parse_all(&raw).unwrap(), vec![k, TextKey::of("")]);
        assert!(TextKey::parse_all(&raw[..20]).is_none());
    }
}
