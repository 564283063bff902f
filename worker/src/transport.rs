//! A client connection's transport: its TCP socket, and for HTTPS the TLS
//! session on it. Every read and write of a connection goes through here
//! (the socket is private), so TLS cannot be forgotten on some path.
//!
//! A plain connection's calls are the system calls they always were (the
//! `Plain` arm is `net`'s function on the socket). An HTTPS connection's
//! session encrypts and decrypts in the thread that does the I/O: the TLS
//! thread only runs the handshake (see `tls`).
//!
//! Readiness is edge-triggered, so a read of a TLS connection hands over
//! all the plaintext rustls holds, and reads the socket until it is empty
//! (or until the caller's bound, reported like a full read of a plain
//! socket, so the caller reads again as it would there): no plaintext
//! stays hidden in rustls where no event will announce it.
//!
//! Request threads lend the session to the request's `Lease` (see
//! `wsgi::lease`) and take it back when the request ends; while it is lent,
//! I/O on the connection itself fails rather than skip the TLS layer.

use crate::net;
use nix::errno::Errno;
use nix::poll::PollFlags;
use rustls::ServerConnection;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// An HTTPS connection's TLS session.
pub type Session = Box<ServerConnection>;

/// File bytes encrypted per step when a file goes out over TLS (rustls
/// buffers at most 64 KiB of ciphertext by default).
pub const TLS_FILE_CHUNK: usize = 64 * 1024;

pub struct Transport(Inner);

enum Inner {
    Plain(TcpStream),
    Tls(Tls),
}

struct Tls {
    tcp: TcpStream,
    /// `None` while a request's lease holds it.
    session: Option<Session>,
}

/// An HTTPS connection dropped without `close` still tells its client the
/// response is complete (a truncation would otherwise look the same).
impl Drop for Tls {
    fn drop(&mut self) {
        if let Some(s) = self.session.as_deref_mut() {
            s.send_close_notify();
            let _ = flush(s, self.tcp.as_fd());
        }
    }
}

/// What a non-blocking write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Plaintext bytes taken (sent, or encrypted and queued).
    pub accepted: usize,
    /// Ciphertext still queued for a socket that is full: wait for room
    /// and `flush_pending`.
    pub pending: bool,
}

fn lent() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection's TLS session is lent to a request",
    )
}

impl Transport {
    pub fn new_plain(tcp: TcpStream) -> Transport {
        Transport(Inner::Plain(tcp))
    }

    pub fn new_tls(tcp: TcpStream, session: Session) -> Transport {
        Transport(Inner::Tls(Tls {
            tcp,
            session: Some(session),
        }))
    }

    fn tcp(&self) -> &TcpStream {
        match &self.0 {
            Inner::Plain(tcp) | Inner::Tls(Tls { tcp, .. }) => tcp,
        }
    }

