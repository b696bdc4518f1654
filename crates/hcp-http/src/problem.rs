//! RFC 9457 problem details: one error enum, one mapping to HTTP.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hcp_domain::{FieldError, ValidationErrors};
use serde::Serialize;

/// A documented problem type: its stable slug (the `type` is `/problems/{slug}`), status and titles.
#[derive(Debug, Clone, Copy)]
pub struct ProblemType {
    /// Stable identifier, part of the API contract.
    pub slug: &'static str,
    /// HTTP status.
    pub status: u16,
    /// English title.
    pub title: &'static str,
    /// zh-CN title.
    pub title_zh: &'static str,
    /// zh-CN explanation of when it happens and what to do.
    pub help_zh: &'static str,
}

/// Every problem type hcp answers with; served at `/problems/{slug}`.
pub const PROBLEM_TYPES: &[ProblemType] = &[
    ProblemType {
        slug: "validation-failed",
        status: 422,
        title: "Validation failed",
        title_zh: "字段校验未通过",
        help_zh: "请求中的一个或多个字段不符合要求,见 errors 中每个字段的说明,修改后重试。",
    },
    ProblemType {
        slug: "dimension-not-offered",
        status: 422,
        title: "Evaluation dimension not offered on this channel",
        title_zh: "评价维度不可用",
        help_zh: "维度评价须使用目录中评价维度表的编码,且该维度须用于本评价渠道(errors 中 unknown_dimension:目录中没有该维度;dimension_not_offered:该渠道不提供该维度)。请按 GET /api/v1/directory/dimensions 更正后重试。",
    },
    ProblemType {
        slug: "malformed-json",
        status: 400,
        title: "Malformed JSON",
        title_zh: "JSON 格式错误",
        help_zh: "请求体不是合法的 JSON,请检查括号、引号和逗号。",
    },
    ProblemType {
        slug: "unsupported-media-type",
        status: 415,
        title: "Unsupported media type",
        title_zh: "不支持的内容类型",
        help_zh: "请求体须为 JSON,请设置 Content-Type: application/json。",
    },
    ProblemType {
        slug: "payload-too-large",
        status: 413,
        title: "Payload too large",
        title_zh: "请求体过大",
        help_zh: "请求体超过大小上限,请缩短文字评价等内容。",
    },
    ProblemType {
        slug: "invalid-query",
        status: 400,
        title: "Invalid query parameters",
        title_zh: "查询参数错误",
        help_zh: "查询参数缺失或格式不正确,见 detail。",
    },
    ProblemType {
        slug: "not-found",
        status: 404,
        title: "Not found",
        title_zh: "资源不存在",
        help_zh: "请求的地址或资源不存在。",
    },
    ProblemType {
        slug: "method-not-allowed",
        status: 405,
        title: "Method not allowed",
        title_zh: "不支持的请求方法",
        help_zh: "该地址不支持此 HTTP 方法。",
    },
    ProblemType {
        slug: "conflict",
        status: 409,
        title: "Conflict",
        title_zh: "与现有数据冲突",
        help_zh: "请求与现有数据冲突(例如删除仍被引用的目录数据),见 detail。",
    },
    ProblemType {
        slug: "import-rejected",
        status: 422,
        title: "Import rejected",
        title_zh: "导入文件有错误,未导入任何数据",
        help_zh: "文件中有不合格的行,整个文件均未导入;rows 列出每一行的行号和字段错误,修改后重新导入。",
    },
    ProblemType {
        slug: "unauthenticated",
        status: 401,
        title: "Authentication required",
        title_zh: "需要登录",
        help_zh: "该接口需要登录:先 POST /api/v1/auth/login 取得会话(Cookie 或 Authorization: Bearer 令牌),会话过期后请重新登录。",
    },
    ProblemType {
        slug: "credential-invalid",
        status: 401,
        title: "Channel credential missing, unknown or revoked",
        title_zh: "渠道密钥缺失、无效或已吊销",
        help_zh: "评价设备和对接系统须以 Authorization: Bearer <密钥> 提交评价;密钥由管理员签发,吊销后不能再用,请联系管理员重新签发。",
    },
    ProblemType {
        slug: "duplicate-rating",
        status: 409,
        title: "This stage of the service record is already rated",
        title_zh: "该办件的该环节已评价",
        help_zh: "一次服务的每个环节只能首评一次(existing_rating_id 为已有评价);如需追评请提交 assess_number = 2。",
    },
    ProblemType {
        slug: "rating-in-progress",
        status: 409,
        title: "This stage of the service record is being rated by another request",
        title_zh: "该办件的该环节正在提交评价",
        help_zh: "同一环节的另一次提交尚未完成(例如连接中断的上一次请求);评价尚未记录。请按 Retry-After 等待后重试(单条评价带上相同的 Idempotency-Key):上一次若未送达,重试会以同一评价编号完成。",
    },
    ProblemType {
        slug: "idempotency-key-reused",
        status: 422,
        title: "Idempotency-Key reused with a different body",
        title_zh: "幂等键已用于另一个请求",
        help_zh: "同一个 Idempotency-Key 只能用于同一请求体的重试;新的请求请使用新的键。",
    },
    ProblemType {
        slug: "rate-limited",
        status: 429,
        title: "Too many requests",
        title_zh: "请求过于频繁",
        help_zh: "该密钥、地址或账号的请求超过了频率上限,请按 Retry-After 等待后重试;本次请求未被处理(评价未被记录)。",
    },
    ProblemType {
        slug: "forbidden",
        status: 403,
        title: "Forbidden",
        title_zh: "无权执行该操作",
        help_zh: "当前账号的角色不允许此操作,见 detail;如需办理请联系有相应角色的人员。",
    },
    ProblemType {
        slug: "cross-site-request",
        status: 403,
        title: "Cross-site request refused",
        title_zh: "拒绝跨站请求",
        help_zh: "以登录 Cookie 认证的修改请求必须来自本站页面(Origin 与本站一致);脚本调用请使用 Authorization: Bearer。",
    },
    ProblemType {
        slug: "transition-refused",
        status: 409,
        title: "Action not allowed in the current state",
        title_zh: "工单当前状态不允许该操作",
        help_zh: "工单的当前状态(state)不允许此操作;allowed_actions 列出当前可执行的操作。",
    },
    ProblemType {
        slug: "invitation-invalid",
        status: 404,
        title: "Invalid invitation link",
        title_zh: "评价邀请链接无效",
        help_zh: "链接不是本系统签发的(可能被截断或篡改),请使用短信或二维码中的完整链接。",
    },
    ProblemType {
        slug: "invitation-used",
        status: 409,
        title: "Invitation already used",
        title_zh: "该评价邀请已使用",
        help_zh: "每个评价邀请只能提交一次,您的评价已经收到,感谢参与。",
    },
    ProblemType {
        slug: "invitation-expired",
        status: 410,
        title: "Invitation expired",
        title_zh: "评价邀请已过期",
        help_zh: "该评价邀请已超过有效期,如需评价请联系办理部门或拨打 12345。",
    },
    ProblemType {
        slug: "pii-key-missing",
        status: 503,
        title: "Personal-data key not configured",
        title_zh: "未配置个人信息加密密钥",
        help_zh: "服务未配置 HCP_PII_KEY,无法加密或解密评价人身份信息;请运维配置密钥后重试。",
    },
    ProblemType {
        slug: "broker-unavailable",
        status: 503,
        title: "Message broker unavailable",
        title_zh: "消息队列暂不可用",
        help_zh: "评价未被接收、也未被记录;请稍后重试(见 Retry-After)。",
    },
    ProblemType {
        slug: "database-unavailable",
        status: 503,
        title: "Database unavailable",
        title_zh: "数据库暂不可用",
        help_zh: "数据库暂时无法访问,请求未完成;请稍后重试(见 Retry-After)。",
    },
    ProblemType {
        slug: "request-timeout",
        status: 503,
        title: "Request timed out",
        title_zh: "请求处理超时",
        help_zh: "服务未能在时限内完成处理(HCP_REQUEST_TIMEOUT_SECS),请稍后重试;评价接口重试时请带上相同的 Idempotency-Key。",
    },
    ProblemType {
        slug: "internal-error",
        status: 500,
        title: "Internal server error",
        title_zh: "服务器内部错误",
        help_zh: "服务器出现意外错误,已记录日志;请稍后重试或联系运维。",
    },
];

