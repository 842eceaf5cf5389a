//! Who may use the local API. Requests whose `Origin` is another site are refused with 403.
//! Without a token (the default, bound to loopback) the `Host` must be a loopback name or
//! address (DNS rebinding protection); with a token (required off loopback) every request must
//! carry it, as `Authorization: Bearer …`, `?token=…`, or the cookie a browser gets after opening
//! `/?token=…` once (`HttpOnly`, `SameSite=Strict`; its value is a key derived from the token,
//! not the token), so the editor's scripts, API calls and WebSocket work.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::routes::App;

/// Name of the cookie that stands for the token in a browser.
const COOKIE: &str = "peerdoc_session";
/// Domain separation for the cookie's value.
const COOKIE_CONTEXT: &str = "peerdoc 2026-11 http session cookie v1";

/// How a request proved it may use the API.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// No token is configured: loopback Host and same Origin suffice.
    Local,
    /// The token in a header or the cookie.
    Token,
    /// The token in the query: the response sets the cookie.
    QueryToken,
}

pub(super) async fn access(State(app): State<App>, request: Request, next: Next) -> Response {
    let token = app.token.as_deref();
    match check_access(request.headers(), request.uri().query(), token) {
        Ok(Pass::QueryToken) => {
            let mut response = next.run(request).await;
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                cookie_value(token.unwrap_or_default())
            );
            if let Ok(value) = cookie.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(_) => next.run(request).await,
        Err(why) => ApiError::new(StatusCode::FORBIDDEN, why).into_response(),
    }
}

/// The cookie's value for a token: a key derived from it, so the cookie is not the token.
fn cookie_value(token: &str) -> String {
    hex::encode(blake3::derive_key(COOKIE_CONTEXT, token.as_bytes()))
}

/// An Origin, if sent, must be this server's own. Without a token the Host must name this
/// machine's loopback; with one, the request must carry the token (or its cookie).
fn check_access(
    headers: &HeaderMap,
    query: Option<&str>,
    token: Option<&str>,
) -> Result<Pass, &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("missing Host header")?;
    let pass = match token {
        None if !is_loopback_host(host) => {
            return Err("Host is not a loopback address (DNS rebinding protection)")
        }
        None => Pass::Local,
        Some(token) => {
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
                Pass::QueryToken
            } else if bearer.is_some_and(|t| constant_time_eq(t, token))
                || cookie.is_some_and(|c| constant_time_eq(c, &cookie_value(token)))
            {
                Pass::Token
            } else {
                return Err("missing or wrong access token");
            }
        }
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| "bad Origin header")?;
        if origin != format!("http://{host}") {
            return Err("cross-origin requests are refused");
        }
    }
    Ok(pass)
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

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, o.parse().unwrap());
        }
        m
    }

    #[test]
    fn only_loopback_hosts_and_same_origin_pass() {
        let h = |host: &str, origin: Option<&str>| check_access(&headers(host, origin), None, None);
        assert!(h("127.0.0.1:7777", None).is_ok());
        assert!(h("localhost:7777", Some("http://localhost:7777")).is_ok());
        assert!(h("[::1]:7777", None).is_ok());
        assert!(h("127.0.0.1:7777", Some("http://evil.example")).is_err());
        assert!(h("evil.example:7777", None).is_err());
        assert!(h("192.168.1.5:7777", None).is_err());
        assert!(check_access(&HeaderMap::new(), None, None).is_err());
    }

    #[test]
    fn a_token_is_required_when_set() {
        let token = Some("s3cret");
        let lan = headers("192.168.1.5:7777", None);
        assert!(check_access(&lan, None, token).is_err());
        assert!(check_access(&lan, Some("token=wrong"), token).is_err());
        assert!(check_access(&lan, Some("a=1&token=s3cret"), token).is_ok());
        let mut bearer = lan.clone();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(check_access(&bearer, None, token).is_ok());
        let foreign = headers("192.168.1.5:7777", Some("http://evil.example"));
        assert!(check_access(&foreign, Some("token=s3cret"), token).is_err());
    }

    #[test]
    fn a_token_in_the_query_earns_a_cookie_that_then_stands_for_it() {
        let token = Some("s3cret");
        let lan = headers("192.168.1.5:7777", None);
        assert_eq!(
            check_access(&lan, Some("token=s3cret"), token),
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
            check_access(&with_cookie(&good), None, token),
            Ok(Pass::Token)
        );
        assert!(check_access(&with_cookie("s3cret"), None, token).is_err());
        assert!(check_access(&with_cookie(&cookie_value("other")), None, token).is_err());
    }
}
