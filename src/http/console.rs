//! The agent console: one HTML page and its script, compiled into the
//! binary and served at `/console` and `/console/app.js`, so running kefu is
//! all it takes to use it (no build step, no CDN).
//!
//! The page talks only to the agent API (`/v1/agent/me`, `/v1/tickets…`,
//! `/v1/conversations…`, `/v1/export`) with the agent's bearer token; it has
//! no server-side state of its own. Buyer text reaches the page only as data
//! and is inserted with `textContent`. The Content-Security-Policy makes that
//! a guarantee rather than a habit: scripts come only from this origin's
//! `/console/app.js` (no inline script, no `eval`), and Trusted Types are
//! required, so even a future `innerHTML = buyerText` would throw instead of
//! running markup.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const PAGE: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");

/// What the page may load and do. `style-src 'unsafe-inline'` allows the
/// page's own `<style>` block and `style` changes from the script; styles
/// cannot run code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     form-action 'none'; frame-ancestors 'none'; base-uri 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// `/console` and `/console/app.js`, merged into the main router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/app.js", get(script))
}

async fn page() -> Response {
    serve("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    serve("text/javascript; charset=utf-8", SCRIPT)
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page is small and changes with kefu's version; an agent should
    // never run a stale script against a newer API.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_script() {
        assert!(PAGE.contains(r#"<script src="/console/app.js"></script>"#));
        // No inline script, no inline event handler: the CSP would block
        // them anyway, and a page that relies on them would silently break.
        assert_eq!(PAGE.matches("<script").count(), 1, "one script tag");
        for attribute in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            "javascript:",
        ] {
            assert!(!PAGE.contains(attribute), "inline handler {attribute}");
        }
    }

    #[test]
    fn the_script_never_parses_strings_as_html() {
        // Buyer text must reach the DOM as text. These sinks parse markup;
        // the page does not use any of them (the CSP's Trusted Types rule
        // would make them throw in the browser).
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
        ] {
            assert!(!SCRIPT.contains(sink), "console.js uses {sink}");
        }
    }

    #[test]
    fn the_policy_forbids_inline_and_foreign_scripts() {
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert!(
            !CONTENT_SECURITY_POLICY
                .split(';')
                .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline"))
        );
        assert!(CONTENT_SECURITY_POLICY.contains("require-trusted-types-for 'script'"));
    }
}
