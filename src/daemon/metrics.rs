//! Counters in the Prometheus text format, for node_exporter's textfile
//! collector. The state thread renders; a writer thread does the file I/O so
//! a slow disk never delays an answer.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use crossbeam_channel::{bounded, Sender};
use log::warn;

/// Accumulates metric families as text.
#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// One family with its samples: `(labels, value)`; labels like `kind="dhcp"`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
        let _ = writeln!(self.out, "# HELP nfdhcpd_{name} {help}");
        let _ = writeln!(self.out, "# TYPE nfdhcpd_{name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.out, "nfdhcpd_{name} {v}");
            } else {
                let _ = writeln!(self.out, "nfdhcpd_{name}{{{labels}}} {v}");
            }
        }
    }

    pub fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.family(name, "counter", help, &[(String::new(), v)]);
    }

    pub fn gauge(&mut self, name: &str, help: &str, v: u64) {
        self.family(name, "gauge", help, &[(String::new(), v)]);
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

/// Label pairs from a counter map: `key="<k>"`.
pub fn labelled<'a>(
    key: &str,
    m: impl IntoIterator<Item = (&'a &'static str, &'a u64)>,
) -> Vec<(String, u64)> {
    m.into_iter()
        .map(|(k, v)| (format!("{key}=\"{k}\""), *v))
        .collect()
}

/// Starts the writer; rendered text sent to the returned channel is written
/// to `path` by atomic rename. A text that finds the writer busy is skipped.
pub fn spawn_writer(path: PathBuf) -> std::io::Result<Sender<String>> {
    let (tx, rx) = bounded::<String>(1);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut failing = false;
            for text in rx {
                let tmp = path.with_extension("prom.tmp");
                let r = fs::File::create(&tmp)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .and_then(|()| fs::rename(&tmp, &path));
                match r {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        // Once per outage, not every few seconds.
                        warn!("cannot write metrics to {}: {e}", path.display());
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families() {
        let mut t = Text::default();
        t.counter("requests_total", "Requests.", 3);
        let m: std::collections::BTreeMap<&'static str, u64> = [("DHCPACK", 2)].into();
        t.family(
            "answers_total",
            "counter",
            "Answers.",
            &labelled("type", &m),
        );
        let s = t.into_string();
        assert!(s.contains("# TYPE nfdhcpd_requests_total counter\nnfdhcpd_requests_total 3\n"));
        assert!(s.contains("nfdhcpd_answers_total{type=\"DHCPACK\"} 2\n"));
    }
}
