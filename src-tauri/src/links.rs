//! Links leave the app only for the system browser, only web and email links
//! do, and only once the person said yes to their origin in a native dialog
//! (`open_link`, which the UI calls when a link in an answer is clicked). The
//! web view itself never loads another origin: the navigation guard refuses
//! and opens nothing, so a page that navigates by itself (a script setting
//! `location`, a link the UI did not catch) cannot send anyone anywhere
//! without that question.

use std::sync::atomic::{AtomicBool, Ordering};

use tauri::{Runtime, WebviewWindow};
use url::Url;

/// The variable that answers the dialog for the person in the window tests
/// (`yes` or `no`; docs/desktop-on-linux.md §4): under WebDriver a native
/// dialog would wait for ever. Read once, at start.
pub const E2E_CONFIRM_LINKS: &str = "QUIRE_E2E_CONFIRM_LINKS";

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

/// The navigation guard: the app's own pages load; anything else is refused
/// and goes nowhere.
pub fn allow_navigation(url: &Url, dev_url: Option<&Url>) -> bool {
    if is_app(url, dev_url) {
        return true;
    }
    tracing::warn!(
        scheme = url.scheme(),
        "refused a navigation away from the app; it opens nothing"
    );
    false
}

/// What the dialog asks about `link`, and the line below the question: the
/// origin (for an email link, the address), then the whole link. The origin
/// is the ASCII (punycode) one, so a look-alike host shows as what it is,
/// and a `user@` before the host cannot pass for it.
pub fn question(link: &Url) -> (String, String) {
    let question = match link.scheme() {
        "mailto" => format!("Write to {} in your email app?", cut(link.path(), 200)),
        _ => format!(
            "Open {} in your browser?",
            link.origin().ascii_serialization()
        ),
    };
    let detail = format!("The full link: {}", cut(link.as_str(), 500));
    (question, detail)
}

/// `text`, cut to `max` characters with an ellipsis.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Asking the person before a link leaves for the browser.
pub struct Consent {
    /// The answer [`E2E_CONFIRM_LINKS`] gives for the person, if set.
    preset: Option<bool>,
    /// A dialog is open: a page cannot stack dialogs hoping for a stray click.
    asking: AtomicBool,
}

impl Consent {
    pub fn from_env() -> Self {
        Consent::new(std::env::var(E2E_CONFIRM_LINKS).ok().as_deref())
    }

    fn new(preset: Option<&str>) -> Self {
        let preset = match preset {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        };
        if let Some(answer) = preset {
            tracing::warn!(
                answer,
                "{E2E_CONFIRM_LINKS} answers every link dialog (for the window tests)"
            );
        }
        Consent {
            preset,
            asking: AtomicBool::new(false),
        }
    }

    /// Whether the person agrees to open `link`: a native dialog over
    /// `window` asks [`question`]. While one is open, another link is
    /// refused without asking.
    pub async fn ask<R: Runtime>(&self, window: &WebviewWindow<R>, link: &Url) -> bool {
        let Some(_asking) = Asking::start(&self.asking) else {
            tracing::warn!("refused a link while the dialog for another is open");
            return false;
        };
        let (question, detail) = question(link);
        let yes = match self.preset {
            Some(answer) => {
                tracing::info!(%question, answer, "{E2E_CONFIRM_LINKS} answered the link dialog");
                answer
            }
            None => {
                let answer = rfd::AsyncMessageDialog::new()
                    .set_level(rfd::MessageLevel::Warning)
                    .set_title(question)
                    .set_description(detail)
                    .set_buttons(rfd::MessageButtons::OkCancelCustom(
                        "Open".into(),
                        "Cancel".into(),
                    ))
                    .set_parent(window)
                    .show()
                    .await;
                // GTK answers its OK button as `Ok`; other systems name the button.
                matches!(&answer, rfd::MessageDialogResult::Ok)
                    || matches!(&answer, rfd::MessageDialogResult::Custom(b) if b == "Open")
            }
        };
        tracing::info!(
            scheme = link.scheme(),
            opened = yes,
            "asked before opening a link"
        );
        yes
    }
}

/// The open dialog, for as long as it is held.
struct Asking<'a>(&'a AtomicBool);

impl<'a> Asking<'a> {
    fn start(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Asking(flag))
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_navigation_away_from_the_app_is_refused_and_opens_nothing() {
        for away in [
            "https://evil.example/",
            "mailto:a@evil.example",
            "file:///etc/passwd",
        ] {
            assert!(!allow_navigation(&Url::parse(away).unwrap(), None));
        }
    }

    #[test]
    fn the_web_view_stays_on_the_app() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(allow_navigation(&url("tauri://localhost/index.html"), None));
        assert!(allow_navigation(&url("http://tauri.localhost/"), None));
        let dev = url("http://localhost:5173/");
        assert!(allow_navigation(
            &url("http://localhost:5173/x"),
            Some(&dev)
        ));
        assert!(!allow_navigation(
            &url("http://localhost:5174/x"),
            Some(&dev)
        ));
    }

    #[test]
    fn the_dialog_names_the_origin_a_link_really_goes_to() {
        let asked = |s: &str| question(&external(s).unwrap());
        assert_eq!(
            asked("https://example.com/a?b#c"),
            (
                "Open https://example.com in your browser?".to_owned(),
                "The full link: https://example.com/a?b#c".to_owned()
            )
        );
        assert_eq!(
            asked("https://bank.example@evil.example:8443/login").0,
            "Open https://evil.example:8443 in your browser?"
        );
        assert_eq!(
            asked("https://pаypal.example/").0,
            "Open https://xn--pypal-4ve.example in your browser?",
            "a Cyrillic а shows as punycode"
        );
        assert_eq!(
            asked("mailto:a@example.com?subject=hi").0,
            "Write to a@example.com in your email app?"
        );
        let long = format!("https://example.com/{}", "x".repeat(1000));
        assert!(asked(&long).1.chars().count() < 530);
    }

    #[test]
    fn the_test_variable_answers_only_yes_or_no() {
        assert_eq!(Consent::new(Some("yes")).preset, Some(true));
        assert_eq!(Consent::new(Some("no")).preset, Some(false));
        for other in [None, Some(""), Some("1"), Some("YES")] {
            assert_eq!(Consent::new(other).preset, None, "{other:?}");
        }
    }

    #[test]
    fn one_dialog_at_a_time() {
        let flag = AtomicBool::new(false);
        let first = Asking::start(&flag).unwrap();
        assert!(Asking::start(&flag).is_none());
        drop(first);
        assert!(Asking::start(&flag).is_some());
    }
}