/// The one error type of the HTTP API. Each variant maps to exactly one problem type.
#[derive(Debug)]
pub enum ApiError {
    /// Fields failed validation (422).
    Validation(ValidationErrors),
    /// Dimension grades naming a dimension the catalogue lacks or the rating's channel does not
    /// offer (422); each failing dimension is an error (`unknown_dimension`,
    /// `dimension_not_offered`).
    DimensionNotOffered(ValidationErrors),
    /// The body is not JSON (400).
    MalformedJson(String),
    /// The body is not declared as JSON (415).
    UnsupportedMediaType,
    /// The body exceeds the limit (413).
    PayloadTooLarge,
    /// Query parameters are missing or malformed (400).
    InvalidQuery(String),
    /// No such route or resource (404).
    NotFound,
    /// No such method on the route (405).
    MethodNotAllowed,
    /// The request conflicts with stored data (409); the text says with what.
    Conflict(String),
    /// An import file has bad rows (422); nothing was imported. `rows` lists each bad row.
    ImportRejected {
        /// How many rows are bad.
        bad_rows: usize,
        /// The rows, each with its line and failing fields.
        rows: serde_json::Value,
    },
    /// No valid session or credential (401).
    Unauthenticated,
    /// A channel credential is missing, unknown or revoked (401); the text says which.
    CredentialInvalid(String),
    /// A first rating of this (service record, stage) exists (409), naming it.
    DuplicateRating {
        /// The rating that holds the stage.
        existing_rating_id: String,
    },
    /// Another attempt holds the stage and has not finished producing (409); retry after this
    /// many seconds.
    RatingInProgress(u64),
    /// Over a per-key or per-address rate limit (429); retry after this many seconds.
    RateLimited(u64),
    /// An Idempotency-Key came back with another body (422).
    IdempotencyKeyReused,
    /// The caller's role does not allow this (403); the text says what is missing.
    Forbidden(String),
    /// A state-changing request authenticated by the session cookie whose `Origin` is not this
    /// site (403): a cross-site request forgery, refused before any handler runs.
    CrossSiteRequest,
    /// A work-order action the current state does not allow (409), naming the state and the
    /// allowed actions.
    TransitionRefused {
        /// The current state.
        state: String,
        /// The refused action.
        action: String,
        /// What the state allows.
        allowed: Vec<String>,
    },
    /// An invitation token that was never issued or was tampered with (404).
    InvitationInvalid,
    /// An invitation already used (409).
    InvitationUsed,
    /// An invitation past its expiry (410).
    InvitationExpired,
    /// No HCP_PII_KEY configured (503).
    PiiKeyMissing,
    /// Kafka did not acknowledge in time (503).
    BrokerUnavailable(String),
    /// PostgreSQL could not answer (503).
    DatabaseUnavailable(String),
    /// The request did not finish within the server's limit (503).
    RequestTimeout,
    /// Anything else (500); the cause is logged, not shown.
    Internal(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.problem_type();
        write!(f, "{} ({})", p.title, p.slug)
    }
}

