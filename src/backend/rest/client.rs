//! One worker's client of a REST API: its own agent (kept-alive
//! connections), the token in the `Authorization` header of every request,
//! and a count of the requests made, retries included.

use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::endpoint::{agent, Endpoint};
use super::{decode, error, etag};
use crate::backend::BackendError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// One request to make.
pub(crate) struct Request<'a> {
    method: Method,
    path: &'a str,
    body: Option<Vec<u8>>,
    if_match: Option<&'a str>,
    /// Whether it may go again when a kept-alive connection turns out closed.
    repeatable: bool,
    /// Many clients' work in one call: a longer timeout.
    bulk: bool,
}

/// How many times the timeout a bulk call may take.
pub(crate) const BULK_TIMEOUTS: u32 = 3;

impl<'a> Request<'a> {
    fn new(method: Method, path: &'a str, body: Option<Vec<u8>>) -> Self {
        Request {
            method,
            path,
            body,
            if_match: None,
            repeatable: true,
            bulk: false,
        }
    }

    /// `path` starts with `/api/`; the query is already encoded.
    pub(crate) fn get(path: &'a str) -> Self {
        Self::new(Method::Get, path, None)
    }

    pub(crate) fn post(path: &'a str, body: &impl Serialize) -> Self {
        Self::new(Method::Post, path, Some(to_json(body)))
    }

    pub(crate) fn patch(path: &'a str, body: &impl Serialize) -> Self {
        Self::new(Method::Patch, path, Some(to_json(body)))
    }

    /// Only if the object still has this ETag (`If-Match`).
    pub(crate) fn if_match(mut self, tag: Option<&'a str>) -> Self {
        self.if_match = tag;
        self
    }

    /// Never sent twice, not even after a stale connection: repeating it
    /// could do something twice (a create).
    pub(crate) fn once(mut self) -> Self {
        self.repeatable = false;
        self
    }

    /// The work of many clients in one call: it may take [`BULK_TIMEOUTS`]
    /// times the timeout (a busy server does a list item by item).
    pub(crate) fn bulk(mut self) -> Self {
        self.bulk = true;
        self
    }
}

fn to_json(body: &impl Serialize) -> Vec<u8> {
    // The bodies are maps of strings and nulls: they always serialize.
    serde_json::to_vec(body).unwrap_or_default()
}

/// An answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `API-Version` header.
    pub version: Option<String>,
}

impl Reply {
    /// The body decoded into `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, BackendError> {
        decode::json(self.status, &self.body)
    }

    /// The body decoded into `T`; None when it is JSON of another shape.
    pub(crate) fn json_if<T: DeserializeOwned>(&self) -> Result<Option<T>, BackendError> {
        decode::json_if(self.status, &self.body)
    }
}

/// What a backend makes of an error answer before it becomes a plain
/// [`BackendError::Http`]; None leaves it at that.
pub(crate) type Explain = fn(&Reply) -> Option<BackendError>;

/// Sees every answer (the Netbox backend learns the API version from them).
pub(crate) type Observer = Box<dyn Fn(&Reply) + Send>;

pub(crate) struct Client {
    /// The backend's name, for logs.
    api: &'static str,
    base: String,
    auth: String,
    agent: ureq::Agent,
    timeout: std::time::Duration,
    max_body: u64,
    explain: Option<Explain>,
    observer: Option<Observer>,
    calls: u32,
}

impl Client {
    /// `auth` is the whole `Authorization` value; answers larger than
    /// `max_body` are refused.
    pub(crate) fn new(api: &'static str, end: &Endpoint, auth: String, max_body: u64) -> Client {
        Client {
            api,
            base: end.base.clone(),
            auth,
            agent: agent(end.timeout, end.tls.as_ref()),
            timeout: end.timeout,
            max_body,
            explain: None,
            observer: None,
            calls: 0,
        }
    }

    pub(crate) fn explain_errors(mut self, f: Explain) -> Client {
        self.explain = Some(f);
        self
    }

    pub(crate) fn observe(mut self, f: Observer) -> Client {
        self.observer = Some(f);
        self
    }

    /// Requests made since the last [`Client::reset_calls`].
    pub(crate) fn calls(&self) -> u32 {
        self.calls
    }

    pub(crate) fn reset_calls(&mut self) {
        self.calls = 0;
    }

    /// Counts calls another client made for this one's work.
    pub(crate) fn add_calls(&mut self, n: u32) {
        self.calls += n;
    }

    /// Sends `req` and returns the answer whatever its status. Every attempt
    /// counts as a call.
    pub(crate) fn send_any(&mut self, req: Request<'_>) -> Result<Reply, BackendError> {
        let url = format!("{}{}", self.base, req.path);
        let mut retried = false;
        loop {
            self.calls += 1;
            let started = Instant::now();
            match self.send_once(&req, &url) {
                Ok(reply) => {
                    log::debug!(
                        "{} {} {} -> {} ({} bytes) in {} ms",
                        self.api,
                        req.method.name(),
                        req.path,
                        reply.status,
                        reply.body.len(),
                        started.elapsed().as_millis()
                    );
                    if let Some(f) = &self.observer {
                        f(&reply);
                    }
                    return Ok(reply);
                }
                // A kept-alive connection the server closed meanwhile: once
                // more on a new one, when repeating cannot do harm.
                Err(e) if req.repeatable && !retried && error::stale_connection(&e) => {
                    retried = true
                }
                Err(e) => return Err(error::classify(e)),
            }
        }
    }

    fn send_once(&self, req: &Request<'_>, url: &str) -> Result<Reply, ureq::Error> {
        let resp = match req.method {
            Method::Get => self
                .agent
                .get(url)
                .header("Authorization", &self.auth)
                .header("Accept", "application/json")
                .call()?,
            Method::Post | Method::Patch => {
                let mut r = match req.method {
                    Method::Post => self.agent.post(url),
                    _ => self.agent.patch(url),
                }
                .header("Authorization", &self.auth)
                .header("Accept", "application/json")
                .header("Content-Type", "application/json");
                if let Some(tag) = req.if_match {
                    r = r.header("If-Match", tag);
                }
                if req.bulk {
                    r = r
                        .config()
                        .timeout_global(Some(self.timeout * BULK_TIMEOUTS))
                        .build();
                }
                r.send(req.body.as_deref().unwrap_or(b"{}"))?
            }
        };
        let status = resp.status().as_u16();
        let etag = etag::of_headers(resp.headers());
        let version = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .with_config()
            .limit(self.max_body)
            .read_to_vec()?;
        Ok(Reply {
            status,
            body,
            etag,
            version,
        })
    }

    /// Like [`Client::send_any`], but a refused token (401, 403) is an
    /// error.
    pub(crate) fn send(&mut self, req: Request<'_>) -> Result<Reply, BackendError> {
        let r = self.send_any(req)?;
        if r.status == 401 || r.status == 403 {
            return Err(BackendError::Auth(r.status));
        }
        Ok(r)
    }

    /// The error an unexpected answer stands for.
    pub(crate) fn error(&self, r: &Reply) -> BackendError {
        self.explain
            .and_then(|f| f(r))
            .unwrap_or_else(|| error::http(r.status, &r.body))
    }

    /// GET of `path` whose answer must be 200, decoded into `T`.
    pub(crate) fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, BackendError> {
        let r = self.send(Request::get(path))?;
        if r.status != 200 {
            return Err(self.error(&r));
        }
        r.json()
    }
}
