//! List answers (`count`, `next`, `previous`, `results`) and reading a list
//! page by page along its `next` links.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::client::{Client, Reply};
use super::decode::items;
use crate::backend::BackendError;

/// One page of a list. Elements that do not fit `T` are left out.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub(crate) struct Page<T> {
    #[serde(default)]
    pub next: Option<String>,
    #[serde(deserialize_with = "items")]
    pub results: Vec<T>,
}

impl Reply {
    /// The body as a list page.
    pub(crate) fn page<T: DeserializeOwned>(&self) -> Result<Page<T>, BackendError> {
        self.json_if()?
            .ok_or_else(|| BackendError::BadAnswer("list answer without results".into()))
    }
}

/// The request path of a `next` link. Only the part from `/api/` on is
/// taken, and it goes to the configured URL: a server behind a proxy may
/// name itself with another scheme or host, and the token must not follow.
fn next_path(next: &str) -> Option<&str> {
    let path = match next
        .strip_prefix("https://")
        .or_else(|| next.strip_prefix("http://"))
    {
        Some(rest) => &rest[rest.find('/')?..],
        None if next.starts_with('/') => next,
        None => return None,
    };
    let end = path.find('?').unwrap_or(path.len());
    path[..end].find("/api/").map(|at| &path[at..])
}

impl Client {
    /// GET of one page of a list, whose answer must be 200.
    pub(crate) fn get_page<T: DeserializeOwned>(
        &mut self,
        path: &str,
    ) -> Result<Page<T>, BackendError> {
        let r = self.send(super::Request::get(path))?;
        if r.status != 200 {
            return Err(self.error(&r));
        }
        r.page()
    }

    /// GET of the list at `first` and of its further pages, each handed to
    /// `page` as it comes, until the last one or until `max` elements were
    /// read. Returns whether the list was longer than that.
    pub(crate) fn get_pages<T: DeserializeOwned>(
        &mut self,
        first: &str,
        max: usize,
        mut page: impl FnMut(Vec<T>) -> Result<(), BackendError>,
    ) -> Result<bool, BackendError> {
        let mut path = first.to_owned();
        let mut read = 0usize;
        loop {
            let p: Page<T> = self.get_page(&path)?;
            let n = p.results.len();
            page(p.results)?;
            read += n;
            let Some(next) = p.next.as_deref().and_then(next_path) else {
                return Ok(false);
            };
            if n == 0 {
                return Ok(false);
            }
            if read >= max {
                return Ok(true);
            }
            path = next.to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_go_to_the_configured_url() {
        for (next, path) in [
            (
                "https://netbox.example.com/api/ipam/ip-addresses/?limit=1000&offset=1000",
                Some("/api/ipam/ip-addresses/?limit=1000&offset=1000"),
            ),
            (
                "http://10.0.0.1:8000/netbox/api/dcim/interfaces/?offset=2",
                Some("/api/dcim/interfaces/?offset=2"),
            ),
            (
                "/api/ipam/prefixes/?offset=50",
                Some("/api/ipam/prefixes/?offset=50"),
            ),
            ("https://evil.example.com/elsewhere/?a=/api/", None),
            ("ftp://x/api/y", None),
            ("", None),
        ] {
            assert_eq!(next_path(next), path, "{next}");
        }
    }

    #[test]
    fn pages_and_what_is_not_one() {
        let reply = |body: &str| Reply {
            status: 200,
            body: body.as_bytes().to_vec(),
            etag: None,
            version: None,
        };
        let p: Page<u32> = reply(r#"{"count": 3, "next": "x", "results": [1, "a", 2]}"#)
            .page()
            .unwrap();
        assert_eq!((p.results, p.next.as_deref()), (vec![1, 2], Some("x")));
        for bad in [r#"{"detail": "x"}"#, "[]", "null", r#"{"results": 5}"#] {
            assert_eq!(
                reply(bad).page::<u32>().unwrap_err(),
                BackendError::BadAnswer("list answer without results".into()),
                "{bad}"
            );
        }
        assert!(matches!(
            reply("<html>").page::<u32>(),
            Err(BackendError::BadAnswer(m)) if m.starts_with("not JSON")
        ));
    }
}
