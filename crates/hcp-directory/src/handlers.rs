//! Directory, roster and attribution handlers: thin; the rules are in `hcp-domain`, the SQL in
//! `hcp-store`.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset, Utc};
use futures::future::join_all;
use hcp_domain::directory::{check_rows, EntityKind, RosterEntry};
use hcp_domain::{Directory, DirectoryData, FieldError, RatingAttributed, ValidationErrors, RATING_ATTRIBUTED_SCHEMA};
use hcp_http::{from_value, read_limited, ApiError, ApiJson, ApiPath, ApiQuery, Caller, Problem};
use hcp_store::{DeleteOutcome, FlaggedRating};
use serde::{Deserialize, Serialize};

use crate::import::{self, Format, ImportReport};
use crate::DirectoryState;

/// Largest import body accepted over HTTP (use `hcp directory import` for larger files).
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

fn parse_kind(kind: &str) -> Result<EntityKind, ApiError> {
    EntityKind::parse(kind).ok_or(ApiError::NotFound)
}

/// Paging of a list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl PageParams {
    fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(100);
        let offset = self.offset.unwrap_or(0);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::InvalidQuery("limit 须在 1 到 1000 之间".into()));
        }
        if offset < 0 {
            return Err(ApiError::InvalidQuery("offset 不能为负数".into()));
        }
        Ok((limit, offset))
    }
}

/// One page of directory rows.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page {
    /// The rows (fields as in the row schemas: Region, Department, Hall, Window, Device, Staff,
    /// ServiceItem, RosterEntry, Tag, Dimension).
    pub items: Vec<serde_json::Value>,
    /// Rows in total.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// List directory rows of one kind, by key.
