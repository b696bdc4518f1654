//! The department handler's console (`/console`, zh-CN) and the rater's callback page
//! (`/callback/{token}`): static pages over the same API, no front-end framework.

use axum::response::Html;

/// `/console`: log in, see the orders of one's scope sorted by deadline, act, read the audit log.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../assets/console.html"))
}

/// `/callback/{token}`: the rater answers a callback invitation (the page reads the token from
/// its own path and talks to `/api/v1/callback/{token}`).
pub async fn callback_page() -> Html<&'static str> {
    Html(include_str!("../assets/callback.html"))
}

/// `/staff` (我的差评): a staff member logs in, reads their own bad reviews (never who gave them)
/// and appeals one, then follows the review.
pub async fn staff_page() -> Html<&'static str> {
    Html(include_str!("../assets/staff.html"))
}
