//! Where a connection comes from: two addresses that must never be
//! confused. The peer is the TCP peer the kernel reports, and the only
//! address trust is decided on (`--trust-proxy`). The claim is the client a
//! PROXY protocol preamble named: a statement by the peer, believed only
//! because the peer is trusted, never a reason to trust anything else.
//!
//! Code that needs "the client" asks [`Origin::client`]; code that decides
//! trust asks [`Origin::peer`]. There is no field to overwrite, so a
//! preamble can no longer stand in for the peer it came from.

use std::fmt;
use std::net::SocketAddr;

/// What the connection's PROXY preamble said, if one was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// No preamble has been read yet (one is read only with
    /// `--proxy-protocol`; the worker decides whether one is expected).
    Unread,
    /// No preamble is expected, or it named no client (`LOCAL`,
    /// `UNKNOWN`, a unix socket): the peer is the client.
    NoClient,
    /// A preamble from a trusted peer named this client.
    Client(SocketAddr),
}

/// A connection's peer and what its preamble claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    peer: SocketAddr,
    claim: Claim,
}

impl Origin {
    pub fn new(peer: SocketAddr, claim: Claim) -> Origin {
        Origin { peer, claim }
    }

    /// A connection whose preamble, if any is expected, is still to come.
    pub fn accepted(peer: SocketAddr) -> Origin {
        Origin::new(peer, Claim::Unread)
    }

    /// The TCP peer: the only address `--trust-proxy` is asked about first.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn claim(&self) -> Claim {
        self.claim
    }

    /// The preamble was read, or none is expected.
    pub fn preamble_done(&self) -> bool {
        self.claim != Claim::Unread
    }

    /// Without `--proxy-protocol`: no preamble is coming.
    pub fn expect_no_preamble(&mut self) {
        if self.claim == Claim::Unread {
            self.claim = Claim::NoClient;
        }
    }

    /// Records what the preamble said: only `rwsgi_http::forwarded::Rules`,
    /// which asks `--trust-proxy` about the peer first, calls this (public
    /// only because it lives in the HTTP crate).
    pub fn set_claim(&mut self, claim: Claim) {
        self.claim = claim;
    }

    /// The client before any forwarded header: the one the preamble
    /// named, else the peer.
    pub fn client(&self) -> SocketAddr {
        match self.claim {
            Claim::Client(c) => c,
            Claim::Unread | Claim::NoClient => self.peer,
        }
    }
}

/// The client, and the proxy it came through when a preamble named it,
/// so a log line shows both.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.claim {
            Claim::Client(c) => write!(f, "{c} via {}", self.peer),
            Claim::Unread | Claim::NoClient => write!(f, "{}", self.peer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_is_the_client_and_never_the_peer() {
        let peer: SocketAddr = "10.0.0.5:40000".parse().expect("addr");
        let claimed: SocketAddr = "203.0.113.9:5555".parse().expect("addr");
        let mut o = Origin::accepted(peer);
        assert!(!o.preamble_done());
        assert_eq!(o.client(), peer);
        o.set_claim(Claim::Client(claimed));
        assert!(o.preamble_done());
        assert_eq!(o.client(), claimed);
        assert_eq!(o.peer(), peer);
        assert_eq!(o.to_string(), "203.0.113.9:5555 via 10.0.0.5:40000");
        o.set_claim(Claim::NoClient);
        assert_eq!(o.client(), peer);
        assert_eq!(o.to_string(), "10.0.0.5:40000");
    }
}
