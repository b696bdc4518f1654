//! The rating intake handler.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use futures::future::join_all;
use hcp_bus::PublishError;
use hcp_domain::{RaterIdentity, RatingInput, RatingSubmitted};
use hcp_http::{from_value, ApiError, ApiJsonBytes, Problem};
use hcp_store::{Claim, Credential};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;

use crate::gate::ChannelKey;
use crate::{gate, metrics, IngestState};

/// The answer to an accepted rating.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The UUIDv7 assigned to the rating.
    pub rating_id: Uuid,
}

/// Submit one rating.
///
/// Authenticates the channel key (the channel and device come from it), refuses a second first
/// rating of the same stage (`409 duplicate-rating` naming the first), replays the answer of an
/// `Idempotency-Key` retry, validates, publishes to Kafka and answers 202 once the broker has
/// acknowledged it (`acks=all`): a 202 means the rating is durable and will be counted once.
#[utoipa::path(
    post,
    path = "/api/v1/ratings",
    tag = "ingest",
    request_body = RatingInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body get the same answer")),
    security(("channel_key" = [])),
    responses(
        (status = 202, description = "Durably accepted", body = Accepted),
        (status = 400, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This stage of the service record is already rated (duplicate-rating, names the rating), or another attempt at it has not finished (rating-in-progress: retry after Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (validation-failed), a dimension grade names a dimension the catalogue lacks or the channel does not offer (dimension-not-offered), or the Idempotency-Key was used for another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker or database unavailable, or a rater identity without a configured HCP_PII_KEY; nothing was recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit_rating(
    State(state): State<IngestState>,
    headers: HeaderMap,
    ChannelKey(cred): ChannelKey,
    ApiJsonBytes(input, raw): ApiJsonBytes<RatingInput>,
) -> Result<Response, ApiError> {
    let Some(gate) = &state.gate else {
        return accept_one(&state, None, input, Uuid::now_v7()).await.map(IntoResponse::into_response);
    };
    let Some(key) = gate::idempotency_key(&headers)? else {
        return accept_one(&state, cred.as_ref(), input, Uuid::now_v7()).await.map(IntoResponse::into_response);
    };
    let scope = gate::idempotency_scope(cred.as_ref());
    if let Some(answer) = gate::replay(gate, &scope, &key, &raw).await? {
        metrics::IDEMPOTENT_REPLAYS.inc();
        return Ok(stored_answer(answer.status, answer.response));
    }
    let (status, body) = match accept_one(&state, cred.as_ref(), input, Uuid::now_v7()).await {
        Ok((status, Json(a))) => (status.as_u16(), serde_json::to_value(a).expect("serializes")),
        // "Not now" is not the answer to keep: a retry with this key is processed again.
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => {
            let p = e.to_problem();
            (p.status, serde_json::to_value(&p).expect("serializes"))
        }
    };
    gate::remember(gate, &scope, &key, &raw, status, body.clone()).await;
    Ok(stored_answer(status, body))
}

/// An answer kept for an Idempotency-Key, as a response.
fn stored_answer(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, Json(&body)).into_response();
    if status.is_client_error() {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/problem+json"));
    }
    resp
}

/// The sealer of rater identities, when a key is configured.
fn sealer(state: &IngestState) -> impl Fn(u8, &RaterIdentity) -> hcp_domain::SealedRater + '_ {
    move |prop, id| {
        // A fresh random nonce per identity (AES-GCM must never reuse one under a key).
        state.pii.as_ref().expect("checked by the caller").seal(prop, id, rand::random())
    }
}

/// Binds `input` to the key that sent it ([`gate::bind`]; nothing to do without a key), then
/// checks its dimension grades against the catalogue ([`gate::check_dimensions`]).
async fn bind(state: &IngestState, cred: Option<&Credential>, input: &mut RatingInput) -> Result<(), ApiError> {
    match (cred, &state.gate) {
        (Some(c), Some(g)) => gate::bind(g, c, input).await?,
        (Some(c), None) => gate::apply_credential(c, input)?,
        (None, _) => {}
    }
    match &state.gate {
        Some(g) => gate::check_dimensions(g, input).await,
        None => Ok(()),
    }
}

/// Credential, validation, claim, produce for one rating (to be stored as `rating_id`).
pub(crate) async fn accept_one(
    state: &IngestState,
    cred: Option<&Credential>,
    mut input: RatingInput,
    rating_id: Uuid,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    bind(state, cred, &mut input).await.inspect_err(|_| metrics::REFUSED.with_label_values(&["invalid"]).inc())?;
    if input.rater.is_some() && state.pii.is_none() {
        metrics::REFUSED.with_label_values(&["pii_key_missing"]).inc();
        return Err(ApiError::PiiKeyMissing);
    }
    let matches = staff_matches(state, &input).await?;
    let seal = sealer(state);
    let mut event = input
        .validate_with(rating_id, Utc::now(), Some(&seal))
        .inspect_err(|_| metrics::REFUSED.with_label_values(&["invalid"]).inc())?;
    if let Some(r) = event.rater.as_mut() {
        r.staff_ids = matches;
    }
    if let Some(gate) = &state.gate {
        if let Some(Some(refusal)) = gate::check_follow_ups(gate, &[&event]).await?.into_iter().next() {
            metrics::REFUSED.with_label_values(&["invalid"]).inc();
            return Err(refusal);
        }
        let key = claim_key(&event);
        match gate.claims.claim(vec![key]).await?.first() {
            Some(Claim::Claimed) => {}
            // An earlier attempt failed to produce but may still land: produce under its id.
            Some(Claim::Resumed(id)) => event.rating_id = *id,
            Some(Claim::Existing(id)) => {
                metrics::REFUSED.with_label_values(&["duplicate"]).inc();
                return Err(ApiError::DuplicateRating { existing_rating_id: id.to_string() });
            }
            Some(Claim::InProgress(_)) => {
                metrics::REFUSED.with_label_values(&["in_progress"]).inc();
                return Err(gate::in_progress(gate));
            }
            None => return Err(ApiError::Internal("claim returned nothing".into())),
        }
    }
    match publish(state, &event).await {
        Ok(()) => {
            if let Some(gate) = &state.gate {
                // The rating is durable; a failed mark leaves the claim pending, and a later
                // duplicate is still refused until the takeover age (then the aggregator dedups).
                if let Err(e) = gate.claims.accept(vec![event.rating_id]).await {
                    tracing::warn!(error = %e, rating_id = %event.rating_id, "claim not marked accepted");
                }
            }
            Ok((StatusCode::ACCEPTED, Json(Accepted { rating_id: event.rating_id })))
        }
        Err(e) => {
            if let Some(gate) = &state.gate {
                if let Err(e) = gate.store.release_claims(&[event.rating_id]).await {
                    tracing::warn!(error = %e, "claim not released; it is taken over after the takeover age");
                }
            }
            Err(e)
        }
    }
}

/// Staff members whose registered phone is the rater's (the aggregator flags such ratings).
async fn staff_matches(state: &IngestState, input: &RatingInput) -> Result<Vec<String>, ApiError> {
    let phone = input.rater.as_ref().and_then(|r| r.phone.as_deref()).filter(|p| !p.trim().is_empty());
    match (&state.gate, &state.pii, phone) {
        (Some(g), Some(c), Some(p)) => Ok(g.store.staff_with_phone(&c.phone_digest(p)).await?),
        _ => Ok(Vec::new()),
    }
}

/// The (service record, stage, assess number, rating id) a rating claims.
fn claim_key(e: &RatingSubmitted) -> (String, String, i16, Uuid) {
    (e.service_record_no.clone(), e.stage.as_str().to_owned(), i16::from(e.assess_number.value()), e.rating_id)
}

/// Produces one event and waits for the broker's acknowledgement.
async fn publish(state: &IngestState, event: &RatingSubmitted) -> Result<(), ApiError> {
    let span = tracing::info_span!("publish", rating_id = %event.rating_id, channel = event.channel.as_str());
    let started = Instant::now();
    match state.producer.publish(event).instrument(span).await {
        Ok((partition, offset)) => {
            metrics::PUBLISH_SECONDS.observe(started.elapsed().as_secs_f64());
            metrics::ACCEPTED.with_label_values(&[event.channel.as_str(), event.stage.as_str()]).inc();
            tracing::debug!(rating_id = %event.rating_id, partition, offset, "rating published");
            Ok(())
        }
        Err(PublishError::Unavailable(e)) => {
            metrics::REFUSED.with_label_values(&["broker_unavailable"]).inc();
            Err(ApiError::BrokerUnavailable(e.to_string()))
        }
        Err(PublishError::Failed(e)) => {
            metrics::REFUSED.with_label_values(&["publish_failed"]).inc();
            Err(ApiError::BrokerUnavailable(e.to_string()))
        }
    }
}

/// Most ratings in one batch.
pub const MAX_BATCH: usize = 1000;

/// A batch of ratings, e.g. an offline terminal replaying its queue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 1 000 ratings, each as for `POST /api/v1/ratings`.
    #[schema(value_type = Vec<RatingInput>)]
    pub ratings: Vec<serde_json::Value>,
}

