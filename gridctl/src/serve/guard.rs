//! What every answer of the dashboard passes through: the `Host` check against DNS
//! rebinding, and the headers that make whatever slipped through escaping inert; and the
//! static assets, which are in the binary.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::App;

/// Refuses a request whose `Host` is not a name this server answers to: a page on
/// another site that resolves its own name to this address (DNS rebinding) would
/// otherwise read every page. Loopback names pass with any port (an SSH tunnel may use
/// another), so does the address listened on, and every `--allow-host`.
pub async fn known_host(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if host_allowed(host, &app.config.listen, &app.config.allowed_hosts) {
        return next.run(request).await;
    }
    let message = format!(
        "this dashboard does not answer to the name {:?}: add it with --allow-host (GRIDCTL_ALLOW_HOSTS)\n",
        common::text::one_line(host)
    );
    (StatusCode::MISDIRECTED_REQUEST, message).into_response()
}

/// True when `host` (a Host header: a name or address, maybe a port) may be served.
fn host_allowed(host: &str, listen: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host.as_str(),
    };
    if matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
        return true;
    }
    host == listen.to_ascii_lowercase()
        || allowed.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == host || a == name
        })
}

/// Headers that make whatever slipped through escaping inert: no inline script, no
/// framing, no sniffing.
pub async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A static asset (stylesheet, script), cached a while.
pub async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_host_names_are_answered() {
        let listen = "10.0.0.5:8800";
        let allowed = vec!["grid.example.org".to_owned(), "proxy:8443".to_owned()];
        for ok in [
            "127.0.0.1:8800",
            "127.0.0.1:9000",
            "localhost:8800",
            "[::1]:8800",
            "10.0.0.5:8800",
            "grid.example.org",
            "Grid.Example.org:443",
            "proxy:8443",
        ] {
            assert!(host_allowed(ok, listen, &allowed), "{ok}");
        }
        for refused in [
            "attacker.example",
            "attacker.example:8800",
            "10.0.0.5:9999",
            "proxy:9000",
            "",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example:8800",
        ] {
            assert!(!host_allowed(refused, listen, &allowed), "{refused}");
        }
    }
}
