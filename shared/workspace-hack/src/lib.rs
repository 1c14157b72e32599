//! Deliberately empty: this crate exists for its `Cargo.toml`, which switches on in each
//! function's own dependency graph the features the workspace's test build unifies (see there).
