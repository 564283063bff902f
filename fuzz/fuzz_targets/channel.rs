//! The master/worker channel's `Message::decode` on arbitrary datagrams: it
//! never panics, and whatever it accepts is the one wire form of a message
//! (re-encoding gives back the same bytes, and they decode to the same
//! message). The same input, read as a description of a message, checks the
//! other way round: every message survives encode then decode unchanged.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rwsgi_shared::channel::{Control, Event, Message, MAX_MESSAGE};
use rwsgi_shared::origin::{Claim, Origin};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

fn encode(message: &Message) -> Vec<u8> {
    let mut wire = Vec::new();
    message.encode(&mut wire);
    wire
}

fn peer(u: &mut Unstructured<'_>) -> Result<SocketAddr> {
    Ok(if u.arbitrary()? {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?),
            u.arbitrary()?,
        ))
    } else {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(u.arbitrary::<[u8; 16]>()?),
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
        ))
    })
}

fn origin(u: &mut Unstructured<'_>) -> Result<Origin> {
    let tcp_peer = peer(u)?;
    let claim = match u.choose_index(3)? {
        0 => Claim::Unread,
        1 => Claim::NoClient,
        _ => Claim::Client(peer(u)?),
    };
    Ok(Origin::new(tcp_peer, claim))
}

/// A message built field by field from the input; byte strings take what is left.
fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(match u.choose_index(6)? {
        0 => Message::Config(u.arbitrary::<&[u8]>()?.to_vec()),
        1 => Message::Handoff {
            origin: origin(u)?,
            accepted_at_us: u.arbitrary()?,
            buffered: u.arbitrary::<&[u8]>()?.to_vec(),
        },
        2 => Message::Control(Control::GracefulStop),
        3 => Message::Event(match u.choose_index(4)? {
            0 => Event::Ready,
            1 => Event::ReloadRequested,
            2 => Event::Forked {
                slot: u.arbitrary()?,
                pid: u.arbitrary()?,
            },
            _ => Event::Failed(u.arbitrary::<&str>()?.to_owned()),
        }),
        4 => Message::Fork {
            slot: u.arbitrary()?,
            generation: u.arbitrary()?,
            epoch: u.arbitrary()?,
        },
        _ => Message::HandBack {
            origin: origin(u)?,
            buffered: u.arbitrary::<&[u8]>()?.to_vec(),
        },
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = Message::decode(data) {
        let wire = encode(&decoded);
        assert_eq!(
            wire, data,
            "accepted a datagram that is not the wire form of {decoded:?}"
        );
        match Message::decode(&wire) {
            Ok(again) => assert_eq!(again, decoded, "re-encoded message decodes differently"),
            Err(e) => panic!("re-encoded {decoded:?} does not decode: {e}"),
        }
    }

    if let Ok(built) = message(&mut Unstructured::new(data)) {
        let wire = encode(&built);
        // A longer message is refused by `send` (a failure text is
        // shortened to fit instead), so it never reaches `decode`.
        if wire.len() <= MAX_MESSAGE {
            match Message::decode(&wire) {
                Ok(decoded) => assert_eq!(decoded, built, "encode then decode changed the message"),
                Err(e) => panic!("encoded {built:?} does not decode: {e}"),
            }
        }
    }
});
