//! Trusted proxies and what they forward: the PROXY preamble
//! (`--proxy-protocol`, read by `proxy_protocol`) and the forwarded headers
//! (`--trust-proxy-header`), both believed only from a peer `--trust-proxy`
//! trusts.
//!
//! Headers come in groups by purpose, with mod_wsgi's semantics (the
//! client's address, the scheme, the host, the port, the URL prefix). For a
//! group in which a header is trusted, a request that comes through trusted
//! hops has that header applied (REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST,
//! SERVER_PORT, SCRIPT_NAME) and the group's other headers removed; any
//! other request has the whole group removed, so an application reading
//! the header itself cannot be fooled by a spoofed one. Groups nobody
//! trusts pass through untouched. Without `--trust-proxy` every peer is
//! trusted, as in mod_wsgi (the server warns at start).
//!
//! Who is believed, as nginx's real_ip module with `real_ip_recursive on`
//! decides it: the chain of hops is read from the nearest end, and each
//! address is believed only if the hop before it (nearer to us) is a
//! trusted proxy.
//! - The nearest hop is the TCP peer ([`Origin::peer`]), never anything a
//!   byte on the connection says. A PROXY preamble is a statement by that
//!   peer: it is honoured only from a trusted peer, and the connection of
//!   any other is refused ([`Rules::admits_preamble`]).
//! - The client a preamble names is the next hop. It is the one who wrote
//!   the request's headers (HAProxy in TCP mode passes them through), so
//!   forwarded headers are believed only when it is a trusted proxy too
//!   (a CDN in front of HAProxy, say); a client's own `X-Forwarded-For`
//!   behind HAProxy is removed like any spoofed header.
//! - `X-Forwarded-For` and `Forwarded`'s `for=` continue the chain: the
//!   client is the rightmost address that is not a trusted proxy (the
//!   leftmost when all are). `Forwarded` is the one header whose elements
//!   line up with its hops, so its `proto=` and `host=` are taken from the
//!   element of that client (written by the first trusted proxy), or the
//!   nearest trusted element after it that has them.
//! - Any other header that arrives as a list (several values, or several
//!   fields) counts only its rightmost value: the one the nearest hop, a
//!   trusted proxy, added. A proxy that appends (nginx's
//!   `$proxy_add_x_forwarded_for` style) cannot let the client choose.
//!
//! Every value used obeys the grammar of the field it stands for: a host
//! is a valid Host (RFC 9110 7.2, the parser's check), a port is 1 to
//! 65535, a scheme `http` or `https`, an address an IP address, a prefix
//! an absolute path without dot segments. A value that does not is the
//! proxy's error, and the request is refused (400) with the header named
//! ([`Invalid`]); values to the left of the one used are not examined.
//!
//! Pure functions over the origin and the head's fields, unit-tested:
//! who is believed (`trust`), what the believed headers say (`apply`),
//! the headers known (`headers`), address ranges (`cidr`), the grammars of
//! the values (`grammar`), a chain's hops (`hops`) and RFC 7239's field
//! (`rfc7239`).

mod apply;
mod cidr;
mod grammar;
mod headers;
mod hops;
mod rfc7239;
mod trust;

pub use apply::{Adjusted, Invalid};
pub use cidr::Cidr;
pub use trust::{Rules, UntrustedPeer};

#[cfg(test)]
mod tests;