#[utoipa::path(
    get,
    path = "/api/v1/directory/{kind}",
    tag = "directory",
    params(("kind" = EntityKind, Path, description = "Kind of row"), PageParams),
    responses(
        (status = 200, description = "One page", body = Page),
        (status = 400, description = "Bad paging", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such kind", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<DirectoryState>,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page>, ApiError> {
    let kind = parse_kind(&kind)?;
    let (limit, offset) = page.resolve()?;
    let (items, total) = state.store.list_entities(kind, limit, offset).await?;
    Ok(Json(Page { items, total, limit, offset }))
}

/// Kinds addressed by a single key (the roster is addressed through its own endpoints).
fn keyed_kind(kind: &str) -> Result<EntityKind, ApiError> {
    match parse_kind(kind)? {
        EntityKind::Roster => Err(ApiError::NotFound),
        k => Ok(k),
    }
}

/// One directory row.
#[utoipa::path(
    get,
    path = "/api/v1/directory/{kind}/{key}",
    tag = "directory",
    params(("kind" = EntityKind, Path, description = "Kind of row (not roster)"), ("key" = String, Path, description = "Id or code")),
    responses(
        (status = 200, description = "The row", body = Object),
        (status = 404, description = "No such row", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(
    State(state): State<DirectoryState>,
    ApiPath((kind, key)): ApiPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let kind = keyed_kind(&kind)?;
    state.store.get_entity(kind, &key).await?.map(Json).ok_or(ApiError::NotFound)
}

/// Puts the one row `value` of `kind` into a [`DirectoryData`], or says which field is wrong.
fn one_row(kind: EntityKind, value: &serde_json::Value) -> Result<DirectoryData, ApiError> {
    let mut d = DirectoryData::default();
    match kind {
        EntityKind::Regions => d.regions.push(from_value(value)?),
        EntityKind::Departments => d.departments.push(from_value(value)?),
        EntityKind::Halls => d.halls.push(from_value(value)?),
        EntityKind::Windows => d.windows.push(from_value(value)?),
        EntityKind::Devices => d.devices.push(from_value(value)?),
        EntityKind::Staff => d.staff.push(from_value(value)?),
        EntityKind::ServiceItems => d.service_items.push(from_value(value)?),
        EntityKind::Roster => d.roster.push(from_value(value)?),
        EntityKind::Tags => d.tags.push(from_value(value)?),
        EntityKind::Dimensions => d.dimensions.push(from_value(value)?),
    }
    Ok(d)
}

/// Create or replace one directory row. The key in the path wins; a different key in the body
/// is refused. References must exist. Returns 201 when created, 200 when replaced.
#[utoipa::path(
    put,
    path = "/api/v1/directory/{kind}/{key}",
    tag = "directory",
    params(("kind" = EntityKind, Path, description = "Kind of row (not roster)"), ("key" = String, Path, description = "Id or code")),
    request_body(content = Object, description = "The row: fields of Region, Department, Hall, Window, Device, Staff, ServiceItem, Tag or Dimension"),
    responses(
        (status = 200, description = "Replaced", body = Object),
        (status = 201, description = "Created", body = Object),
        (status = 404, description = "No such kind", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid or a reference does not exist", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_one(
    State(state): State<DirectoryState>,
    ApiPath((kind, key)): ApiPath<(String, String)>,
    ApiJson(mut body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let kind = keyed_kind(&kind)?;
    let key_field = kind.key_column();
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::field("", "invalid_type", "请求体须为 JSON 对象", "the body must be a JSON object"));
    };
    match obj.get(key_field) {
        None => {
            obj.insert(key_field.into(), serde_json::Value::String(key.clone()));
        }
        Some(v) if v.as_str() == Some(key.as_str()) => {}
        Some(_) => {
            return Err(ApiError::field(
                key_field,
                "key_mismatch",
                format!("请求体中的 {key_field} 与地址中的 “{key}” 不一致"),
                format!("{key_field} in the body differs from '{key}' in the path"),
            ))
        }
    }
    let data = one_row(kind, &body)?;
    let existing: Directory = state.store.load_directory().await?;
    if let Some(bad) = check_rows(&existing, &data).into_iter().next() {
        return Err(ApiError::Validation(ValidationErrors(bad.errors)));
    }
    let existed = state.store.get_entity(kind, &key).await?.is_some();
    state.store.import_directory(&data).await?;
    let stored = state.store.get_entity(kind, &key).await?.ok_or(ApiError::NotFound)?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(stored)))
}

/// Delete one directory row, unless other rows refer to it (409). Ratings keep their
/// attribution snapshot either way.
#[utoipa::path(
    delete,
    path = "/api/v1/directory/{kind}/{key}",
    tag = "directory",
    params(("kind" = EntityKind, Path, description = "Kind of row (not roster)"), ("key" = String, Path, description = "Id or code")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such row", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still referenced", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_one(
    State(state): State<DirectoryState>,
    ApiPath((kind, key)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let kind = keyed_kind(&kind)?;
    match state.store.delete_entity(kind, &key).await? {
        DeleteOutcome::Deleted => Ok(StatusCode::NO_CONTENT),
        DeleteOutcome::NotFound => Err(ApiError::NotFound),
        DeleteOutcome::Referenced(by) => {
            Err(ApiError::Conflict(format!("{}“{key}” 仍被引用({by}),不能删除", kind.label_zh())))
        }
    }
}

/// Query of the import endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// For CSV: the kind of rows.
    pub kind: Option<String>,
}

/// Import a directory file (JSON document or one CSV of one kind): every row is checked first
/// and nothing is written unless all are good. A rejected file answers 422 `import-rejected`
/// with every bad row, its line and its failing fields.
#[utoipa::path(
    post,
    path = "/api/v1/directory/import",
    tag = "directory",
    params(ImportParams),
    request_body(content = String, description = "The file", content_type = "text/csv"),
    responses(
        (status = 200, description = "Imported", body = ImportReport),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad rows; nothing imported", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_file(
    State(state): State<DirectoryState>,
    ApiQuery(p): ApiQuery<ImportParams>,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    let format = match (p.format.as_deref().unwrap_or("json"), p.kind.as_deref()) {
        ("json", _) => Format::Json,
        ("csv", Some(k)) => {
            Format::Csv(EntityKind::parse(k).ok_or_else(|| ApiError::InvalidQuery(format!("未知的目录分类 kind={k}")))?)
        }
        ("csv", None) => return Err(ApiError::InvalidQuery("format=csv 需要参数 kind".into())),
        (f, _) => return Err(ApiError::InvalidQuery(format!("format={f} 无效(可选 json、csv)"))),
    };
    let bytes = read_limited(body, MAX_IMPORT_BYTES).await?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::field("", "encoding", format!("文件须为 UTF-8 编码:{e}"), format!("the file must be UTF-8: {e}"))
    })?;
    let report =
        import::import(&state.store, text, format, &mut |line| tracing::info!(%line, "directory import")).await?;
    if report.imported {
        Ok(Json(report))
    } else {
        Err(ApiError::ImportRejected {
            bad_rows: report.bad_rows.len(),
            rows: serde_json::to_value(&report.bad_rows).unwrap_or_default(),
        })
    }
}

