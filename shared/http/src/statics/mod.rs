//! Static files: `--url-alias`, `--document-root`, `--application-type static`.
//!
//! The one static-file responder of rwsgi, in two steps the worker runs
//! without Python:
//!
//! 1. [`StaticFiles::resolve`] maps a request path to an open file (or a
//!    redirect, a refusal, or "not static: the application's"). Paths are
//!    decoded and checked segment by segment ([`path`]), files are opened
//!    beneath their root with `openat2(RESOLVE_BENEATH)` so a symlink cannot
//!    leave it, dotfiles are refused, and a precompressed `.zst`/`.br`/`.gz`
//!    sibling is picked when the client accepts it (by q-value), else with
//!    `--compress-responses` a textual file is compressed once and kept
//!    ([`compressed`]).
//! 2. [`respond`] turns the request head and the file's metadata into a
//!    [`Plan`]: status, header bytes and body segments (ranges of the file,
//!    multipart separators), with conditional requests and ranges applied.

mod compressed;
pub mod error_documents;
pub mod listing;
pub mod path;
pub mod range;
mod resolve;
mod response;

pub use compressed::respond as respond_compressed;
pub use resolve::{Resolution, StaticFile, StaticFiles};
pub use response::{
    content_type, error, etag, not_allowed, redirect, respond, FileInfo, Options, Plan, Segment,
    ALLOW,
};

/// A GET-like request head for the unit tests of this module.
#[cfg(test)]
pub(crate) fn test_head(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> crate::RequestHead {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    crate::RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version: crate::Version::Http11,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: crate::BodyKind::Empty,
        keep_alive: true,
        expect_continue: false,
    }
}
