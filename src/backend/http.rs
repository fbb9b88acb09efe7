//! What both REST backends need from HTTP: a worker's agent and the CA file.

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
