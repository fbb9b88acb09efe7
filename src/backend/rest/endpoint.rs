//! Where and how a backend connects: its URL, TLS trust and timeout, and a
//! worker's agent.

use std::path::Path;
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig};

/// One worker's agent: keep-alive connections, one deadline per call, no
/// redirects (a token must not follow one), statuses handled by the caller.
pub(crate) fn agent(timeout: Duration, tls: Option<&TlsConfig>) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .user_agent(concat!("nfdhcpd/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections(4)
        .max_idle_connections_per_host(4);
    if let Some(tls) = tls {
        cfg = cfg.tls_config(tls.clone());
    }
    ureq::Agent::new_with_config(cfg.build())
}

/// TLS settings trusting the certificates of `ca_file` (PEM).
pub(crate) fn load_ca(path: &Path) -> Result<TlsConfig, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("ca_file {}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no certificate", path.display()));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

/// Where and how a backend connects, from its config section.
pub(crate) struct Endpoint {
    /// The URL without a trailing slash.
    pub base: String,
    pub tls: Option<TlsConfig>,
    pub timeout: Duration,
}

/// Checks `[<name>] url`, the token (never echoed) and `ca_file`.
pub(crate) fn endpoint(
    name: &str,
    conf: &crate::config::BackendConf,
    token: &str,
) -> Result<Endpoint, String> {
    let url = conf
        .url
        .as_deref()
        .map(|u| u.trim().trim_end_matches('/'))
        .filter(|u| !u.is_empty())
        .ok_or(format!("{name} url is not set"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{name} url {url} is not http:// or https://"));
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("API token is empty or not printable ASCII".into());
    }
    let tls = match &conf.ca_file {
        Some(path) => Some(load_ca(path)?),
        None => None,
    };
    Ok(Endpoint {
        base: url.to_owned(),
        tls,
        timeout: Duration::from_secs(conf.timeout_secs.max(1)),
    })
}