    /// For poll registration only.
    pub fn fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.0, Inner::Tls(_))
    }

    /// The socket of a plain connection, for what only works on one:
    /// `sendfile`, handing it back to the master.
    pub fn plain(&self) -> Option<&TcpStream> {
        match &self.0 {
            Inner::Plain(tcp) => Some(tcp),
            Inner::Tls(_) => None,
        }
    }

    pub fn into_plain(self) -> Option<TcpStream> {
        match self.0 {
            Inner::Plain(tcp) => Some(tcp),
            Inner::Tls(_) => None,
        }
    }

    pub fn local_port(&self) -> u16 {
        self.tcp().local_addr().map_or(0, |a| a.port())
    }

    /// The connection for one I/O call; fails while the session is lent.
    pub fn io(&mut self) -> io::Result<Io<'_>> {
        match &mut self.0 {
            Inner::Plain(tcp) => Ok(Io {
                sock: TcpStream::as_fd(tcp),
                session: None,
            }),
            Inner::Tls(Tls { tcp, session }) => Ok(Io {
                sock: TcpStream::as_fd(tcp),
                session: Some(session.as_deref_mut().ok_or_else(lent)?),
            }),
        }
    }

    pub fn try_read(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
        self.io()?.try_read(buf, max)
    }

    pub fn read_some(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        wait: Duration,
    ) -> io::Result<usize> {
        self.io()?.read_some(buf, max, wait)
    }

    pub fn write_all(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        self.io()?.write_all(parts, timeout)
    }

    /// The last bytes before the connection is closed at once (see
    /// `net::write_all_then_close`); over TLS, the close_notify that the
    /// drop sends follows them.
    pub fn write_all_then_close(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        match &self.0 {
            Inner::Plain(tcp) => net::write_all_then_close(tcp.as_fd(), parts, timeout),
            Inner::Tls(_) => self.write_all(parts, timeout),
        }
    }

    pub fn try_write(&mut self, parts: &[IoSlice<'_>]) -> io::Result<Written> {
        self.io()?.try_write(parts)
    }

    pub fn flush_pending(&mut self) -> io::Result<bool> {
        self.io()?.flush_pending()
    }

    /// Ends our side: close_notify (sent as far as the socket takes it),
    /// then a FIN. What the client still sends can be read raw after it.
    pub fn close(&mut self) {
        if let Inner::Tls(Tls {
            tcp,
            session: Some(s),
        }) = &mut self.0
        {
            s.send_close_notify();
            let _ = flush(s, tcp.as_fd());
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }

    /// Reads and drops raw bytes (a closing connection's), `max` at most.
    pub fn discard(&mut self, scratch: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
        scratch.clear();
        net::try_read(self.tcp(), scratch, max)
    }

    /// Lends the connection to a request (see `wsgi::lease`): its
    /// descriptor, and its TLS session, which the connection no longer has
    /// until [`Transport::restore`].
    pub fn lend(&mut self) -> (RawFd, Option<Session>) {
        match &mut self.0 {
            Inner::Plain(tcp) => (tcp.as_raw_fd(), None),
            Inner::Tls(Tls { tcp, session }) => (tcp.as_raw_fd(), session.take()),
        }
    }

    pub fn restore(&mut self, back: Option<Session>) {
        if let (Inner::Tls(Tls { session, .. }), Some(back)) = (&mut self.0, back) {
            *session = Some(back);
        }
    }
}

/// A connection for one I/O call: its socket, and its TLS session if any.
pub struct Io<'a> {
    sock: BorrowedFd<'a>,
    session: Option<&'a mut ServerConnection>,
}

