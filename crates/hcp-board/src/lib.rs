//! # hcp-board: the read side
//!
//! Owns the live supervisor board (`/board`, zh-CN, Apache ECharts served from the binary): one
//! snapshot per viewer's reach (`GET /api/v1/board`: today, the month, trend, channel and stage
//! split, rankings, top 差评 tags, work-order timeliness, open alerts), pushed over Server-Sent
//! Events (`GET /api/v1/board/stream`) whenever PostgreSQL notifies `hcp_board` on a commit that
//! changed aggregates, work orders or alerts ([`live`]). And the statistics API over the aggregates the aggregator maintains:
//! `GET /api/v1/stats/summary` (count per grade, total, 好评率, 差评 count for a scope and a
//! time range) and `GET /api/v1/stats/ranking` (units of a scope ranked by 好评率, with a
//! minimum number of ratings), and one rating's stored record (`GET /api/v1/ratings/{id}`), and the public disclosure (`/public`, `GET
//! /api/v1/public/satisfaction`: per-department results of the last full and the current month,
//! no login, nothing below a department), and the national export (`GET /api/v1/export/ratings`,
//! JSON lines or CSV with the national field names), and the monthly performance report
//! (`GET /api/v1/reports/monthly`, XLSX or CSV). Rates are derived at read time under the configured
//! [`hcp_domain::SatisfactionPolicy`], so changing the policy needs no recount.
//!
//! It must not write: every number it shows was committed by the aggregator's transaction.
//! It never reads Kafka. The ratings table is read only for one period at a time (today's channel
//! and stage split, the month's 差评 tags, an export page); totals, trends and rankings come from
//! the aggregates.

mod board;
pub mod export;
mod handlers;
pub mod live;
pub mod public;
pub mod ratings;
pub mod report;

use hcp_domain::{Role, SatisfactionPolicy};
use hcp_http::{Access, Component, Routes};
use std::sync::Arc;

use hcp_store::Store;

pub use board::{
    __path_board, __path_board_stream, BoardAlert, BoardOrders, BoardRanking, BoardScope, BoardSnapshot, DayPoint,
    DimensionEntry, Figures, HourPoint, SplitEntry, TagCount, ECHARTS_PATH,
};
pub use handlers::{__path_ranking, __path_summary, Ranking, RankingEntry, RankingParams, StatsSummary, SummaryParams};

/// What the board handlers share.
#[derive(Clone)]
pub struct BoardState {
    /// The database.
    pub store: Store,
    /// Whether 基本满意 counts as good.
    pub policy: SatisfactionPolicy,
    /// Fewest ratings a staff member needs to appear in a ranking.
    pub staff_min_ratings: i64,
    /// The live push hub.
    pub live: Arc<live::Live>,
    /// Each channel's `pf` code in the provincial export (`HCP_EXPORT_PF`).
    pub export_pf: hcp_domain::export::PfMap,
}

/// Roles that read statistics (each within its reach).
const READERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Auditor, Role::Handler];

/// Roles that read one rating's record (a supervisor its region's).
const RATING_READERS: &[Role] = &[Role::Admin, Role::Auditor, Role::Supervisor, Role::Callback];

/// Roles that export ratings for the provincial / national platform (the whole system).
const EXPORTERS: &[Role] = &[Role::Admin, Role::Auditor];

/// The `board` component: the read routes, and the `live-listener` task that turns
/// PostgreSQL's `hcp_board` notifications into pushes to open boards.
pub fn component(state: BoardState) -> Component {
    let (store, live) = (state.store.clone(), state.live.clone());
    Component::new("board", routes(state)).task("live-listener", move |stop| live::run_listener(store, live, stop))
}

/// The read routes with their access.
fn routes(state: BoardState) -> Routes {
    Routes::new()
        .get("/api/v1/stats/summary", Access::scoped(READERS), handlers::summary)
        .get("/api/v1/stats/ranking", Access::scoped(READERS), handlers::ranking)
        .get("/api/v1/ratings/{rating_id}", Access::scoped(RATING_READERS), ratings::rating_record)
        .get("/api/v1/public/satisfaction", Access::Public, public::satisfaction)
        .get("/api/v1/export/ratings", Access::operators(EXPORTERS), export::ratings)
        .get("/api/v1/reports/monthly", Access::scoped(READERS), report::monthly)
        .get("/public", Access::Public, public::page)
        .get("/board", Access::Public, board::page)
        .get(ECHARTS_PATH, Access::Public, board::echarts)
        .get("/api/v1/board", Access::scoped(READERS), board::board)
        .get("/api/v1/board/stream", Access::scoped(READERS), board::board_stream)
        .with_state(state)
}
