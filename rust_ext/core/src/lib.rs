//! Raceday money-flow core.
//!
//! A pure-Rust crate (no Python): it parses a raw TAB event payload and computes
//! the race update defined by `spec/money-flow.md`. The PyO3 binding in
//! `../binding` is a thin wrapper around it.

pub mod error;
pub mod fields;
mod gzip_fast;
pub mod hash;
pub mod inflate;
pub mod json;
pub mod json_text;
pub mod moves;
pub mod numeric;
pub mod payload;
pub mod state;
pub mod summary;
pub mod time;
pub mod transform;
pub mod update;
pub mod vocab;
pub mod wire;

pub use error::{PayloadError, PayloadErrorKind};
pub use state::{BucketLatest, LastOdds, Pools, PriorState};
pub use summary::{event_summary, EventSummary};
pub use transform::{transform, TransformError};
pub use update::RaceUpdate;

/// The crate version, reported by the Python binding for diagnostics.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Returns the version of the money-flow core.
#[must_use]
pub fn version() -> &'static str {
    VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_the_package() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
        assert!(!version().is_empty());
    }
}
