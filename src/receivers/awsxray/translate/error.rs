//! Why a datagram was dropped.

/// Why a datagram was dropped; the label of the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("no newline between header and segment")]
    MissingHeader,
    #[error("header is not {{\"format\":\"json\",\"version\":1}}")]
    BadHeader,
    #[error("segment is not valid JSON")]
    BadJson,
    #[error("segment is missing a required field")]
    MissingField,
    #[error("malformed trace or segment id")]
    BadId,
    #[error("unexpected namespace")]
    UnexpectedNamespace,
    #[error("unparseable sql url")]
    BadSqlUrl,
}

impl DatagramError {
    /// Label value for the self-metric.
    pub fn reason(self) -> &'static str {
        match self {
            DatagramError::MissingHeader => "missing_header",
            DatagramError::BadHeader => "bad_header",
            DatagramError::BadJson => "bad_json",
            DatagramError::MissingField => "missing_field",
            DatagramError::BadId => "bad_id",
            DatagramError::UnexpectedNamespace => "unexpected_namespace",
            DatagramError::BadSqlUrl => "bad_sql_url",
        }
    }
}