impl<'a> Io<'a> {
    pub fn new(sock: BorrowedFd<'a>, session: Option<&'a mut ServerConnection>) -> Io<'a> {
        Io { sock, session }
    }

    /// What is available now (at most about `max` bytes read from the
    /// socket), appended to `buf`. `Ok(None)`: nothing yet; `Ok(Some(0))`:
    /// end of stream. Fewer than `max` bytes: the socket is empty.
    pub fn try_read(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
        match self.session.as_deref_mut() {
            None => net::try_read(self.sock, buf, max),
            Some(s) => tls_try_read(s, self.sock, buf, max),
        }
    }

    /// Like `try_read`, waiting up to `wait` for data; 0 at end of stream.
    pub fn read_some(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        wait: Duration,
    ) -> io::Result<usize> {
        if self.session.is_none() {
            return net::read_some(self.sock, buf, max, wait);
        }
        let deadline = Instant::now() + wait;
        loop {
            if let Some(n) = self.try_read(buf, max)? {
                return Ok(n);
            }
            net::wait(self.sock, PollFlags::POLLIN, deadline)?;
        }
    }

    /// Writes every byte of `parts`, waiting up to `timeout` per stall.
    pub fn write_all(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        let Some(s) = self.session.as_deref_mut() else {
            return net::write_all(self.sock, parts, timeout);
        };
        let mut slices: Vec<IoSlice<'_>> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| IoSlice::new(p))
            .collect();
        let mut rest: &mut [IoSlice<'_>] = &mut slices;
        while !rest.is_empty() {
            // One record for small parts together (rustls coalesces them).
            let n = s.writer().write_vectored(rest)?;
            IoSlice::advance_slices(&mut rest, n);
            if !rest.is_empty() {
                // rustls's buffer is full: make room.
                flush_waiting(s, self.sock, timeout)?;
            }
        }
        flush_waiting(s, self.sock, timeout)
    }

    /// One non-blocking write: `WouldBlock` when nothing was taken.
    pub fn try_write(&mut self, parts: &[IoSlice<'_>]) -> io::Result<Written> {
        let Some(s) = self.session.as_deref_mut() else {
            loop {
                match nix::sys::uio::writev(self.sock, parts) {
                    Ok(n) => {
                        return Ok(Written {
                            accepted: n,
                            pending: false,
                        })
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        };
        // What is queued goes first (and makes room).
        flush(s, self.sock)?;
        let accepted = s.writer().write_vectored(parts)?;
        flush(s, self.sock)?;
        let pending = s.wants_write();
        if accepted == 0 && pending && parts.iter().any(|p| !p.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Written { accepted, pending })
    }

    /// Sends queued ciphertext as far as the socket takes it. `Ok(true)`:
    /// nothing is left queued (always, on a plain connection).
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match self.session.as_deref_mut() {
            None => Ok(true),
            Some(s) => {
                flush(s, self.sock)?;
                Ok(!s.wants_write())
            }
        }
    }

    /// Sends `count` bytes of `file` from `offset`, waiting up to
    /// `timeout` per stall: `sendfile` on a plain connection, read and
    /// encrypted a chunk at a time over TLS. Returns the bytes sent, fewer
    /// than `count` when the file is shorter.
    pub fn send_file(
        &mut self,
        file: BorrowedFd<'_>,
        offset: u64,
        count: u64,
        timeout: Duration,
    ) -> io::Result<u64> {
        if self.session.is_none() {
            return net::send_file(self.sock, file, offset, count, timeout);
        }
        let mut chunk = vec![0u8; (count.min(TLS_FILE_CHUNK as u64)) as usize];
        let mut sent = 0u64;
        while sent < count {
            let want = chunk.len().min((count - sent) as usize);
            let n = match pread(file, &mut chunk[..want], offset + sent) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            self.write_all(&[&chunk[..n]], timeout)?;
            sent += n as u64;
        }
        Ok(sent)
    }
}

/// `pread(2)`, retried on EINTR.
pub fn pread(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match nix::sys::uio::pread(file, buf, offset as libc::off_t) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A TLS connection's `try_read` (see [`Io::try_read`]).
fn tls_try_read(
    s: &mut ServerConnection,
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    let start = buf.len();
    let mut ended = false;
    let mut sock = Sock { fd, drained: false };
    loop {
        // All of it, every time: no event would announce what stays.
        if take_plaintext(s, buf) {
            ended = true;
            break;
        }
        if buf.len() - start >= max || sock.drained {
            break;
        }
        match s.read_tls(&mut sock) {
            // Taken in by the next `take_plaintext`: end of stream.
            Ok(0) => {}
            Ok(_) => {
                if let Err(e) = s.process_new_packets() {
                    // The alert rustls queued tells the client why.
                    let _ = flush(s, fd);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // What the session has to say back (a key update) goes now if it can.
    let _ = flush(s, fd);
    match buf.len() - start {
        0 if ended => Ok(Some(0)),
        0 => Ok(None),
        n => Ok(Some(n)),
    }
}

/// Moves all the plaintext rustls holds to the end of `buf`; `true` at the
/// end of the stream (close_notify, or the socket closed without it, an
/// end all the same).
pub(crate) fn take_plaintext(s: &mut ServerConnection, buf: &mut Vec<u8>) -> bool {
    let mut reader = s.reader();
    loop {
        match reader.fill_buf() {
            Ok([]) => return true,
            Ok(chunk) => {
                let n = chunk.len();
                buf.extend_from_slice(chunk);
                reader.consume(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Writes queued ciphertext until done or the socket is full.
pub(crate) fn flush(s: &mut ServerConnection, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut sock = Sock { fd, drained: false };
    while s.wants_write() {
        match s.write_tls(&mut sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all queued ciphertext, waiting up to `timeout` per stall.
fn flush_waiting(
    s: &mut ServerConnection,
    fd: BorrowedFd<'_>,
    timeout: Duration,
) -> io::Result<()> {
    loop {
        flush(s, fd)?;
        if !s.wants_write() {
            return Ok(());
        }
        net::wait(fd, PollFlags::POLLOUT, Instant::now() + timeout)?;
    }
}

/// The socket as rustls reads and writes it, noting whether a read emptied
/// it: a stream socket's read returns less than asked only when nothing
/// more was there, and the read that would only say `WouldBlock` is then
/// not made.
struct Sock<'a> {
    fd: BorrowedFd<'a>,
    drained: bool,
}

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = nix::unistd::read(self.fd, buf)?;
        self.drained = n < buf.len();
        Ok(n)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(nix::unistd::write(self.fd, buf)?)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(nix::sys::uio::writev(self.fd, bufs)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    /// The client of these tests trusts any certificate: what is tested is
    /// the server's I/O, not the verification.
    #[derive(Debug)]
    struct AnyCertificate(Vec<SignatureScheme>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.clone()
        }
    }

    /// A server session (on a non-blocking Unix socket) and a client
    /// session (on a blocking one) through their handshake.
    pub(crate) fn sessions() -> (ServerConnection, UnixStream, ClientConnection, UnixStream) {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rwsgi-transport-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=t", "-keyout", "t.key", "-out", "t.crt"])
            .current_dir(&dir)
            .output()
            .expect("the openssl command");
        assert!(made.status.success());
        let cert = CertificateDer::from_pem_file(dir.join("t.crt")).expect("certificate");
        let key = PrivateKeyDer::from_pem_file(dir.join("t.key")).expect("key");
        let _ = std::fs::remove_dir_all(&dir);
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(schemes)))
            .with_no_client_auth();
        let mut s = ServerConnection::new(Arc::new(server)).expect("server");
        let mut c =
            ClientConnection::new(Arc::new(client), "t".try_into().expect("name")).expect("client");
        while s.is_handshaking() || c.is_handshaking() {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).expect("client hello");
            s.read_tls(&mut wire.as_slice()).expect("server reads");
            s.process_new_packets().expect("server");
            wire.clear();
            s.write_tls(&mut wire).expect("server flight");
            c.read_tls(&mut wire.as_slice()).expect("client reads");
            c.process_new_packets().expect("client");
        }
        let (ours, theirs) = UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("non-blocking");
        (s, ours, c, theirs)
    }

    fn send(c: &mut ClientConnection, sock: &mut UnixStream, data: &[u8]) {
        c.writer().write_all(data).expect("plaintext");
        while c.wants_write() {
            c.write_tls(sock).expect("ciphertext");
        }
    }

    #[test]
    fn a_read_moves_all_the_plaintext_rustls_holds_even_past_its_bound() {
        let (mut s, ours, mut c, mut theirs) = sessions();
        // Three records of 10 KiB, read with a bound of 4 KiB.
        let data: Vec<u8> = (0..30 * 1024u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(10 * 1024) {
            send(&mut c, &mut theirs, piece);
        }
        let mut io = Io::new(ours.as_fd(), Some(&mut s));
        let mut buf = Vec::new();
        let mut reads = 0;
        while buf.len() < data.len() {
            let n = io.try_read(&mut buf, 4096).expect("read").expect("data");
            reads += 1;
            assert!(reads < 100);
            if buf.len() < data.len() {
                // Stopped at its bound: reported like a full read, so the
                // caller reads again.
                assert!(n >= 4096, "{n}");
            }
        }
        assert_eq!(buf, data);
        // Nothing was left in rustls for an event that will not come.
        assert!(io.try_read(&mut buf, 4096).expect("read").is_none());
    }

    #[test]
    fn half_a_record_is_nothing_yet_and_close_notify_is_the_end() {
        let (mut s, ours, mut c, mut theirs) = sessions();
        c.writer().write_all(b"hello").expect("plaintext");
        let mut wire = Vec::new();
        c.write_tls(&mut wire).expect("ciphertext");
        theirs.write_all(&wire[..wire.len() / 2]).expect("half");
        let mut io = Io::new(ours.as_fd(), Some(&mut s));
        let mut buf = Vec::new();
        assert_eq!(io.try_read(&mut buf, 4096).expect("read"), None);
        theirs.write_all(&wire[wire.len() / 2..]).expect("rest");
        c.send_close_notify();
        while c.wants_write() {
            c.write_tls(&mut theirs).expect("close_notify");
        }
        assert_eq!(io.try_read(&mut buf, 4096).expect("read"), Some(5));
        assert_eq!(buf, b"hello");
        assert_eq!(io.try_read(&mut buf, 4096).expect("read"), Some(0));
    }

    #[test]
    fn a_lent_session_leaves_the_connection_unusable_until_it_is_back() {
        let (s, ours, _c, _theirs) = sessions();
        let tcp = TcpStream::from(std::os::fd::OwnedFd::from(ours));
        let mut t = Transport::new_tls(tcp, Box::new(s));
        let (_, session) = t.lend();
        assert!(session.is_some());
        let mut buf = Vec::new();
        let e = t.try_read(&mut buf, 16).expect_err("no plaintext I/O");
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        assert!(t.write_all(&[b"x"], Duration::from_secs(1)).is_err());
        t.restore(session);
        assert_eq!(t.try_read(&mut buf, 16).expect("read"), None);
    }
}
