//! Extractors whose rejections are problems: a client mistake is a 4xx with the failing field.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use hcp_domain::{FieldError, ValidationErrors};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Default largest JSON body, in bytes.
pub const DEFAULT_JSON_LIMIT: usize = 64 * 1024;

/// How much of an oversize body is still read (and discarded) so that the client receives the
/// 413 answer instead of a connection reset; beyond this the connection is simply closed.
pub const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

/// A JSON body of at most `LIMIT` bytes. Not JSON → 400 `malformed-json`; wrong content type →
/// 415; over the limit → 413; a field of the wrong type or an unknown field → 422 naming the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T, const LIMIT: usize = DEFAULT_JSON_LIMIT>(pub T);

/// Reads `body` up to `limit` bytes. An oversize body up to [`DRAIN_LIMIT`] (or `limit`) is read to its end
/// and discarded, so the 413 reaches the client.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::MalformedJson(format!("请求体读取失败:{e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT.max(limit) {
            return Err(ApiError::PayloadTooLarge);
        }
        if seen <= limit {
            buf.extend_from_slice(&data);
        }
    }
    if seen > limit {
        Err(ApiError::PayloadTooLarge)
    } else {
        Ok(Bytes::from(buf))
    }
}

/// Checks the content type and reads a JSON body of at most `limit` bytes.
async fn json_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(ApiError::PayloadTooLarge);
    }
    read_limited(req.into_body(), limit).await
}

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, LIMIT).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// [`ApiJson`] that also keeps the raw body (for an idempotency fingerprint).
#[derive(Debug, Clone)]
pub struct ApiJsonBytes<T, const LIMIT: usize = DEFAULT_JSON_LIMIT>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S> for ApiJsonBytes<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, LIMIT).await?;
        parse_json(&bytes).map(|v| ApiJsonBytes(v, bytes))
    }
}

/// A JSON body that may be absent (an action without a note): an empty body or `null` is
/// `None`; anything else must be JSON, with the same problems as [`ApiJson`].
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let (parts, body) = req.into_parts();
        let bytes = read_limited(body, DEFAULT_JSON_LIMIT).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !has_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        // JSON `null` is "no body" too.
        if bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        ApiJson::<T>::from_request(req, state).await.map(|ApiJson(v)| OptionalJson(Some(v)))
    }
}

/// A list page's `(limit, offset)` from its query: limit 1–500 (default 50), offset not
/// negative (default 0); anything else is a 400 `invalid-query`.
pub fn page_bounds(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let (limit, offset) = (limit.unwrap_or(50), offset.unwrap_or(0));
    if !(1..=500).contains(&limit) || offset < 0 {
        return Err(ApiError::InvalidQuery("limit 须为 1–500,offset 不能为负".into()));
    }
    Ok((limit, offset))
}

/// Parses `bytes` as `T`, mapping syntax errors to `malformed-json` and shape errors to a
/// field-level `validation-failed`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("第 {} 行第 {} 列:{e}", e.line(), e.column())))?;
    integral_numbers(&mut value);
    from_value(&value)
}

/// Writes every number with no fractional part (`5.0`, `-2e0`) as the integer it is. JSON Schema
/// (and so the OpenAPI document) counts such a number as an `integer`, and a client's JSON library
/// may print integers that way; serde would refuse it for an integer field.
fn integral_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Deserializes `value` as `T`; a shape error is a field-level `validation-failed`.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| ApiError::Validation(ValidationErrors(vec![shape_error(e)])))
}

/// The field error of a failed typed deserialization: the path of the offending key, and
/// whether it was unknown, of the wrong type or otherwise invalid.
pub fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let inner = e.into_inner().to_string();
    // The path already ends in the offending key (also for unknown fields); "." is the root.
    // A missing field is reported at its parent, so its name is appended from the message.
    let parent = if path == "." { String::new() } else { path };
    let missing = inner.strip_prefix("missing field `").and_then(|r| r.split('`').next());
    let field = match missing {
        Some(name) if parent.is_empty() => name.to_string(),
        Some(name) => format!("{parent}.{name}"),
        None => parent,
    };
    let (code, zh) = if inner.starts_with("unknown field") {
        ("unknown_field", format!("不支持的字段 {field}"))
    } else if inner.starts_with("invalid type") {
        ("invalid_type", format!("字段 {field} 的类型不正确:{inner}"))
    } else if inner.starts_with("missing field") {
        ("required", format!("缺少必填字段:{inner}"))
    } else {
        ("invalid", format!("字段 {field} 无效:{inner}"))
    };
    FieldError::new(field, code, zh, inner)
}

/// Query parameters; malformed ones are a 400 `invalid-query` problem.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|r| ApiError::InvalidQuery(r.body_text()))
    }
}

/// Path parameters; a segment that does not parse (`/calendar/years/2147483648`, invalid
/// UTF-8) names no resource, so it is a 404 `not-found` problem like any unknown path.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(p)| ApiPath(p)).map_err(|_| ApiError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        grade: Option<i64>,
        tags: Option<Vec<String>>,
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(v) => v.0.into_iter().map(|f| f.field).collect(),
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(fields(parse_json::<Body>(br#"{"grade":"five"}"#).unwrap_err()), vec!["grade"]);
        assert_eq!(fields(parse_json::<Body>(br#"{"tags":["a",3]}"#).unwrap_err()), vec!["tags[1]"]);
        assert_eq!(fields(parse_json::<Body>(br#"{"grad":5}"#).unwrap_err()), vec!["grad"]);
        assert!(matches!(parse_json::<Body>(b"{\"grade\":").unwrap_err(), ApiError::MalformedJson(_)));
        assert!(matches!(parse_json::<Body>(b"[1]").unwrap_err(), ApiError::Validation(_)));
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Required {
            name: String,
        }
        assert_eq!(fields(parse_json::<Required>(b"{}").unwrap_err()), vec!["name"]);
    }

    #[test]
    fn integral_floats_are_integers() {
        let b: Body = parse_json(br#"{"grade": 5.0}"#).unwrap();
        assert_eq!(b.grade, Some(5));
        let b: Body = parse_json(br#"{"grade": -2e0}"#).unwrap();
        assert_eq!(b.grade, Some(-2));
        assert_eq!(fields(parse_json::<Body>(br#"{"grade": 4.5}"#).unwrap_err()), vec!["grade"]);
        #[derive(Debug, serde::Deserialize)]
        struct Real {
            x: f64,
        }
        assert_eq!(parse_json::<Real>(br#"{"x": 3.0}"#).unwrap().x, 3.0);
    }
}
