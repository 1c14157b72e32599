//! Support's domain, free of Lambda and HTTP types: knowledge-base articles and chunks, a BM25
//! index, hybrid retrieval fused by reciprocal rank, linear heads on encoder embeddings (intent,
//! sentiment), and entity extraction with masking.

pub mod assistant;
pub mod bm25;
mod error;
pub mod eval;
pub mod grounded;
pub mod head;
pub mod helpcentre;
pub mod indexer;
pub mod intent;
pub mod kb;
pub mod mask;
pub mod retrieve;
pub mod translate;

pub use assistant::{
    respond, retrieval_query, AnswerSource, AssistantConfig, Citation, EscalationReason,
    GenerateWhen, Models, PastTurn, Question, Reply, Role, SentenceEncoder, Sentiment,
};
pub use bm25::{tokenize, Bm25};
pub use error::SupportError;
pub use grounded::{check_grounded, writes_cjk, AnswerWriter, Passage};
pub use head::{train, LinearHead, TrainConfig};
pub use intent::{Exemplar, IntentCatalog, IntentModel, IntentPrediction, KnnBlend};
pub use kb::{chunk_article, parse_articles, Article, BadLine, Chunk, ChunkConfig, ParsedArticles};
pub use mask::{extract_entities, mask, Entity, EntityKind};
pub use retrieve::{Hit, KbIndex, RetrieveConfig, Retrieved};
pub use translate::{Language, Translator};

pub use shopmind_inference::dot;
