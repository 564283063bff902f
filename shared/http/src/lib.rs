//! The HTTP machinery of rwsgi: HTTP/1.1 on the wire (the one strict
//! request-head parser, the chunked body decoder, request bodies and the
//! small pieces every response needs), static files, trusted proxies (the
//! PROXY preamble and the forwarded headers) and the access-log format.
//!
//! The workers serve HTTP with it. The master uses only the head parser
//! (for its admin port), and `rwsgi-conf` checks `--trust-proxy-header`
//! and `--access-log-format` with the rules the workers apply. What both
//! processes agree on (configuration, channel, scoreboard) is
//! `rwsgi-shared`, which this crate builds on.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod forwarded;
pub mod proxy_pass;
pub mod proxy_protocol;
pub mod statics;
pub mod tls;

mod body;
mod chunked;
pub mod coding;
mod error;
mod head;
mod intake;
mod response;

pub use body::{BodyError, BodyReader, BodySource, BLOCK as BODY_BLOCK};
pub use chunked::ChunkedDecoder;
pub use error::HttpError;
/// For forwarded values (`forwarded`): the grammar the parser checks Host with.
pub(crate) use head::{is_pchar, is_valid_host};
pub use head::{parse_request_head, BodyKind, Parsed, RequestHead, Version};
pub use intake::{framing_allowance, plan as body_plan, BodyPlan, Fed, Intake};
pub use response::{closing_response, error_response, reason_phrase, DateCache, SERVER_HEADER};
