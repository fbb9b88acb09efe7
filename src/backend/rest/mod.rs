//! The REST plumbing both backends share: a worker's client (kept-alive
//! connections, the token header, the retry on a stale connection),
//! answers decoded into typed structs, failures classified as
//! [`BackendError`](super::BackendError)s, paging along `next` links,
//! ETags, the API token, and the formats of the values the APIs carry
//! (date-times, MACs, query values).

mod cache;
mod client;
mod decode;
mod endpoint;
mod error;
pub(crate) mod etag;
mod paging;
mod query;
pub(crate) mod time;
mod token;

pub(crate) use cache::TtlCache;
pub(crate) use client::{Client, Reply, Request};
pub(crate) use decode::{
    items, json as decode_json, json_text, lenient, lenient_items, parse_mac, Choice, Id,
};
pub(crate) use endpoint::{endpoint, Endpoint};
pub(crate) use error::{http as http_error, snippet};
pub(crate) use paging::Page;
pub(crate) use query::enc;
pub use token::load_token;
pub(crate) use token::Scheme;
