//! Links leave the app only for the system browser, and only web and email
//! links do: `open_link` for what the UI asks, and a navigation guard so the
//! web view itself never loads another origin (a clicked link that slipped
//! past the UI opens in the browser instead).

use url::Url;

/// `url` if it is a link Quire opens in the system browser (http, https,
/// mailto), else `None`.
pub fn external(url: &str) -> Option<Url> {
    let url = Url::parse(url.trim()).ok()?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Some(url),
        "mailto" => Some(url),
        _ => None,
    }
}

/// Whether `url` is the app's own content: `tauri://localhost` (Linux,
/// macOS), `http(s)://tauri.localhost` (Windows), or the dev server when the
/// build has one.
pub fn is_app(url: &Url, dev_url: Option<&Url>) -> bool {
    match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" if url.host_str() == Some("tauri.localhost") => true,
        "about" => url.path() == "blank",
        _ => dev_url.is_some_and(|dev| dev.origin() == url.origin()),
    }
}

/// The navigation guard: the app's own pages load; web and email links open
/// in the system browser; anything else is refused.
pub fn allow_navigation(url: &Url, dev_url: Option<&Url>, open: impl Fn(&Url)) -> bool {
    if is_app(url, dev_url) {
        return true;
    }
    match external(url.as_str()) {
        Some(link) => {
            tracing::info!(
                scheme = link.scheme(),
                "a link left the window; opening it in the browser"
            );
            open(&link);
        }
        None => tracing::warn!(
            scheme = url.scheme(),
            "refused a navigation away from the app"
        ),
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn only_web_and_email_links_go_out() {
        for good in [
            "https://example.com/a?b",
            "http://example.com",
            "mailto:a@example.com",
        ] {
            assert!(external(good).is_some(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "tauri://localhost/x",
            "data:text/html,hi",
            "ftp://example.com",
            "http://",
            "not a url",
        ] {
            assert!(external(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_web_view_stays_on_the_app_and_sends_links_out() {
        let opened = RefCell::new(Vec::new());
        let open = |u: &Url| opened.borrow_mut().push(u.to_string());
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(allow_navigation(
            &url("tauri://localhost/index.html"),
            None,
            open
        ));
        assert!(allow_navigation(
            &url("http://tauri.localhost/"),
            None,
            open
        ));
        assert!(!allow_navigation(&url("https://evil.example/"), None, open));
        assert!(!allow_navigation(&url("file:///etc/passwd"), None, open));
        let dev = url("http://localhost:5173/");
        assert!(allow_navigation(
            &url("http://localhost:5173/x"),
            Some(&dev),
            open
        ));
        assert!(!allow_navigation(
            &url("http://localhost:5174/x"),
            Some(&dev),
            open
        ));
        assert_eq!(
            opened.into_inner(),
            ["https://evil.example/", "http://localhost:5174/x"]
        );
    }
}
