//! GoTrue's `redirect_to` rule (`utilities.IsRedirectURLValid`, v2.189):
//! allowed when the host is the site URL's (hostname only, up to v2.189), or a
//! loopback IP literal (≥ v2.171, any port — RFC 8252 §7.3; before, only by
//! the allow list: `emulate_gotrue_before_2_171`), or the URL
//! matches an allow-list glob; otherwise the site URL is used instead.
//! Decimal IPs, odd hostnames, control characters and backslashes are refused
//! (they parse differently in browsers than here).

use std::net::IpAddr;

use url::Url;

/// What a project allows as `redirect_to`.
pub(crate) struct Rule<'a> {
    site_url: &'a Url,
    allow_list: &'a [String],
    /// A loopback IP literal is allowed on any port (GoTrue v2.171 and later).
    loopback_any_port: bool,
}

impl<'a> Rule<'a> {
    /// The sandbox's project's rule.
    pub(crate) fn of(config: &'a crate::Config) -> Self {
        Rule {
            site_url: &config.site_url,
            allow_list: &config.additional_redirect_urls,
            loopback_any_port: !config.emulate_gotrue_before_2_171,
        }
    }

    /// The redirect target to use for `requested` (`None` or refused → the site URL).
    pub(crate) fn resolve(&self, requested: Option<&str>) -> Url {
        requested
            .filter(|r| self.allows(r))
            .and_then(|r| Url::parse(r).ok())
            .unwrap_or_else(|| self.site_url.clone())
    }

    /// Whether `redirect` may receive codes and tokens.
    pub(crate) fn allows(&self, redirect: &str) -> bool {
        if redirect.is_empty()
            || redirect
                .chars()
                .any(|c| c <= ' ' || c == '\x7f' || c == '\\')
        {
            return false;
        }
        let Some(host) = raw_host(redirect) else {
            return false;
        };
        if Url::parse(redirect).is_err() {
            return false;
        }
        if self
            .site_url
            .host_str()
            .is_some_and(|site| site.trim_matches(['[', ']']).eq_ignore_ascii_case(&host))
        {
            return true;
        }
        let scheme = redirect
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        let is_http = scheme == "http" || scheme == "https";
        if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if let Some(ip) = ip
            && self.loopback_any_port
        {
            return ip.is_loopback();
        }
        if is_http && ip.is_none() && !regular_hostname(&host) {
            return false;
        }
        let without_fragment = redirect.split('#').next().unwrap_or(redirect);
        self.allow_list
            .iter()
            .any(|pattern| glob_match(pattern.trim(), without_fragment))
    }
}

/// The host of `url` as written (before any normalization a URL parser does):
/// after `scheme://`, before the path, without userinfo and port.
fn raw_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split_once(']')?.0
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    Some(host.to_owned())
}

fn regular_hostname(host: &str) -> bool {
    let bytes = host.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
}

/// gobwas/glob with `.` and `/` as separators: `*` stays within a segment,
/// `**` crosses them, `?` is one non-separator character.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| go(&p[2..], &t[i..])),
            Some(b'*') => {
                let mut i = 0;
                loop {
                    if go(&p[1..], &t[i..]) {
                        return true;
                    }
                    if i == t.len() || t[i] == b'.' || t[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(b'?') => !t.is_empty() && t[0] != b'.' && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    !pattern.is_empty() && go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Url {
        Url::parse("http://127.0.0.1:3000").unwrap()
    }

    /// Today's GoTrue.
    fn is_allowed(redirect: &str, site_url: &Url, allow_list: &[String]) -> bool {
        let loopback_any_port = true;
        Rule {
            site_url,
            allow_list,
            loopback_any_port,
        }
        .allows(redirect)
    }

    fn resolve(requested: Option<&str>, site_url: &Url, allow_list: &[String]) -> Url {
        let loopback_any_port = true;
        Rule {
            site_url,
            allow_list,
            loopback_any_port,
        }
        .resolve(requested)
    }

    #[test]
    fn before_v2_171_a_loopback_ip_needs_the_allow_list() {
        let site = Url::parse("https://app.example.com").unwrap();
        let old = |allow_list: &[String]| {
            Rule {
                site_url: &site,
                allow_list,
                loopback_any_port: false,
            }
            .allows("http://127.0.0.1:53682/callback")
        };
        assert!(!old(&[]));
        assert!(old(&["http://127.0.0.1:*/**".to_owned()]));
        assert!(!old(&["http://127.0.0.1:3000/**".to_owned()]));
    }

    #[test]
    fn loopback_ip_literals_are_allowed_on_any_port() {
        for url in [
            "http://127.0.0.1:53123/callback",
            "http://127.0.0.1/cb?x=1",
            "http://[::1]:4000/cb",
            "http://127.1.2.3:9/cb",
        ] {
            assert!(
                is_allowed(url, &Url::parse("https://example.com").unwrap(), &[]),
                "{url}"
            );
        }
    }

    #[test]
    fn the_site_host_is_allowed() {
        assert!(is_allowed("http://127.0.0.1:9999/x", &site(), &[]));
        let site = Url::parse("https://app.example.com").unwrap();
        assert!(is_allowed("https://app.example.com/welcome", &site, &[]));
        assert!(!is_allowed("https://evil.example.com/welcome", &site, &[]));
    }

    #[test]
    fn tricks_are_refused() {
        let site = Url::parse("https://app.example.com").unwrap();
        for url in [
            "http://2130706433/cb",
            "http://localhost:3000/cb",
            "http://127.0.0.1@evil.com/cb",
            "http://evil.com\\@127.0.0.1/cb",
            "\thttp://127.0.0.1/cb",
            "http://ev_il.com/cb",
            "javascript:alert(1)",
            "",
            "not a url",
        ] {
            assert!(!is_allowed(url, &site, &[]), "{url:?}");
        }
    }

    #[test]
    fn allow_list_globs() {
        let site = Url::parse("https://app.example.com").unwrap();
        let list = vec![
            "http://localhost:3000/**".to_owned(),
            "quire://*".to_owned(),
        ];
        assert!(is_allowed(
            "http://localhost:3000/auth/callback",
            &site,
            &list
        ));
        assert!(is_allowed("quire://callback", &site, &list));
        assert!(!is_allowed("http://localhost:3001/x", &site, &list));
        assert!(!is_allowed("quire://a/b", &site, &list));
    }

    #[test]
    fn refused_targets_fall_back_to_the_site() {
        let site = Url::parse("https://app.example.com/").unwrap();
        assert_eq!(resolve(Some("https://evil.com"), &site, &[]), site);
        assert_eq!(resolve(None, &site, &[]), site);
        assert_eq!(
            resolve(Some("http://127.0.0.1:5000/cb"), &site, &[]).as_str(),
            "http://127.0.0.1:5000/cb"
        );
    }
}
