//! The rating intake handler.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hcp_bus::PublishError;
use hcp_domain::{RaterIdentity, RatingInput};
use hcp_http::{ApiError, ApiJson, Problem};
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::{metrics, IngestState};

/// The answer to an accepted rating.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The UUIDv7 assigned to the rating.
    pub rating_id: Uuid,
}

/// Submit one rating.
///
/// Validates the rating, publishes it to Kafka and answers 202 once the broker has acknowledged
/// it (`acks=all`): a 202 means the rating is durable and will be counted exactly once.
#[utoipa::path(
    post,
    path = "/api/v1/ratings",
    tag = "ingest",
    request_body = RatingInput,
    responses(
        (status = 202, description = "Durably accepted", body = Accepted),
        (status = 400, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker unavailable, or a rater identity without a configured HCP_PII_KEY; nothing was recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit_rating(
    State(state): State<IngestState>,
    ApiJson(input): ApiJson<RatingInput>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if input.rater.is_some() && state.pii.is_none() {
        metrics::REFUSED.with_label_values(&["pii_key_missing"]).inc();
        return Err(ApiError::PiiKeyMissing);
    }
    // A fresh random nonce per identity (AES-GCM must never reuse one under a key).
    let seal = |prop: u8, id: &RaterIdentity| {
        let cipher = state.pii.as_ref().expect("checked above");
        cipher.seal(prop, id, rand::random())
    };
    let event = input
        .validate_with(Uuid::now_v7(), Utc::now(), Some(&seal))
        .inspect_err(|_| metrics::REFUSED.with_label_values(&["invalid"]).inc())?;
    let span = tracing::info_span!("publish", rating_id = %event.rating_id, channel = event.channel.as_str());
    let started = Instant::now();
    match state.producer.publish(&event).instrument(span).await {
        Ok((partition, offset)) => {
            metrics::PUBLISH_SECONDS.observe(started.elapsed().as_secs_f64());
            metrics::ACCEPTED.with_label_values(&[event.channel.as_str(), event.stage.as_str()]).inc();
            tracing::debug!(rating_id = %event.rating_id, partition, offset, "rating published");
            Ok((StatusCode::ACCEPTED, Json(Accepted { rating_id: event.rating_id })))
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
