//! The listening socket.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot resolve --host {0:?}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot listen on {0}: the address is already in use (is another server running on port {1}?)")]
    InUse(SocketAddr, u16),
    #[error("cannot listen on {0}: permission denied (ports below 1024 need privileges)")]
    Denied(SocketAddr),
    #[error("cannot listen on {0}: {1}")]
    Other(SocketAddr, std::io::Error),
}

/// Binds a non-blocking, close-on-exec TCP listener.
pub fn bind(host: &str, port: u16, backlog: i32) -> Result<mio::net::TcpListener, BindError> {
    let addr = if host.is_empty() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    } else {
        (host, port)
            .to_socket_addrs()
            .map_err(|e| BindError::Resolve(host.to_owned(), e))?
            .next()
            .ok_or_else(|| {
                BindError::Resolve(host.to_owned(), std::io::ErrorKind::NotFound.into())
            })?
    };
    let map = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AddrInUse => BindError::InUse(addr, port),
        std::io::ErrorKind::PermissionDenied => BindError::Denied(addr),
        _ => BindError::Other(addr, e),
    };
    // socket2 creates sockets with SOCK_CLOEXEC.
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(map)?;
    socket.set_reuse_address(true).map_err(map)?;
    socket.set_nonblocking(true).map_err(map)?;
    socket.bind(&SockAddr::from(addr)).map_err(map)?;
    socket.listen(backlog).map_err(map)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}
