//! Who may use the local API. Every request must carry the access token, as
//! `Authorization: Bearer …`, `?token=…`, or the cookie a browser gets after opening
//! `/?token=…` once (`HttpOnly`, `SameSite=Strict`; its value is a key derived from the token,
//! not the token), so the editor's scripts, API calls and WebSocket work. Another local user
//! cannot read the token (`api.token` is 0600 in a 0700 data dir), so can do nothing.
//!
//! A web page on another site cannot use the API either, token or not: a request its browser
//! marks `Sec-Fetch-Site: cross-site` or `same-site` is refused (this covers the "simple"
//! requests and no-cors fetches that carry no `Origin`), and so is an `Origin` that is not this
//! server's. On a loopback server the `Host` must name loopback too (DNS rebinding protection).
//! Each refusal is a 403 that says what to do, counted in `peerdoc_api_refused_total{reason}`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;
use super::routes::App;
use crate::data_dir::api_token_path;

/// Name of the cookie that stands for the token in a browser.
const COOKIE: &str = "peerdoc_session";
/// Domain separation for the cookie's value.
const COOKIE_CONTEXT: &str = "peerdoc 2026-11 http session cookie v1";

/// How a request proved it may use the API.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// The token in a header or the cookie.
    Token,
    /// The token in the query: the response sets the cookie.
    QueryToken,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Refusal {
    /// No token, or a wrong one.
    Token,
    /// `Sec-Fetch-Site` says another site sent it.
    CrossSite,
    /// Its `Origin` is another site (or unreadable).
    Origin,
    /// No `Host`, or not a loopback name on a loopback server.
    Host,
}

impl Refusal {
    /// The `reason` label of `peerdoc_api_refused_total`.
    fn reason(self) -> &'static str {
        match self {
            Refusal::Token => "token",
            Refusal::CrossSite => "cross_site",
            Refusal::Origin => "origin",
            Refusal::Host => "host",
        }
    }
}

/// What the request must show: the token, and whether this server is on loopback.
struct Expected<'a> {
    token: &'a str,
    loopback: bool,
}

pub(super) async fn access(State(app): State<App>, request: Request, next: Next) -> Response {
    let expected = Expected {
        token: &app.token,
        loopback: app.addr.ip().is_loopback(),
    };
    match check_access(request.headers(), request.uri().query(), &expected) {
        Ok(Pass::QueryToken) => {
            let mut response = next.run(request).await;
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                cookie_value(&app.token)
            );
            if let Ok(value) = cookie.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(Pass::Token) => next.run(request).await,
        Err(refusal) => {
            app.node.metrics().api_refused(refusal.reason());
            tracing::debug!(reason = refusal.reason(), uri = %request.uri(), "refused an API request");
            if refusal == Refusal::Token && wants_page(request.headers()) {
                return (StatusCode::FORBIDDEN, Html(token_page())).into_response();
            }
            ApiError::new(StatusCode::FORBIDDEN, message(refusal, &app)).into_response()
        }
    }
}

/// A browser opening a page (not a script's request): it gets a page, not JSON.
fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// What a browser without the token is shown: how to open the editor. (It names no path: on
/// every interface, anyone on the network may open it.)
fn token_page() -> &'static str {
    "<!doctype html><meta charset=utf-8><title>peerdoc: open with the token</title>\
     <style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;\
     padding:0 1em}code{background:#f3f3f3;padding:0 .2em}</style>\
     <h1>This peerdoc node needs its access token</h1>\
     <p>Open the web editor with the address <code>peerdoc serve</code> printed when it \
     started: it ends in <code>/?token=…</code>. The browser then remembers it.</p>\
     <p>On the node's machine, <code>peerdoc status</code> prints that address again (the \
     token is in the file <code>api.token</code> of the node's data dir, readable only by \
     the node's user).</p>"
}

/// What a refused client is told, with what to do.
fn message(refusal: Refusal, app: &App) -> String {
    match refusal {
        Refusal::Token => format!(
            "missing or wrong access token: open the editor at the URL the server printed when \
             it started, or send the token in {} as the header `Authorization: Bearer TOKEN`",
            api_token_path(&app.node.config().data_dir).display()
        ),
        Refusal::CrossSite => {
            "requests from another site are refused (Sec-Fetch-Site); open the editor from this \
             server's own address"
                .into()
        }
        Refusal::Origin => "cross-origin requests are refused".into(),
        Refusal::Host => "the Host is not a loopback address (DNS rebinding protection); use \
             127.0.0.1 or localhost"
            .into(),
    }
}

/// The cookie's value for a token: a key derived from it, so the cookie is not the token.
fn cookie_value(token: &str) -> String {
    hex::encode(blake3::derive_key(COOKIE_CONTEXT, token.as_bytes()))
}

/// A request passes if no other site sent it (`Sec-Fetch-Site`, `Origin`), its `Host` names
/// loopback when the server is on loopback, and it carries the token (or its cookie).
fn check_access(
    headers: &HeaderMap,
    query: Option<&str>,
    expected: &Expected,
) -> Result<Pass, Refusal> {
    // Browsers send `same-origin`, or `none` for what the user opened (typed, bookmarked).
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(Refusal::CrossSite);
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or(Refusal::Host)?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| Refusal::Origin)?;
        if origin != format!("http://{host}") {
            return Err(Refusal::Origin);
        }
    }
    if expected.loopback && !is_loopback_host(host) {
        return Err(Refusal::Host);
    }
    check_token(headers, query, expected.token)
}

