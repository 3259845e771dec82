//! Every route a router answers, as (method, path), read from the router
//! itself: whatever `build_router` registers or merges in (server
//! functions, forms, the gate, WebAuthn, wherever their modules live) is
//! listed without a list to keep up to date. The tests that must reach
//! every endpoint (the malformed-input test) iterate it.
//!
//! axum's `Router` has no way to list its routes, but its `Debug` output
//! names each route's path and the methods it was given (the `Allow`
//! header it would send); that is what is read here. The unit tests below
//! check the reading on a router of every kind of route, so an axum whose
//! output differs fails here rather than listing nothing.

use axum::http::Method;

/// The methods a route made with `any(…)` (or a service) is listed under.
pub const ANY: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// (method, path) for every route of `router`, sorted by path then method.
/// A route that takes any method is listed once per method in [`ANY`];
/// `HEAD`, which axum adds to every `GET`, is left out.
pub fn of<S>(router: &axum::Router<S>) -> Vec<(Method, String)> {
    read(&format!("{router:?}"))
}

fn read(debug: &str) -> Vec<(Method, String)> {
    // The fallback router numbers its routes on its own: only the main one.
    let main = debug.split("fallback_router:").next().unwrap_or(debug);
    let mut paths = std::collections::HashMap::new();
    let mut methods = std::collections::HashMap::new();
    let mut rest = main;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at + "RouteId(".len()..];
        let Some((id, after)) = rest.split_once("): ") else { break };
        let Ok(id) = id.trim().parse::<u32>() else { continue };
        if let Some(quoted) = after.strip_prefix('"') {
            if let Some((path, _)) = quoted.split_once('"') {
                paths.insert(id, path.to_owned());
            }
        } else if after.starts_with("MethodRouter(") {
            // The methods it was given, as its Allow header: `Bytes(b"GET,HEAD")`,
            // or `Skip` for `any(…)`, whose fallback takes every method.
            let Some((_, allow)) = after.split_once("allow_header: ") else { continue };
            let listed = if allow.starts_with("Skip") {
                ANY.to_vec()
            } else if let Some(bytes) = allow.strip_prefix("Bytes(b\"") {
                bytes
                    .split('"')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|m| Method::from_bytes(m.trim().as_bytes()).ok())
                    .filter(|m| *m != Method::HEAD)
                    .collect()
            } else {
                Vec::new()
            };
            methods.insert(id, listed);
        } else if after.starts_with("Route(") {
            // A service: it takes what it is sent.
            methods.insert(id, ANY.to_vec());
        }
    }
    let mut routes: Vec<(Method, String)> = methods
        .into_iter()
        .filter_map(|(id, listed)| Some((paths.get(&id)?.clone(), listed)))
        .flat_map(|(path, listed)| listed.into_iter().map(move |m| (m, path.clone())))
        .collect();
    routes.sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
    routes
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::{any, get, post};

    use super::*;

    #[test]
    fn every_kind_of_route_is_listed_with_its_methods() {
        let forms = Router::new().route("/login", post(|| async {})).route("/logout", post(|| async {}));
        let router: Router = Router::new()
            .route("/healthz", get(|| async {}))
            .route("/login", get(|| async {}))
            .route("/api/items/{id}/remove", post(|| async {}).delete(|| async {}))
            .route("/api/{*rest}", any(|| async {}))
            .route_service("/static", tower::service_fn(|_| async { Ok::<_, std::convert::Infallible>("") }))
            .merge(forms)
            .fallback(|| async {});
        let listed: Vec<(String, String)> = of(&router).into_iter().map(|(m, p)| (m.to_string(), p)).collect();
        let mut expected: Vec<(String, String)> = [
            ("GET", "/healthz"),
            ("GET", "/login"),
            ("POST", "/login"),
            ("POST", "/logout"),
            ("DELETE", "/api/items/{id}/remove"),
            ("POST", "/api/items/{id}/remove"),
        ]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        for path in ["/api/{*rest}", "/static"] {
            expected.extend(ANY.iter().map(|m| (m.to_string(), path.to_owned())));
        }
        expected.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        assert_eq!(listed, expected);
    }
}
