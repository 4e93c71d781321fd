//! How the dashboard's handlers answer: a rendered page, JSON, or a [`Failure`] (the grid
//! unreachable, too slow, a bad request), and the time any request may take to gather
//! its data.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pages;

/// How long one page may take to gather its data.
const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// A page that could not be made: the server unreachable, too slow, or a bad request.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl Failure {
    /// A refused request (403), saying why.
    pub fn refused(why: &str) -> Failure {
        Failure(StatusCode::FORBIDDEN, format!("refused: {why}"))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure(StatusCode::BAD_GATEWAY, format!("{e:#}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, page(pages::error_page(self.0, &self.1))).into_response()
    }
}

/// `work`, or a 504 once it has taken [`REQUEST_BUDGET`].
pub async fn within_budget<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(REQUEST_BUDGET, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the grid did not answer within {} s",
                REQUEST_BUDGET.as_secs()
            ),
        )),
    }
}

/// A rendered page as an HTML response.
pub fn page(markup: maud::Markup) -> Response {
    axum::response::Html(markup.into_string()).into_response()
}

/// JSON text as a response, made safe to embed (`text::safe_json`).
pub fn json_response(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        common::text::safe_json(text),
    )
        .into_response()
}
