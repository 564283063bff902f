//! Who is believed: the peers `--trust-proxy` names, the PROXY preamble
//! they may send, and whether a request's headers come from one of them.

use super::cidr::{canonical, Cidr};
use super::headers::{purposes, KNOWN};
use rwsgi_shared::origin::{Claim, Origin};
use std::net::{IpAddr, SocketAddr};

/// The proxy rules of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Trusted header names, lowercase.
    pub(super) headers: Vec<String>,
    /// Trusted peers; empty: every peer.
    proxies: Vec<Cidr>,
}

/// A PROXY preamble from a peer `--trust-proxy` does not trust: the
/// connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer is not a --trust-proxy address, so its PROXY preamble is not believed")]
pub struct UntrustedPeer {
    pub peer: SocketAddr,
}

impl Rules {
    /// Rules from the option values; errors name the bad value.
    pub fn new(headers: &[String], proxies: &[String]) -> Result<Rules, String> {
        let mut names = Vec::new();
        for h in headers {
            if purposes(h).is_empty() {
                let known: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "{h:?} is not a proxy header rwsgi knows ({})",
                    known.join(", ")
                ));
            }
            names.push(h.to_ascii_lowercase());
        }
        let proxies = proxies
            .iter()
            .map(|p| Cidr::parse(p))
            .collect::<Result<_, _>>()?;
        Ok(Rules {
            headers: names,
            proxies,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    pub(super) fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.is_empty() || self.proxies.iter().any(|c| c.contains(ip))
    }

    /// Whether this connection may carry a PROXY preamble, or keep the
    /// client one claimed (a connection handed on between workers is asked
    /// again, under the configuration of the worker that gets it). One
    /// whose preamble is neither expected nor read has nothing to admit.
    pub fn admits_preamble(&self, origin: &Origin) -> Result<(), UntrustedPeer> {
        let peer = origin.peer();
        match origin.claim() {
            Claim::NoClient => Ok(()),
            Claim::Unread | Claim::Client(_) if self.trusted(peer.ip()) => Ok(()),
            Claim::Unread | Claim::Client(_) => Err(UntrustedPeer { peer }),
        }
    }

    /// Records what a preamble said, once the peer is admitted.
    pub fn believe_preamble(
        &self,
        origin: &mut Origin,
        named: Option<SocketAddr>,
    ) -> Result<(), UntrustedPeer> {
        self.admits_preamble(origin)?;
        origin.set_claim(named.map_or(Claim::NoClient, Claim::Client));
        Ok(())
    }

    /// The request's headers were written by a trusted proxy: the peer is
    /// one, and so is the client a preamble named, if any. (A request is
    /// not read before its connection's preamble; should one be, nothing
    /// is believed.)
    pub(super) fn believes_headers(&self, origin: &Origin) -> bool {
        self.trusted(origin.peer().ip())
            && match origin.claim() {
                Claim::Client(c) => self.trusted(c.ip()),
                Claim::NoClient => true,
                Claim::Unread => false,
            }
    }

    /// The main port's `/server-status` is for clients on this machine:
    /// the peer, the client a preamble named and the client the trusted
    /// headers name must all be loopback addresses. Behind a proxy on the
    /// same host every peer is loopback, and then the forwarded client
    /// decides; an invalid forwarded value decides nothing and is refused.
    pub fn allows_status_page(&self, origin: &Origin, headers: &[(String, Vec<u8>)]) -> bool {
        let local = |ip: IpAddr| canonical(ip).is_loopback();
        local(origin.peer().ip())
            && local(origin.client().ip())
            && self
                .apply(origin, headers)
                .is_ok_and(|a| a.remote_addr.is_none_or(local))
    }
}
