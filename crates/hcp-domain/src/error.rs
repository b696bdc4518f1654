//! Field-level validation errors with a Chinese message first and an English one beside it.

use serde::Serialize;

/// One failing field of an input, as shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the failing field, e.g. `grade` or `tags[2]`.
    pub field: String,
    /// Stable machine-readable code, e.g. `out_of_range`.
    pub code: &'static str,
    /// zh-CN message for people.
    pub message: String,
    /// English message for people.
    pub message_en: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
        message_en: impl Into<String>,
    ) -> Self {
        Self { field: field.into(), code, message: message.into(), message_en: message_en.into() }
    }
}

/// Every failing field of one input; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} invalid field(s), first: {}", .0.len(), .0.first().map(|e| e.field.as_str()).unwrap_or("-"))]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The failing field names, in input order.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }
}
