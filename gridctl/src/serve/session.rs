//! The operator's side of the dashboard: logging in and out with the control token, the
//! buttons, and the one place a request's session cookie is read ([`ControlSession`] for
//! a handler that acts, [`Viewer`] for a page that shows the buttons or not).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Path as UrlPath, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Auth, Session};
use super::listen;
use super::pages::{self, Viewer};
use super::reply::{page, within_budget, Failure};
use super::state::App;

/// The Cookie header, when it is text.
fn cookies(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok())
}

/// A request from a logged-in operator: control is on and the cookie names an open
/// session. A handler that takes one runs for nobody else; what it is asked to do is
/// then checked against the session with [`ControlSession::check_form`].
pub struct ControlSession {
    auth: Auth,
    session: Session,
    /// The Cookie header, to end this very session.
    cookies: Option<String>,
    same_origin: bool,
}

impl FromRequestParts<Arc<App>> for ControlSession {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Failure> {
        let Some(auth) = app.config.control.clone() else {
            return Err(Failure::refused(
                "control is off (gridctl serve --allow-control)",
            ));
        };
        let cookies = cookies(&parts.headers);
        let Some(session) = auth.session(cookies) else {
            return Err(Failure::refused(
                "log in with the control token first (/login)",
            ));
        };
        Ok(ControlSession {
            session,
            cookies: cookies.map(str::to_owned),
            same_origin: same_origin(&parts.headers),
            auth,
        })
    }
}

impl ControlSession {
    /// Refuses a form that does not carry this session's CSRF value or that another
    /// origin sent.
    fn check_form(&self, csrf: &str) -> Result<(), Failure> {
        if auth::equal(self.session.csrf.as_bytes(), csrf.as_bytes()) && self.same_origin {
            Ok(())
        } else {
            Err(Failure::refused("the form did not come from this page"))
        }
    }
}

/// Who is asking, for a page: may they press buttons, and with which CSRF value.
impl FromRequestParts<Arc<App>> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        Ok(match &app.config.control {
            None => Viewer::ReadOnly,
            Some(auth) => match auth.session(cookies(&parts.headers)) {
                Some(session) => Viewer::Control { csrf: session.csrf },
                None => Viewer::LoggedOut,
            },
        })
    }
}

/// Which requests the connections kept for the operator serve: one carrying an open
/// session, or a login (its page, or the form); without control, none.
pub fn reserve_for(control: &Option<Auth>) -> listen::ReserveFor {
    let control = control.clone();
    Arc::new(move |request: &hyper::Request<hyper::body::Incoming>| {
        let Some(auth) = &control else {
            return false;
        };
        request.uri().path() == "/login" || auth.session(cookies(request.headers())).is_some()
    })
}

/// `GET /login`: the form, when control is on.
pub async fn login_page(State(app): State<Arc<App>>) -> Response {
    if app.config.control.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "control is off: start gridctl serve with --allow-control\n",
        )
            .into_response();
    }
    page(pages::login(None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: the right token opens a session (a cookie); a wrong one makes its
/// client wait before the next.
pub async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(auth) = &app.config.control else {
        return (StatusCode::NOT_FOUND, "control is off\n").into_response();
    };
    // A page elsewhere must not log a browser in (login CSRF).
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "a login from another site\n").into_response();
    }
    // The right token always logs in: it holds 128 bits, so nobody's wrong guesses
    // (through the same proxy or tunnel, as the operator's) may keep it out (issue 34).
    if !auth.is_token(&form.token) {
        return wrong_token(auth, peer);
    }
    let (id, _) = match auth.open(peer.ip()) {
        Ok(opened) => opened,
        Err(e) => return Failure::from(e).into_response(),
    };
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        auth::COOKIE,
        auth::SESSION_LIFETIME.as_secs()
    );
    with_cookie(Redirect::to("/").into_response(), &cookie)
}

/// The answer to a wrong token: wait (429) if this client must, else 403, and the
/// client waits longer next time.
fn wrong_token(auth: &Auth, peer: SocketAddr) -> Response {
    if let Some(wait) = auth.must_wait(peer.ip()) {
        let message = format!(
            "too many wrong tokens: try again in {} s",
            wait.as_secs() + 1
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            page(pages::login(Some(&message))),
        )
            .into_response();
    }
    auth.failed(peer.ip());
    tracing::warn!(client = %peer.ip(), "a login with a wrong control token");
    (
        StatusCode::FORBIDDEN,
        page(pages::login(Some("that is not the control token"))),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: ends this browser's session.
pub async fn logout(
    operator: ControlSession,
    Form(form): Form<LogoutForm>,
) -> Result<Response, Failure> {
    operator.check_form(&form.csrf)?;
    operator.auth.close(operator.cookies.as_deref());
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::COOKIE
    );
    Ok(with_cookie(Redirect::to("/").into_response(), &cookie))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// True when a proxy in front says the browser came over TLS: the cookie is then `Secure`.
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[derive(Deserialize)]
pub struct ControlForm {
    csrf: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    video: Option<String>,
}

/// `POST /control/ACTION`, a button: only for a logged-in operator whose form carries
/// the session's CSRF value and comes from this origin.
pub async fn control(
    State(app): State<Arc<App>>,
    operator: ControlSession,
    UrlPath(action): UrlPath<String>,
    Form(form): Form<ControlForm>,
) -> Result<Response, Failure> {
    operator.check_form(&form.csrf)?;
    // What the commands would print goes to the log, not to a stdout no one may read.
    let mut said = Vec::new();
    within_budget(act(&app, &action, &form, &mut said)).await?;
    tracing::info!(action = %action, said = %common::text::one_line(&String::from_utf8_lossy(&said)), "control action done");
    Ok(Redirect::to(if action == "retry" || action == "discard" {
        "/failures"
    } else {
        "/"
    })
    .into_response())
}

/// Does what a button asks.
async fn act(
    app: &App,
    action: &str,
    form: &ControlForm,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let grid = &app.grid;
    let config = grid.config();
    match action {
        "pause" => crate::control::pause(config, None, out).await.map(drop),
        "resume" => crate::control::resume(config, out).await,
        // The web's drain only pauses: the overview shows the jobs still in progress.
        "drain" => crate::control::pause(config, None, out).await.map(drop),
        "retry" => match &form.video {
            Some(v) => crate::failures::retry(grid, false, std::slice::from_ref(v), out)
                .await
                .map(drop),
            None => crate::failures::retry(grid, true, &[], out).await.map(drop),
        },
        "discard" => match form.id {
            Some(id) => crate::failures::discard(grid, &[id], None, out).await,
            None => anyhow::bail!("discard needs an id"),
        },
        other => anyhow::bail!("no such action: {other}"),
    }
}

/// True unless the request names an Origin that is not its Host.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            host.is_some_and(|h| h == origin_host)
        }
    }
}