/// A sign-in or sign-out at a window.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterAction {
    /// The window.
    pub window_id: String,
    /// The staff member.
    pub staff_id: String,
    /// When (RFC 3339); default now.
    pub at: Option<DateTime<FixedOffset>>,
}

async fn checked_action(state: &DirectoryState, a: &RosterAction) -> Result<DateTime<Utc>, ApiError> {
    let mut errors = Vec::new();
    for (field, kind, id) in
        [("window_id", EntityKind::Windows, &a.window_id), ("staff_id", EntityKind::Staff, &a.staff_id)]
    {
        if state.store.get_entity(kind, id).await?.is_none() {
            errors.push(FieldError::new(
                field,
                "unknown_reference",
                format!("{field} 引用的{} “{id}” 不存在", kind.label_zh()),
                format!("{field} refers to {} '{id}', which does not exist", kind.as_str()),
            ));
        }
    }
    let now = Utc::now();
    let at = a.at.map(|t| t.with_timezone(&Utc)).unwrap_or(now);
    if at > now + chrono::Duration::minutes(5) {
        errors.push(FieldError::new("at", "in_future", "时间不能晚于当前时间", "at must not be in the future"));
    }
    if errors.is_empty() {
        Ok(at)
    } else {
        Err(ApiError::Validation(ValidationErrors(errors)))
    }
}

