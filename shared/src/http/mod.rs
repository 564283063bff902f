//! HTTP/1.1 on the wire: the one strict request-head parser, the chunked
//! body decoder, and the small pieces every response needs.

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
/// For forwarded values (`proxy`): the grammar the parser checks Host with.
pub(crate) use head::{is_pchar, is_valid_host};
pub use head::{parse_request_head, BodyKind, Parsed, RequestHead, Version};
pub use intake::{framing_allowance, plan as body_plan, BodyPlan, Fed, Intake};
pub use response::{error_response, reason_phrase, DateCache, SERVER_HEADER};