impl std::error::Error for ApiError {}

fn find(slug: &str) -> &'static ProblemType {
    PROBLEM_TYPES.iter().find(|p| p.slug == slug).expect("every ApiError slug is in PROBLEM_TYPES")
}

impl ApiError {
    /// The problem type of this error.
    pub fn problem_type(&self) -> &'static ProblemType {
        find(match self {
            ApiError::Validation(_) => "validation-failed",
            ApiError::DimensionNotOffered(_) => "dimension-not-offered",
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::PayloadTooLarge => "payload-too-large",
            ApiError::InvalidQuery(_) => "invalid-query",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::ImportRejected { .. } => "import-rejected",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::CredentialInvalid(_) => "credential-invalid",
            ApiError::DuplicateRating { .. } => "duplicate-rating",
            ApiError::RatingInProgress(_) => "rating-in-progress",
            ApiError::IdempotencyKeyReused => "idempotency-key-reused",
            ApiError::RateLimited(_) => "rate-limited",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::CrossSiteRequest => "cross-site-request",
            ApiError::TransitionRefused { .. } => "transition-refused",
            ApiError::InvitationInvalid => "invitation-invalid",
            ApiError::InvitationUsed => "invitation-used",
            ApiError::InvitationExpired => "invitation-expired",
            ApiError::PiiKeyMissing => "pii-key-missing",
            ApiError::BrokerUnavailable(_) => "broker-unavailable",
            ApiError::DatabaseUnavailable(_) => "database-unavailable",
            ApiError::RequestTimeout => "request-timeout",
            ApiError::Internal(_) => "internal-error",
        })
    }

    /// Whether the same request may succeed later unchanged (a dependency down, a time or rate
    /// limit, a concurrent attempt at the same stage): such answers carry `Retry-After` and are
    /// never kept as an Idempotency-Key's answer.
    pub fn is_retryable(&self) -> bool {
        self.problem_type().status >= 500 || matches!(self, ApiError::RatingInProgress(_) | ApiError::RateLimited(_))
    }

    /// One invalid field, as a validation error.
    pub fn field(field: impl Into<String>, code: &'static str, zh: impl Into<String>, en: impl Into<String>) -> Self {
        ApiError::Validation(ValidationErrors(vec![FieldError::new(field, code, zh, en)]))
    }

    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        let t = self.problem_type();
        let (detail, errors) = match self {
            ApiError::Validation(v) | ApiError::DimensionNotOffered(v) => {
                let first = v.0.first().map(|e| e.message.clone()).unwrap_or_default();
                (format!("{}:{}", t.title_zh, first), v.0.clone())
            }
            ApiError::MalformedJson(e)
            | ApiError::InvalidQuery(e)
            | ApiError::Conflict(e)
            | ApiError::Forbidden(e)
            | ApiError::CredentialInvalid(e) => (format!("{}:{e}", t.title_zh), vec![]),
            ApiError::DuplicateRating { existing_rating_id } => {
                (format!("{}:已有评价 {existing_rating_id}", t.title_zh), vec![])
            }
            ApiError::TransitionRefused { state, action, allowed } => (
                format!(
                    "{}:当前状态 {state} 不能执行 {action};可执行:{}",
                    t.title_zh,
                    if allowed.is_empty() { "无(工单已办结)".to_owned() } else { allowed.join("、") }
                ),
                vec![],
            ),
            ApiError::ImportRejected { bad_rows, .. } => (format!("{}:{bad_rows} 行有错误", t.title_zh), vec![]),
            // Causes of dependency and internal failures are logged, never shown.
            _ => (format!("{}。{}", t.title_zh, t.help_zh), vec![]),
        };
        let rows = match self {
            ApiError::ImportRejected { rows, .. } => Some(rows.clone()),
            _ => None,
        };
        let (state, allowed_actions) = match self {
            ApiError::TransitionRefused { state, allowed, .. } => (Some(state.clone()), Some(allowed.clone())),
            _ => (None, None),
        };
        let existing_rating_id = match self {
            ApiError::DuplicateRating { existing_rating_id } => Some(existing_rating_id.clone()),
            _ => None,
        };
        Problem {
            problem_type: format!("/problems/{}", t.slug),
            title: t.title.to_string(),
            status: t.status,
            detail,
            errors,
            rows,
            state,
            allowed_actions,
            existing_rating_id,
        }
    }
}

