//! The work-order API: thin handlers over `hcp-store`, roles from `hcp_domain::Role`, scope from
//! the caller's session.

use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hcp_domain::accountability::{verified_cause, Cause, CauseError};
use hcp_domain::{Action, DeadlinePolicy, Grade, RaterIdentity, Role};
use hcp_http::{page_bounds, ApiError, ApiJson, ApiPath, ApiQuery, Caller, OptionalJson, Problem};
use hcp_store::{
    ActError, ActRequest, Actor, Notification, OrderDetail, OrderQuery, OrderScope, PolicyRow, SweepOutcome, WorkOrder,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{metrics, WorkOrderState};

/// The caller as an actor of the audit log.
pub(crate) fn actor_of(caller: &Caller) -> Actor {
    Actor { name: caller.0.sub.clone(), role: caller.0.role.as_str().to_owned() }
}

/// An order id from the path: one that does not parse does not exist.
pub(crate) fn order_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// Maps a store refusal to its problem.
pub(crate) fn act_error(e: ActError) -> ApiError {
    match e {
        ActError::NotFound => ApiError::NotFound,
        ActError::Refused(r) => ApiError::TransitionRefused {
            state: r.state.to_owned(),
            action: r.action.to_owned(),
            allowed: r.allowed.iter().map(|s| s.to_string()).collect(),
        },
        ActError::Database(e) => e.into(),
    }
}

/// List filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this state (`opened`, `claimed`, `contacted`, `verified`, `rectified`, `replied`,
    /// `closed`, `reopened`, `appealed`, `appeal_upheld`).
    pub state: Option<String>,
    /// Only `on_track`, `near_due` or `overdue`.
    pub due_status: Option<String>,
    /// Only this department (within the caller's scope).
    pub department_id: Option<String>,
    /// `true`: only orders not ended.
    pub open: Option<bool>,
    /// `deadline` (default: the running deadline, soonest first) or `opened` (newest first).
    pub sort: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Offset (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A page of orders.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderPage {
    /// Orders matching the filters in the caller's scope.
    pub total: i64,
    /// This page.
    pub items: Vec<WorkOrder>,
}

/// Every state the list filters on (its `state` query parameter).
pub const STATES: [&str; 10] = [
    "opened",
    "claimed",
    "contacted",
    "verified",
    "rectified",
    "replied",
    "closed",
    "reopened",
    "appealed",
    "appeal_upheld",
];

/// List work orders in the caller's scope, sorted by the running deadline (soonest first).
#[utoipa::path(
    get,
    path = "/api/v1/work-orders",
    tag = "workorders",
    params(ListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Bad filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let scope = caller.reach()?;
    if let Some(s) = &p.state {
        if !STATES.contains(&s.as_str()) {
            return Err(ApiError::InvalidQuery(format!("state 取值须为 {}", STATES.join("、"))));
        }
    }
    if let Some(d) = &p.due_status {
        if !["on_track", "near_due", "overdue"].contains(&d.as_str()) {
            return Err(ApiError::InvalidQuery("due_status 取值须为 on_track、near_due、overdue".into()));
        }
    }
    let sort_opened = match p.sort.as_deref() {
        None | Some("deadline") => false,
        Some("opened") => true,
        Some(_) => return Err(ApiError::InvalidQuery("sort 取值须为 deadline 或 opened".into())),
    };
    let (limit, offset) = page_bounds(p.limit, p.offset)?;
    let q = OrderQuery {
        state: p.state,
        due_status: p.due_status,
        department_id: p.department_id,
        open_only: p.open.unwrap_or(false),
        sort_opened,
        limit,
        offset,
    };
    let (items, total) = state.store.list_work_orders(&scope, &q).await?;
    Ok(Json(OrderPage { total, items }))
}

/// One order with its rating (rater masked) and audit log.
#[utoipa::path(
    get,
    path = "/api/v1/work-orders/{order_id}",
    tag = "workorders",
    params(("order_id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderDetail),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order in the caller's scope", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn detail(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderDetail>, ApiError> {
    let scope = caller.reach()?;
    state.store.work_order(&scope, order_id(&id)?).await?.map(Json).ok_or(ApiError::NotFound)
}

/// The body of an action.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Note for the audit log (required for `appeal`: the reason; for `uphold`: the decision).
    pub note: Option<String>,
    /// `verify`: 属实 (true) or 不属实 (false).
    pub founded: Option<bool>,
    /// `verify`: what the complaint was found to be about — `conduct` (窗口服务、12345 咨询服务),
    /// `process` (内容、流程) or `platform` when founded; `none` (or nothing) when not.
    pub cause: Option<Cause>,
    /// `callback`: the rater is satisfied.
    pub satisfied: Option<bool>,
    /// `callback`: the grade the rater gave on the phone (1–5; ≥ 3 counts as satisfied).
    pub grade: Option<i64>,
}

/// Roles that act for a department: claim, contact, verify, rectify, reply, appeal.
const DEPARTMENT_ACTORS: &[Role] = &[Role::Admin, Role::Handler];
/// Roles that record a callback.
const CALLBACK_ACTORS: &[Role] = &[Role::Admin, Role::Callback];
/// Roles that review appeals and escalate.
const SUPERVISING_ACTORS: &[Role] = &[Role::Admin, Role::Supervisor];

/// The routes of the actions, one per action: (route, action name, the roles `Role::may` allows).
pub const ACTION_ROUTES: [(&str, &str, &[Role]); 10] = [
    ("/api/v1/work-orders/{order_id}/claim", "claim", DEPARTMENT_ACTORS),
    ("/api/v1/work-orders/{order_id}/contact", "contact", DEPARTMENT_ACTORS),
    ("/api/v1/work-orders/{order_id}/verify", "verify", DEPARTMENT_ACTORS),
    ("/api/v1/work-orders/{order_id}/rectify", "rectify", DEPARTMENT_ACTORS),
    ("/api/v1/work-orders/{order_id}/reply", "reply", DEPARTMENT_ACTORS),
    ("/api/v1/work-orders/{order_id}/callback", "callback", CALLBACK_ACTORS),
    ("/api/v1/work-orders/{order_id}/appeal", "appeal", DEPARTMENT_ACTORS),
    ("/api/v1/work-orders/{order_id}/appeal/uphold", "uphold_appeal", SUPERVISING_ACTORS),
    ("/api/v1/work-orders/{order_id}/appeal/reject", "reject_appeal", SUPERVISING_ACTORS),
    ("/api/v1/work-orders/{order_id}/escalate", "escalate", SUPERVISING_ACTORS),
];

/// Turns the route and body into the domain action, or says which field is missing.
fn action_of(name: &str, body: &ActionBody) -> Result<(Action, Option<Grade>), ApiError> {
    let note_required = |what: &str| {
        if body.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            Err(ApiError::field(
                "note",
                "required",
                format!("{what}须填写说明(note)"),
                format!("{what}: note is required"),
            ))
        } else {
            Ok(())
        }
    };
    Ok(match name {
        "claim" => (Action::Claim, None),
        "contact" => (Action::Contact, None),
        "verify" => {
            let founded = body.founded.ok_or_else(|| {
                ApiError::field(
                    "founded",
                    "required",
                    "核实须说明是否属实(founded: true/false)",
                    "verify needs founded",
                )
            })?;
            verified_cause(founded, body.cause).map_err(|e| match e {
                CauseError::FoundedNeedsCause => ApiError::field(
                    "cause",
                    "required",
                    "核实属实须说明原因(cause: conduct 窗口服务、process 内容流程、platform 平台)",
                    "a founded verification needs its cause: conduct, process or platform",
                ),
                CauseError::UnfoundedHasNoCause => ApiError::field(
                    "cause",
                    "invalid",
                    "核实不属实时不能指定原因(cause 须为 none 或不填)",
                    "an unfounded verification has no cause (none or absent)",
                ),
            })?;
            (Action::Verify { founded }, None)
        }
        "rectify" => (Action::Rectify, None),
        "reply" => (Action::Reply, None),
        "callback" => {
            let grade = body
                .grade
                .map(|g| {
                    u8::try_from(g).ok().and_then(Grade::new).ok_or_else(|| {
                        ApiError::field("grade", "out_of_range", "回访评价等级须为 1–5", "grade must be 1..=5")
                    })
                })
                .transpose()?;
            let satisfied = match (body.satisfied, grade) {
                (Some(s), _) => s,
                (None, Some(g)) => g.value() >= 3,
                (None, None) => {
                    return Err(ApiError::field(
                        "satisfied",
                        "required",
                        "回访须说明评价人是否满意(satisfied)或给出评价等级(grade)",
                        "callback needs satisfied or grade",
                    ))
                }
            };
            (Action::Callback { satisfied }, grade)
        }
        "appeal" => {
            note_required("申诉")?;
            (Action::Appeal, None)
        }
        "uphold_appeal" => {
            note_required("复核")?;
            (Action::UpholdAppeal, None)
        }
        "reject_appeal" => (Action::RejectAppeal, None),
        _ => (Action::Escalate, None),
    })
}

/// Takes an action on an order; the route names the action (one endpoint per action).
/// Refusals: 403 when the role may not take it, 404 outside the caller's scope, 409
/// `transition-refused` naming the current state and the allowed actions.
pub async fn act(
    State(state): State<WorkOrderState>,
    caller: Caller,
    matched: MatchedPath,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ActionBody>,
) -> Result<Json<WorkOrder>, ApiError> {
    let name =
        ACTION_ROUTES.iter().find(|(p, ..)| *p == matched.as_str()).map(|(_, a, _)| *a).ok_or(ApiError::NotFound)?;
    let body = body.unwrap_or_default();
    if body.note.as_deref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::field(
            "note",
            "too_long",
            "说明不能超过 2000 字",
            "note must be at most 2000 characters",
        ));
    }
    let (action, callback_grade) = action_of(name, &body)?;
    if !caller.0.role.may(action) {
        return Err(ApiError::Forbidden(format!(
            "{}不能执行 {} / role {} may not {}",
            caller.0.role.label_zh(),
            action.name(),
            caller.0.role.as_str(),
            action.name()
        )));
    }
    let scope = caller.reach()?;
    let id = order_id(&id)?;
    let ctx = state.store.deadline_context().await?;
    let req = ActRequest {
        order_id: id,
        action,
        note: body.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        callback_grade,
        cause: body.cause,
        now: Utc::now(),
    };
    let order = state.store.act_on_work_order(&scope, &actor_of(&caller), &req, &ctx).await.map_err(act_error)?;
    metrics::ACTIONS.with_label_values(&[action.name()]).inc();
    tracing::info!(order_id = %id, action = action.name(), actor = %caller.0.sub, state = %order.state, "work order action");
    Ok(Json(order))
}

/// The full identity of an order's rater, for the callback role only; every view is written to
/// the order's audit log.
#[utoipa::path(
    get,
    path = "/api/v1/work-orders/{order_id}/rater",
    tag = "workorders",
    params(("order_id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The rater's identity (null fields when not given)", body = RaterIdentity),
        (status = 403, description = "Not the callback role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No HCP_PII_KEY configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rater(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RaterIdentity>, ApiError> {
    let cipher = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let sealed = state
        .store
        .view_rater(&OrderScope::All, order_id(&id)?, &actor_of(&caller))
        .await?
        .ok_or(ApiError::NotFound)?;
    metrics::RATER_VIEWS.inc();
    match sealed {
        None => Ok(Json(RaterIdentity::default())),
        Some(s) => cipher.open(&s).map(Json).map_err(ApiError::Internal),
    }
}

/// Runs the overdue sweep now (admin; it also runs on a timer).
#[utoipa::path(
    post,
    path = "/api/v1/work-orders/sweep",
    tag = "workorders",
    responses(
        (status = 200, description = "What the sweep did", body = SweepOutcome),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sweep(State(state): State<WorkOrderState>) -> Result<Json<SweepOutcome>, ApiError> {
    Ok(Json(crate::background::sweep_once(&state.store, Utc::now()).await?))
}

/// Every deadline policy (region `*` is the default).
#[utoipa::path(
    get,
    path = "/api/v1/workorder-policies",
    tag = "workorders",
    responses((status = 200, description = "Policies", body = Vec<PolicyRow>))
)]
pub async fn policies(State(state): State<WorkOrderState>, _caller: Caller) -> Result<Json<Vec<PolicyRow>>, ApiError> {
    Ok(Json(state.store.list_policies().await?))
}

/// A policy as an admin writes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Contact the rater within (working days).
    pub contact_days: u32,
    /// Verify, rectify and reply within (working days).
    pub rectify_days: u32,
    /// Near due when at most this many working days remain (default 1).
    pub near_due_days: Option<u32>,
    /// Where the rule comes from (the local measures).
    pub source: Option<String>,
    /// Default ratings in this region: `false` turns them off (default on).
    pub default_rating: Option<bool>,
    /// Natural days after which an unrated stage gets the default 基本满意 (default 7).
    pub default_rating_days: Option<u32>,
}