/// The answer for one rating of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemResult {
    /// Position in the request.
    pub index: usize,
    /// 202 accepted, 409 this stage is already rated, 422 invalid, 503 not recorded (retry it).
    pub status: u16,
    /// The new rating (202).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating_id: Option<Uuid>,
    /// Why not (409, 422, 503): the problem as the single endpoint would answer it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// Per-item results of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// Accepted (202) items.
    pub accepted: usize,
    /// Items whose stage was already rated (409): a replayed queue creates no duplicates.
    pub duplicates: usize,
    /// Invalid items (422).
    pub invalid: usize,
    /// Items not recorded (503): send them again.
    pub failed: usize,
    /// One result per item, in request order.
    pub items: Vec<ItemResult>,
}

/// Submit up to 1 000 ratings at once (an offline terminal replaying its queue, a platform's
/// nightly upload). Each item is validated, claimed and produced as by `POST /api/v1/ratings`;
/// the answer lists a result per item. Replaying the same batch creates no duplicates.
#[utoipa::path(
    post,
    path = "/api/v1/ratings/batch",
    tag = "ingest",
    request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the whole batch return the first answer")),
    security(("channel_key" = [])),
    responses(
        (status = 200, description = "Per-item results", body = BatchResult),
        (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a batch, more than 1 000 ratings, or the Idempotency-Key was used for another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; nothing was recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit_batch(
    State(state): State<IngestState>,
    headers: HeaderMap,
    ChannelKey(cred): ChannelKey,
    ApiJsonBytes(req, raw): ApiJsonBytes<BatchRequest, { 4 * 1024 * 1024 }>,
) -> Result<Response, ApiError> {
    if req.ratings.len() > MAX_BATCH || req.ratings.is_empty() {
        return Err(ApiError::field(
            "ratings",
            "out_of_range",
            format!("每批须有 1–{MAX_BATCH} 条评价,收到 {}", req.ratings.len()),
            format!("a batch holds 1 to {MAX_BATCH} ratings, got {}", req.ratings.len()),
        ));
    }
    let gate = state.gate.as_ref();
    let key = gate.map(|_| gate::idempotency_key(&headers)).transpose()?.flatten();
    let scope = gate::idempotency_scope(cred.as_ref());
    if let (Some(g), Some(k)) = (gate, &key) {
        if let Some(answer) = gate::replay(g, &scope, k, &raw).await? {
            metrics::IDEMPOTENT_REPLAYS.inc();
            return Ok(stored_answer(answer.status, answer.response));
        }
    }
    let result = accept_batch(&state, cred.as_ref(), req.ratings).await?;
    let body = serde_json::to_value(&result).expect("serializes");
    if let (Some(g), Some(k)) = (gate, &key) {
        gate::remember(g, &scope, k, &raw, 200, body.clone()).await;
    }
    Ok(stored_answer(200, body))
}

async fn accept_batch(
    state: &IngestState,
    cred: Option<&Credential>,
    items: Vec<serde_json::Value>,
) -> Result<BatchResult, ApiError> {
    let now = Utc::now();
    let seal = sealer(state);
    let mut results: Vec<Option<ItemResult>> = (0..items.len()).map(|_| None).collect();
    let mut valid: Vec<(usize, RatingSubmitted)> = Vec::new();
    for (index, value) in items.iter().enumerate() {
        let mut input = from_value::<RatingInput>(value);
        if let Ok(i) = &mut input {
            if let Err(e) = bind(state, cred, i).await {
                input = Err(e);
            }
        }
        let matches = match &input {
            Ok(i) => staff_matches(state, i).await?,
            Err(_) => Vec::new(),
        };
        let outcome = input.and_then(|input| {
            if input.rater.is_some() && state.pii.is_none() {
                return Err(ApiError::PiiKeyMissing);
            }
            let mut event = input.validate_with(Uuid::now_v7(), now, Some(&seal))?;
            if let Some(r) = event.rater.as_mut() {
                r.staff_ids = matches;
            }
            Ok(event)
        });
        match outcome {
            Ok(event) => valid.push((index, event)),
            Err(e) => {
                results[index] = Some(ItemResult {
                    index,
                    status: e.to_problem().status,
                    rating_id: None,
                    problem: Some(e.to_problem()),
                })
            }
        }
    }
    if let Some(g) = &state.gate {
        let refusals = gate::check_follow_ups(g, &valid.iter().map(|(_, e)| e).collect::<Vec<_>>()).await?;
        let mut kept = Vec::with_capacity(valid.len());
        for ((index, event), refusal) in valid.into_iter().zip(refusals) {
            match refusal {
                None => kept.push((index, event)),
                Some(e) => {
                    let p = e.to_problem();
                    results[index] = Some(ItemResult { index, status: p.status, rating_id: None, problem: Some(p) });
                }
            }
        }
        valid = kept;
    }
    let claims = match &state.gate {
        Some(g) => {
            g.store
                .claim_ratings(&valid.iter().map(|(_, e)| claim_key(e)).collect::<Vec<_>>(), g.takeover_after)
                .await?
        }
        None => vec![Claim::Claimed; valid.len()],
    };
    // A stage rated twice within this batch: the later item is a duplicate of the earlier one,
    // whose claim is still pending because it is produced with this very request.
    let own: std::collections::HashSet<Uuid> = valid.iter().map(|(_, e)| e.rating_id).collect();
    let mut to_send = Vec::new();
    for ((index, event), claim) in valid.into_iter().zip(claims) {
        match claim {
            Claim::Claimed => to_send.push((index, event)),
            Claim::Resumed(id) => to_send.push((index, RatingSubmitted { rating_id: id, ..event })),
            Claim::Existing(id) | Claim::InProgress(id) => {
                let refusal = match (claim, &state.gate) {
                    (Claim::InProgress(_), Some(gate)) if !own.contains(&id) => gate::in_progress(gate),
                    _ => ApiError::DuplicateRating { existing_rating_id: id.to_string() },
                };
                let p = refusal.to_problem();
                results[index] = Some(ItemResult { index, status: p.status, rating_id: None, problem: Some(p) });
            }
        }
    }
    let sent = join_all(to_send.iter().map(|(_, e)| publish(state, e))).await;
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for ((index, event), r) in to_send.iter().zip(sent) {
        match r {
            Ok(()) => {
                ok.push(event.rating_id);
                results[*index] =
                    Some(ItemResult { index: *index, status: 202, rating_id: Some(event.rating_id), problem: None });
            }
            Err(e) => {
                failed.push(event.rating_id);
                results[*index] =
                    Some(ItemResult { index: *index, status: 503, rating_id: None, problem: Some(e.to_problem()) });
            }
        }
    }
    if let Some(g) = &state.gate {
        if let Err(e) = g.store.accept_claims(&ok).await {
            tracing::warn!(error = %e, "batch claims not marked accepted");
        }
        if let Err(e) = g.store.release_claims(&failed).await {
            tracing::warn!(error = %e, "batch claims not released");
        }
    }
    let items: Vec<ItemResult> = results.into_iter().map(|r| r.expect("every item has a result")).collect();
    let count = |s: u16| items.iter().filter(|i| i.status == s).count();
    metrics::BATCH_ITEMS.with_label_values(&["accepted"]).inc_by(count(202) as u64);
    metrics::BATCH_ITEMS.with_label_values(&["duplicate"]).inc_by(count(409) as u64);
    Ok(BatchResult {
        accepted: count(202),
        duplicates: count(409),
        invalid: items.iter().filter(|i| i.status == 422 || i.status == 400).count(),
        failed: items.iter().filter(|i| i.status >= 500).count(),
        items,
    })
}