/// The RFC 9457 body. `title` is English; `detail` and each error's `message` are zh-CN.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable problem type URI, e.g. `/problems/validation-failed`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// English title.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// zh-CN explanation of this occurrence.
    pub detail: String,
    /// The failing fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorDoc>)]
    pub errors: Vec<FieldError>,
    /// For `import-rejected`: every bad row with its section, index, line and failing fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub rows: Option<serde_json::Value>,
    /// For `transition-refused`: the work order's current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For `transition-refused`: the actions the current state allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<Vec<String>>,
    /// For `duplicate-rating`: the rating that already holds the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_rating_id: Option<String>,
}

/// A failing field (documentation twin of [`hcp_domain::FieldError`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    /// JSON path of the field.
    field: String,
    /// Stable code, e.g. `out_of_range`.
    code: String,
    /// zh-CN message.
    message: String,
    /// English message.
    message_en: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::BrokerUnavailable(cause) | ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(%cause, problem = self.problem_type().slug, "dependency unavailable")
            }
            _ => tracing::debug!(problem = self.problem_type().slug, "client error"),
        }
        let retry = matches!(
            self,
            ApiError::BrokerUnavailable(_) | ApiError::DatabaseUnavailable(_) | ApiError::RequestTimeout
        );
        let challenge = matches!(self, ApiError::Unauthenticated | ApiError::CredentialInvalid(_));
        let mut resp = self.to_problem().into_response();
        if retry {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let ApiError::RateLimited(secs) | ApiError::RatingInProgress(secs) = &self {
            if let Ok(v) = HeaderValue::from_str(&secs.max(&1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if challenge {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hcp\""));
        }
        resp
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problems always serialize");
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body).into_response()
    }
}

