//! Payload errors: what the binding turns into `PayloadDecodeError` / `PayloadSchemaError`.

use std::fmt;

/// Which class of malformed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadErrorKind {
    /// Not UTF-8, not valid JSON, or the root is not an object.
    Decode,
    /// Valid JSON, but a required field is missing, mistyped or out of range.
    Schema,
}

/// A malformed payload; the message names the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// Decode or schema.
    pub kind: PayloadErrorKind,
    /// Human-readable, starting with the field path where there is one.
    pub message: String,
}

impl PayloadError {
    /// A decode error.
    #[must_use]
    pub fn decode(message: impl Into<String>) -> Self {
        Self { kind: PayloadErrorKind::Decode, message: message.into() }
    }

    /// A schema error.
    #[must_use]
    pub fn schema(message: impl Into<String>) -> Self {
        Self { kind: PayloadErrorKind::Schema, message: message.into() }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PayloadError {}