/// Adds or replaces a region's deadline policy (admin). Open orders keep their deadlines.
#[utoipa::path(
    put,
    path = "/api/v1/workorder-policies/{region_code}",
    tag = "workorders",
    params(("region_code" = String, Path, description = "Region code, or * for the default")),
    request_body = PolicyBody,
    responses(
        (status = 201, description = "Added", body = PolicyRow),
        (status = 200, description = "Replaced", body = PolicyRow),
        (status = 422, description = "Out of bounds", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_policy(
    State(state): State<WorkOrderState>,
    ApiPath(region): ApiPath<String>,
    ApiJson(body): ApiJson<PolicyBody>,
) -> Result<(StatusCode, Json<PolicyRow>), ApiError> {
    if region.is_empty() || region.len() > 12 || !(region == "*" || region.chars().all(|c| c.is_ascii_digit())) {
        return Err(ApiError::field(
            "region_code",
            "invalid",
            "区域代码须为数字行政区划代码或 *",
            "region_code must be digits or *",
        ));
    }
    let policy = DeadlinePolicy {
        contact_days: body.contact_days,
        rectify_days: body.rectify_days,
        near_due_days: body.near_due_days.unwrap_or(1),
        default_rating_days: if body.default_rating == Some(false) {
            None
        } else {
            Some(body.default_rating_days.unwrap_or(7))
        },
    };
    policy.check().map_err(|e| ApiError::field("rectify_days", "out_of_range", format!("期限设置不合理:{e}"), e))?;
    let created = state.store.put_policy(&region, &policy, body.source.as_deref().unwrap_or("")).await?;
    let row =
        state.store.list_policies().await?.into_iter().find(|r| r.region_code == region).ok_or(ApiError::NotFound)?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(row)))
}