/// Whether a database error means "unavailable, retry" (a 503) rather than a bug (a 500): the
/// pool or the connection failed, or PostgreSQL itself answered that it cannot serve now
/// ([`unavailable_sqlstate`]).
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| unavailable_sqlstate(&c)),
        _ => false,
    }
}

/// The SQLSTATEs with which PostgreSQL says "not now" rather than "this statement is wrong": a
/// connection exception (class 08); the server shutting down, crashing or its postmaster lost
/// (57P01 `admin_shutdown`, also sent as "terminating connection due to unexpected postmaster
/// exit"; 57P02 `crash_shutdown`; 57P03 `cannot_connect_now` while it starts or recovers); no
/// connection slot left (53300); and a standby that cannot write yet (25006, during a failover).
/// A statement cut off by one of these has not committed, so the client may send it again.
pub fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
}

/// A database error: text PostgreSQL cannot store (a NUL) → 422; unreachable or not serving now
/// ([`database_unavailable`]) → 503 `database-unavailable`; anything else → 500 (logged, not shown).
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // PostgreSQL text cannot hold NUL (22021): a client's text with one is the client's
        // mistake wherever it slipped past a field check, never a 500.
        if let Some(db) = e.as_database_error() {
            if db.code().as_deref() == Some("22021") {
                return ApiError::field(
                    "",
                    "nul_character",
                    "文本不能包含 NUL 字符(\\u0000)",
                    "text must not contain the NUL character",
                );
            }
        }
        if database_unavailable(&e) {
            ApiError::DatabaseUnavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(v: ValidationErrors) -> Self {
        ApiError::Validation(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_serve_now_is_unavailable_and_a_wrong_statement_is_not() {
        for code in ["08006", "08003", "57P01", "57P02", "57P03", "53300", "25006"] {
            assert!(unavailable_sqlstate(code), "{code}");
        }
        // Unique violation, syntax error, undefined column, division by zero: bugs or conflicts.
        for code in ["23505", "42601", "42703", "22012"] {
            assert!(!unavailable_sqlstate(code), "{code}");
        }
        assert!(database_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!database_unavailable(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn every_problem_type_is_unique_and_documented() {
        let mut slugs: Vec<_> = PROBLEM_TYPES.iter().map(|p| p.slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), PROBLEM_TYPES.len());
        for e in [
            ApiError::Validation(ValidationErrors(vec![])),
            ApiError::DimensionNotOffered(ValidationErrors(vec![])),
            ApiError::MalformedJson(String::new()),
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge,
            ApiError::InvalidQuery(String::new()),
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::Conflict(String::new()),
            ApiError::ImportRejected { bad_rows: 0, rows: serde_json::Value::Null },
            ApiError::Unauthenticated,
            ApiError::CredentialInvalid(String::new()),
            ApiError::DuplicateRating { existing_rating_id: String::new() },
            ApiError::RatingInProgress(6),
            ApiError::IdempotencyKeyReused,
            ApiError::RateLimited(1),
            ApiError::Forbidden(String::new()),
            ApiError::CrossSiteRequest,
            ApiError::TransitionRefused {
                state: "opened".into(),
                action: "reply".into(),
                allowed: vec!["claim".into()],
            },
            ApiError::InvitationInvalid,
            ApiError::InvitationUsed,
            ApiError::InvitationExpired,
            ApiError::PiiKeyMissing,
            ApiError::BrokerUnavailable(String::new()),
            ApiError::DatabaseUnavailable(String::new()),
            ApiError::RequestTimeout,
            ApiError::Internal(String::new()),
        ] {
            let p = e.to_problem();
            assert_eq!(p.problem_type, format!("/problems/{}", e.problem_type().slug));
            assert!(!p.detail.is_empty());
        }
    }
}
