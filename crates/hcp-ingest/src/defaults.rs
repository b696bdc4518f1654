//! Default ratings (docs/domain.md §2, Guangdong 2019): a stage of a known service record left unrated
//! for the region's number of natural days (default 7) gets a 基本满意 rating with channel
//! `system_default` (national `pf` = 7). It goes through the same claim and producer as every
//! rating, so a citizen's rating that arrives first wins and a default is never made twice.

use chrono::{DateTime, Duration, Utc};
use hcp_domain::{Channel, RatingInput};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{handlers, IngestState};

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultsRun {
    /// Unrated stages looked at.
    pub examined: usize,
    /// Default ratings produced.
    pub produced: usize,
    /// Stages rated meanwhile (the claim was taken).
    pub already_rated: usize,
}

/// The `default-ratings` task: every `interval` until `stop`, produces the default ratings due
/// (up to 1 000 a run) and lets the rate limiter forget idle keys and addresses.
pub async fn run(state: IngestState, interval: std::time::Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = run_once(&state, Utc::now(), 1000).await {
                    tracing::warn!(error = %e, "default-rating run failed; retried at the next tick");
                }
                state.limits.shrink();
            }
        }
    }
}

/// Produces the default ratings due at `now` (up to `limit` stages). The rating's time is the
/// moment the default took effect (the stage's time plus the region's days).
pub async fn run_once(state: &IngestState, now: DateTime<Utc>, limit: i64) -> Result<DefaultsRun, hcp_http::ApiError> {
    let Some(gate) = &state.gate else { return Ok(DefaultsRun::default()) };
    let policies = gate.store.load_policies().await?;
    let dir = gate.store.load_directory().await?;
    // No region allows fewer than one day.
    let stages = gate.store.unrated_stages(now - Duration::days(1), limit).await?;
    let mut out = DefaultsRun { examined: stages.len(), ..Default::default() };
    for s in stages {
        let path = s.region_code.as_deref().map(|c| dir.region_path(c)).unwrap_or_default();
        let Some(days) = policies.for_region(&path).default_rating_days else { continue };
        let effective = s.at + Duration::days(i64::from(days));
        if effective > now {
            continue;
        }
        let (window_id, staff_id) = match s.stage.as_str() {
            "acceptance" => (s.record.accepted_window_id.clone(), s.record.accepted_staff_id.clone()),
            _ => (s.record.pickup_window_id.clone(), s.record.pickup_staff_id.clone()),
        };
        let input = RatingInput {
            channel: Some(Channel::SystemDefault.as_str().into()),
            stage: Some(s.stage.clone()),
            service_record_no: Some(s.record.service_record_no.clone()),
            service_item_code: s.record.service_item_code.clone(),
            department_id: s.record.department_id.clone(),
            hall_id: s.record.hall_id.clone(),
            window_id,
            staff_id,
            grade: Some(3),
            rated_at: Some(effective.fixed_offset()),
            ..Default::default()
        };
        match handlers::accept_one(state, None, input, Uuid::now_v7()).await {
            Ok(_) => out.produced += 1,
            Err(hcp_http::ApiError::DuplicateRating { .. }) => out.already_rated += 1,
            Err(e) => {
                tracing::warn!(record = %s.record.service_record_no, stage = %s.stage, error = %e, "default rating not produced; retried next run");
            }
        }
    }
    if out.produced > 0 {
        tracing::info!(?out, "default ratings produced");
    }
    Ok(out)
}