/// The token in the query, the `Authorization` header, or the cookie.
fn check_token(headers: &HeaderMap, query: Option<&str>, token: &str) -> Result<Pass, Refusal> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let in_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='));
    if in_query.is_some_and(|t| constant_time_eq(t, token)) {
        Ok(Pass::QueryToken)
    } else if bearer.is_some_and(|t| constant_time_eq(t.trim(), token))
        || cookie.is_some_and(|c| constant_time_eq(c, &cookie_value(token)))
    {
        Ok(Pass::Token)
    } else {
        Err(Refusal::Token)
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Expected = Expected {
        token: "s3cret",
        loopback: true,
    };
    const LAN: Expected = Expected {
        token: "s3cret",
        loopback: false,
    };

    fn headers(host: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, host.parse().unwrap());
        for (name, value) in extra {
            m.insert(*name, value.parse().unwrap());
        }
        m
    }

    const BEARER: (&str, &str) = ("authorization", "Bearer s3cret");

    #[test]
    fn a_token_is_required_always() {
        let check = |host: &str, extra: &[(&'static str, &str)], query: Option<&str>| {
            check_access(&headers(host, extra), query, &LOCAL)
        };
        assert_eq!(check("127.0.0.1:7777", &[], None), Err(Refusal::Token));
        assert_eq!(
            check("127.0.0.1:7777", &[("authorization", "Bearer wrong")], None),
            Err(Refusal::Token)
        );
        assert_eq!(
            check("127.0.0.1:7777", &[], Some("token=wrong")),
            Err(Refusal::Token)
        );
        assert_eq!(check("127.0.0.1:7777", &[BEARER], None), Ok(Pass::Token));
        assert_eq!(
            check("127.0.0.1:7777", &[], Some("a=1&token=s3cret")),
            Ok(Pass::QueryToken)
        );
        assert!(check_access(&headers("192.168.1.5:7777", &[]), None, &LAN).is_err());
        assert_eq!(
            check_access(&headers("192.168.1.5:7777", &[BEARER]), None, &LAN),
            Ok(Pass::Token)
        );
    }

    #[test]
    fn on_loopback_only_loopback_hosts_pass() {
        let check = |host: &str| check_access(&headers(host, &[BEARER]), None, &LOCAL);
        assert!(check("127.0.0.1:7777").is_ok());
        assert!(check("localhost:7777").is_ok());
        assert!(check("[::1]:7777").is_ok());
        assert_eq!(check("evil.example:7777"), Err(Refusal::Host));
        assert_eq!(check("192.168.1.5:7777"), Err(Refusal::Host));
        let mut no_host = HeaderMap::new();
        no_host.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(check_access(&no_host, None, &LOCAL), Err(Refusal::Host));
    }

    #[test]
    fn other_sites_are_refused_token_or_not() {
        let check = |extra: &[(&'static str, &str)]| {
            let mut all = vec![BEARER];
            all.extend_from_slice(extra);
            check_access(&headers("localhost:7777", &all), None, &LOCAL)
        };
        assert!(check(&[("origin", "http://localhost:7777")]).is_ok());
        assert_eq!(
            check(&[("origin", "http://evil.example")]),
            Err(Refusal::Origin)
        );
        for site in ["same-origin", "none"] {
            assert!(check(&[("sec-fetch-site", site)]).is_ok(), "{site}");
        }
        for site in ["cross-site", "same-site", "junk"] {
            assert_eq!(
                check(&[("sec-fetch-site", site)]),
                Err(Refusal::CrossSite),
                "{site}"
            );
        }
        // A no-cors GET from another page carries no Origin, only Sec-Fetch-Site.
        let foreign = headers("localhost:7777", &[("sec-fetch-site", "cross-site")]);
        assert_eq!(
            check_access(&foreign, Some("token=s3cret"), &LOCAL),
            Err(Refusal::CrossSite)
        );
    }

    #[test]
    fn a_token_in_the_query_earns_a_cookie_that_then_stands_for_it() {
        let lan = headers("192.168.1.5:7777", &[]);
        assert_eq!(
            check_access(&lan, Some("token=s3cret"), &LAN),
            Ok(Pass::QueryToken)
        );
        let with_cookie = |value: &str| {
            let mut h = lan.clone();
            h.insert(
                header::COOKIE,
                format!("theme=dark; {COOKIE}={value}").parse().unwrap(),
            );
            h
        };
        let good = cookie_value("s3cret");
        assert_ne!(good, "s3cret", "the cookie is not the token");
        assert_eq!(
            check_access(&with_cookie(&good), None, &LAN),
            Ok(Pass::Token)
        );
        assert!(check_access(&with_cookie("s3cret"), None, &LAN).is_err());
        assert!(check_access(&with_cookie(&cookie_value("other")), None, &LAN).is_err());
    }
}
