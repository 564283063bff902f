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

/// SO_RCVBUF and SO_SNDBUF for the listening sockets (`--receive-buffer-size`,
/// `--send-buffer-size`); 0 leaves the system's default. Set before
/// `listen`, as Apache does: accepted connections inherit them, and the
/// receive buffer's size decides the TCP window offered in the handshake.
#[derive(Debug, Clone, Copy, Default)]
pub struct Buffers {
    pub receive: u32,
    pub send: u32,
}

/// Binds a non-blocking, close-on-exec TCP listener.
pub fn bind(
    host: &str,
    port: u16,
    backlog: i32,
    buffers: Buffers,
) -> Result<mio::net::TcpListener, BindError> {
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
    if buffers.receive > 0 {
        socket
            .set_recv_buffer_size(buffers.receive as usize)
            .map_err(map)?;
    }
    if buffers.send > 0 {
        socket
            .set_send_buffer_size(buffers.send as usize)
            .map_err(map)?;
    }
    // Accepted connections inherit it: no setsockopt per connection.
    socket.set_tcp_nodelay(true).map_err(map)?;
    defer_accept(&socket);
    socket.bind(&SockAddr::from(addr)).map_err(map)?;
    socket.listen(backlog).map_err(map)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// How long the kernel keeps a connection that has sent nothing before it
/// hands it over anyway: one retransmission of its SYN-ACK.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// TCP_DEFER_ACCEPT (nginx's `listen ... deferred`): the kernel completes
/// a connection for `accept` only once its first bytes have arrived. Every
/// client of this server speaks first (an HTTP request, a PROXY preamble, a
/// TLS ClientHello, the HTTP/2 preface), so the worker that gets it finds
/// the request already there and reads it at once, instead of reading
/// nothing, waiting for the poller, and reading again. A connection that
/// stays silent is handed over after `DEFER_ACCEPT_SECS` all the same, and
/// `--header-timeout` applies to it from then on. Best effort: without the
/// option the server works as before.
fn defer_accept(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let secs = DEFER_ACCEPT_SECS;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int that
    // outlives the call, with its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The sizes reach the connections the listener accepts (Linux
    /// doubles what was asked for, for its bookkeeping).
    #[test]
    fn accepted_connections_inherit_the_buffer_sizes() {
        let wanted = Buffers {
            receive: 50000,
            send: 30000,
        };
        let listener = bind("127.0.0.1", 0, 8, wanted).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"x").unwrap();
        let std_listener: std::net::TcpListener = listener.into();
        std_listener.set_nonblocking(false).unwrap();
        let (conn, _) = std_listener.accept().unwrap();
        let conn = Socket::from(conn);
        assert_eq!(conn.recv_buffer_size().unwrap(), 2 * 50000);
        assert_eq!(conn.send_buffer_size().unwrap(), 2 * 30000);

        let plain = bind("127.0.0.1", 0, 8, Buffers::default()).unwrap();
        let plain = Socket::from(std::net::TcpListener::from(plain));
        assert_ne!(plain.recv_buffer_size().unwrap(), 2 * 50000);
    }

    /// A connection is handed to `accept` once it has sent something, and
    /// comes with TCP_NODELAY already set: the master makes no call for it.
    #[test]
    fn accepts_wait_for_the_first_bytes_and_inherit_nodelay() {
        let listener = bind("127.0.0.1", 0, 8, Buffers::default()).unwrap();
        let addr = listener.local_addr().unwrap();
        let std_listener: std::net::TcpListener = listener.into();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        // Connected on the client's side, yet nothing to accept: a
        // bounded look, well under the one second the kernel waits.
        for _ in 0..20 {
            let err = std_listener.accept().unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std_listener.set_nonblocking(false).unwrap();
        let (conn, _) = std_listener.accept().unwrap();
        assert!(conn.nodelay().unwrap());
    }
}