/// Removes a region's policy (admin); the default `*` cannot be removed.
#[utoipa::path(
    delete,
    path = "/api/v1/workorder-policies/{region_code}",
    tag = "workorders",
    params(("region_code" = String, Path, description = "Region code")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"))
)]
pub async fn delete_policy(
    State(state): State<WorkOrderState>,
    ApiPath(region): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_policy(&region).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Queued operator notifications not yet delivered (escalations, alerts such as "calendar needs
/// year YYYY"). Admins and auditors see all, a supervisor their region's. Messages to citizens
/// (rating and callback SMS) are never listed: their bodies carry the citizens' links.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "workorders",
    responses((status = 200, description = "Pending notifications, oldest first", body = Vec<Notification>))
)]
pub async fn notifications(
    State(state): State<WorkOrderState>,
    caller: Caller,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let region = match caller.0.role {
        Role::Supervisor => {
            Some(caller.0.region_code.clone().ok_or_else(|| ApiError::Forbidden("督办账号未关联区域".into()))?)
        }
        _ => None,
    };
    Ok(Json(state.store.operator_notifications(1000, region.as_deref()).await?))
}

/// Documentation of the action endpoints (they share [`act`]; the route names the action).
#[allow(dead_code)]
pub mod docs {
    use super::*;

    macro_rules! action_doc {
        ($name:ident, $path:literal, $summary:literal) => {
            #[doc = $summary]
            #[utoipa::path(
                post,
                path = $path,
                tag = "workorders",
                params(("order_id" = String, Path, description = "Order id")),
                request_body(content = Option<ActionBody>, description = "Optional note and the action's data"),
                responses(
                    (status = 200, description = "The order after the action", body = WorkOrder),
                    (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "The role may not take this action", body = Problem, content_type = "application/problem+json"),
                    (status = 404, description = "No such order in the caller's scope", body = Problem, content_type = "application/problem+json"),
                    (status = 409, description = "The state does not allow it (names the state and the allowed actions)", body = Problem, content_type = "application/problem+json"),
                    (status = 422, description = "A required field is missing", body = Problem, content_type = "application/problem+json"),
                )
            )]
            pub async fn $name() {}
        };
    }

    action_doc!(claim, "/api/v1/work-orders/{order_id}/claim", "签收 Claim (handler).");
    action_doc!(contact, "/api/v1/work-orders/{order_id}/contact", "Record contact with the rater (handler).");
    action_doc!(verify, "/api/v1/work-orders/{order_id}/verify", "核实 Verify: `founded` 属实/不属实 (handler).");
    action_doc!(rectify, "/api/v1/work-orders/{order_id}/rectify", "整改 Rectify (handler; only when founded).");
    action_doc!(reply, "/api/v1/work-orders/{order_id}/reply", "反馈 Reply to the rater (handler).");
    action_doc!(
        callback,
        "/api/v1/work-orders/{order_id}/callback",
        "回访 Callback result: `satisfied` or `grade` (callback role); unsatisfied reopens."
    );
    action_doc!(
        appeal,
        "/api/v1/work-orders/{order_id}/appeal",
        "申诉 Appeal a malicious or unrelated review; `note` is the reason (handler)."
    );
    action_doc!(
        uphold_appeal,
        "/api/v1/work-orders/{order_id}/appeal/uphold",
        "复核 Uphold the appeal: the rating leaves every aggregate (supervisor)."
    );
    action_doc!(
        reject_appeal,
        "/api/v1/work-orders/{order_id}/appeal/reject",
        "复核 Reject the appeal: back to the handler (supervisor)."
    );
    action_doc!(
        escalate,
        "/api/v1/work-orders/{order_id}/escalate",
        "督办 Escalate (supervisor; the sweeper escalates overdue orders itself)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles each action route admits are exactly those the domain lets take the action.
    #[test]
    fn action_routes_admit_the_roles_the_domain_allows() {
        let body = ActionBody {
            note: Some("n".into()),
            founded: Some(true),
            cause: Some(Cause::Conduct),
            satisfied: Some(true),
            grade: Some(5),
        };
        for (path, name, roles) in ACTION_ROUTES {
            let (action, _) = action_of(name, &body).unwrap_or_else(|_| panic!("{name}"));
            let allowed: Vec<Role> = Role::ALL.into_iter().filter(|r| r.may(action)).collect();
            let declared: Vec<Role> = Role::ALL.into_iter().filter(|r| roles.contains(r)).collect();
            assert_eq!(declared, allowed, "{path}");
        }
    }
}