/// Sign a staff member in at a window; any other open sign-in of theirs ends at that moment.
#[utoipa::path(
    post,
    path = "/api/v1/roster/sign-in",
    tag = "directory",
    request_body = RosterAction,
    responses(
        (status = 201, description = "Signed in", body = RosterEntry),
        (status = 422, description = "Unknown window or staff member", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(
    State(state): State<DirectoryState>,
    ApiJson(a): ApiJson<RosterAction>,
) -> Result<(StatusCode, Json<RosterEntry>), ApiError> {
    let at = checked_action(&state, &a).await?;
    let entry = state.store.sign_in(&a.window_id, &a.staff_id, at).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Sign a staff member out of a window.
#[utoipa::path(
    post,
    path = "/api/v1/roster/sign-out",
    tag = "directory",
    request_body = RosterAction,
    responses(
        (status = 200, description = "Signed out", body = RosterEntry),
        (status = 409, description = "Not signed in at that window", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown window or staff member", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_out(
    State(state): State<DirectoryState>,
    ApiJson(a): ApiJson<RosterAction>,
) -> Result<Json<RosterEntry>, ApiError> {
    let at = checked_action(&state, &a).await?;
    match state.store.sign_out(&a.window_id, &a.staff_id, at).await? {
        Some(entry) => Ok(Json(entry)),
        None => Err(ApiError::Conflict(format!("“{}” 未在窗口 “{}” 签到", a.staff_id, a.window_id))),
    }
}

/// Query of `GET /api/v1/roster/on-duty`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OnDutyParams {
    /// The window.
    pub window_id: String,
    /// The moment (RFC 3339); default now.
    pub at: Option<DateTime<FixedOffset>>,
}

/// Who was on duty at a window at a moment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnDuty {
    /// The window.
    pub window_id: String,
    /// The moment.
    pub at: DateTime<Utc>,
    /// The staff member signed in then, if any.
    pub staff_id: Option<String>,
}

/// Who was on duty at a window at a given moment (the same rule attribution uses: an open
/// sign-in ends at the staff member's next sign-in or at the end of that day).
#[utoipa::path(
    get,
    path = "/api/v1/roster/on-duty",
    tag = "directory",
    params(OnDutyParams),
    responses(
        (status = 200, description = "Who was on duty", body = OnDuty),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn on_duty(
    State(state): State<DirectoryState>,
    ApiQuery(p): ApiQuery<OnDutyParams>,
) -> Result<Json<OnDuty>, ApiError> {
    let at = p.at.map(|t| t.with_timezone(&Utc)).unwrap_or_else(Utc::now);
    let roster = state.store.roster_around(&p.window_id, at).await?;
    let dir = Directory::new(0, DirectoryData { roster, ..Default::default() });
    let staff_id = dir.on_duty(&p.window_id, at).map(String::from);
    Ok(Json(OnDuty { window_id: p.window_id, at, staff_id }))
}

/// Query of the flagged-ratings list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlaggedParams {
    /// Only ratings with this flag (e.g. `unknown_window`).
    pub flag: Option<String>,
    /// Rows per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A page of ratings flagged by attribution (named apart from the integrity checks' page: one
/// OpenAPI component name per shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AttributionFlaggedPage)]
pub struct FlaggedPage {
    /// The ratings, oldest first.
    pub items: Vec<FlaggedRating>,
    /// How many are flagged (with `flag`, if given).
    pub total: i64,
}

/// Ratings whose attribution is incomplete: kept, counted where known, listed here until the
/// directory is fixed and they are re-attributed.
#[utoipa::path(
    get,
    path = "/api/v1/attribution/flagged",
    tag = "directory",
    params(FlaggedParams),
    responses(
        (status = 200, description = "Flagged ratings", body = FlaggedPage),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn flagged(
    State(state): State<DirectoryState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<FlaggedParams>,
) -> Result<Json<FlaggedPage>, ApiError> {
    let (limit, offset) = PageParams { limit: p.limit, offset: p.offset }.resolve()?;
    if let Some(f) = &p.flag {
        if hcp_domain::AttributionFlag::parse(f).is_none() {
            return Err(ApiError::InvalidQuery(format!("未知的归属标记 flag={f}")));
        }
    }
    let (items, total) = state.store.flagged_ratings(&caller.reach()?, p.flag.as_deref(), limit, offset).await?;
    Ok(Json(FlaggedPage { items, total }))
}

/// Query of the re-attribution endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReattributeParams {
    /// Most ratings to examine in this call (1–10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// What a re-attribution did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReattributeReport {
    /// Flagged ratings examined.
    pub examined: usize,
    /// Ratings whose attribution changed (moved between aggregate rows and published again).
    pub changed: usize,
    /// Of those, now completely attributed.
    pub resolved: usize,
    /// The directory version used.
    pub directory_version: i64,
}

/// Attribute flagged ratings again against the current directory. Changed ratings move between
/// aggregate rows in one transaction and are published to `hcp.rating.attributed.v1` again
/// before it commits. Completely attributed ratings are never touched.
#[utoipa::path(
    post,
    path = "/api/v1/attribution/reattribute",
    tag = "directory",
    params(ReattributeParams),
    responses(
        (status = 200, description = "Done", body = ReattributeReport),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker or database unavailable; nothing changed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reattribute(
    State(state): State<DirectoryState>,
    ApiQuery(p): ApiQuery<ReattributeParams>,
) -> Result<Json<ReattributeReport>, ApiError> {
    let limit = p.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit 须在 1 到 10000 之间".into()));
    }
    let dir = state.store.load_directory().await?;
    let pending = state.store.reattribute_flagged(&dir, limit).await?;
    let now = Utc::now();
    let sends = pending.result.changed.iter().map(|(rating, attribution)| {
        let event = RatingAttributed {
            rating: rating.clone(),
            attribution: attribution.clone(),
            attributed_at: now,
            reattributed: true,
        };
        let body = serde_json::to_vec(&event).expect("events always serialize");
        let key = rating.rating_id.to_string();
        let (producer, topic) = (&state.producer, &state.topics.rating_attributed);
        async move { producer.publish_to(topic, RATING_ATTRIBUTED_SCHEMA, &key, &body).await }
    });
    for r in join_all(sends).await {
        r.map_err(|e| ApiError::BrokerUnavailable(e.to_string()))?;
    }
    let done = pending.commit().await?;
    tracing::info!(examined = done.examined, changed = done.changed.len(), resolved = done.resolved, "re-attributed");
    Ok(Json(ReattributeReport {
        examined: done.examined,
        changed: done.changed.len(),
        resolved: done.resolved,
        directory_version: dir.version,
    }))
}
