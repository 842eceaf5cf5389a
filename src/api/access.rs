//! Who may use the local API. Requests whose `Origin` is another site are refused with 403.
//! Without a token (the default, bound to loopback) the `Host` must be a loopback name or
//! address (DNS rebinding protection); with a token (required off loopback) every request must
//! carry it, as `Authorization: Bearer …` or `?token=…`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::routes::App;

pub(super) async fn access(State(app): State<App>, request: Request, next: Next) -> Response {
    let token = app.token.as_deref();
    match check_access(request.headers(), request.uri().query(), token) {
        Ok(()) => next.run(request).await,
        Err(why) => ApiError::new(StatusCode::FORBIDDEN, why).into_response(),
    }
}

/// An Origin, if sent, must be this server's own. Without a token the Host must name this
/// machine's loopback; with one, the request must carry the token.
fn check_access(
    headers: &HeaderMap,
    query: Option<&str>,
    token: Option<&str>,
) -> Result<(), &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("missing Host header")?;
    match token {
        None if !is_loopback_host(host) => {
            return Err("Host is not a loopback address (DNS rebinding protection)")
        }
        None => {}
        Some(token) => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            let in_query = query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|kv| kv.strip_prefix("token="));
            if !bearer
                .into_iter()
                .chain(in_query)
                .any(|t| constant_time_eq(t, token))
            {
                return Err("missing or wrong access token");
            }
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| "bad Origin header")?;
        if origin != format!("http://{host}") {
            return Err("cross-origin requests are refused");
        }
    }
    Ok(())
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
}
