//! Copy for the storefront, written so a human can approve it:
//! plan ([`plan`]) → generate ([`prompt`], [`writer`]) → validate ([`validate`]) → repair or fall back
//! ([`compose`]) → store for review ([`draft`], [`service`]); and the batch over the catalog
//! ([`jobs`]). Free of Lambda types; the `copywriter` and `copy-scheduler` functions and the
//! `shopmind copy` command are thin edges over it.

pub mod checks;
pub mod compose;
pub mod draft;
mod error;
pub mod jobs;
pub mod markup;
pub mod plan;
pub mod product;
pub mod prompt;
pub mod service;
pub mod validate;
pub mod verify;
pub mod writer;

pub use checks::{Check, Checks};
pub use draft::{apply_review, Decision, Draft, Freshness, Review, Status};
pub use error::{CopyError, Result};
pub use product::{
    parse_catalog, Audience, Channel, CopyRequest, Locale, Product, Segment, PROMPT_VERSION,
};
pub use service::{
    key_from_parts, key_of, CopyService, DraftFilter, Generated, ModelProvider, NoModel, Outcome,
    MAX_SCANNED_PAGES,
};
pub use validate::{Report, Rule, Rules, RulesConfig, Violation};
pub use writer::{
    Candidate, CandidateOutcome, CopyWriter, Source, TextModel, Variant, WriterConfig, Written,
};
