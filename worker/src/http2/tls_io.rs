//! `h2` over TLS: the client's socket and its rustls session as the byte
//! stream the h2 crate reads and writes. This thread encrypts and decrypts
//! as it does the connection's I/O, as the I/O thread does for HTTP/1.1
//! (see `transport`); the TLS thread only ran the handshake.
//!
//! No wake-up is lost: a read hands out the plaintext rustls holds, and
//! returns `Pending` only once the socket said `WouldBlock` with every
//! complete record processed (tokio then watches it). Writes are bounded
//! by rustls's buffer: when it is full, its ciphertext goes out first.

use crate::transport::Session;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct TlsIo {
    tcp: TcpStream,
    session: Session,
    /// close_notify queued (`poll_shutdown`).
    closing: bool,
    /// A TLS error ended the stream: nothing more is read or written.
    failed: bool,
}

impl TlsIo {
    pub fn new(tcp: TcpStream, session: Session) -> TlsIo {
        TlsIo {
            tcp,
            session,
            closing: false,
            failed: false,
        }
    }

    /// Writes queued ciphertext until done, or until the socket is full
    /// (`Pending`, its writability watched).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut Sock(&self.tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Sends what can go without waiting (an alert, a key update).
    fn send_now(&mut self) {
        while self.session.wants_write() {
            if self.session.write_tls(&mut Sock(&self.tcp)).is_err() {
                return;
            }
        }
    }
}

/// The tokio socket as rustls reads and writes it: `WouldBlock` clears its
/// readiness, so the next `poll_*_ready` waits for a new event.
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a read of rustls's plaintext found.
#[derive(Debug, PartialEq, Eq)]
enum Plain {
    /// Bytes were handed out.
    Got(usize),
    /// The client's end of the stream: close_notify, or the socket closed
    /// without it (an end all the same, as over HTTP/1.1).
    End,
    /// Nothing decrypted yet.
    Empty,
}

/// Reads the plaintext rustls holds into `out` (which has room).
fn plaintext(session: &mut Session, out: &mut [u8]) -> Plain {
    match session.reader().read(out) {
        Ok(0) => Plain::End,
        Ok(n) => Plain::Got(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Plain::Empty,
        Err(_) => Plain::End,
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match plaintext(&mut this.session, buf.initialize_unfilled()) {
                Plain::Got(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Plain::End => return Poll::Ready(Ok(())),
                Plain::Empty => {}
            }
            match this.session.read_tls(&mut Sock(&this.tcp)) {
                Ok(_) => {
                    // Ok(0), the socket's end, is for the reader to tell
                    // once the records before it are processed.
                    if let Err(e) = this.session.process_new_packets() {
                        // The alert rustls queued tells the client why.
                        this.send_now();
                        this.failed = true;
                        return Poll::Ready(Err(tls_error(e)));
                    }
                    // A key update's answer goes now if it can; the rest
                    // with the next flush.
                    this.send_now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Ready again (an event came meanwhile): read again.
                    ready!(this.tcp.poll_read_ready(cx))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl TlsIo {
    /// Encrypts with `write` into rustls; when its buffer is full, sends
    /// its ciphertext first.
    fn poll_encrypt(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Session) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.failed || self.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            let n = write(&mut self.session)?;
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            if !self.session.wants_write() {
                // Nothing was asked (empty buffers).
                return Poll::Ready(Ok(0));
            }
            ready!(self.poll_send(cx))?;
        }
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_encrypt(cx, |s| s.writer().write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_encrypt(cx, |s| s.writer().write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            this.session.send_close_notify();
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// A connection dropped without its shutdown (the h2 thread stopping, a
/// broken connection) still sends what it can without waiting.
impl Drop for TlsIo {
    fn drop(&mut self) {
        if !self.closing && !self.failed {
            self.session.send_close_notify();
        }
        self.send_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tests::sessions;
    use std::os::fd::OwnedFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime")
    }

    fn adapter(s: rustls::ServerConnection, ours: std::os::unix::net::UnixStream) -> TlsIo {
        let tcp = std::net::TcpStream::from(OwnedFd::from(ours));
        TlsIo::new(TcpStream::from_std(tcp).expect("tokio socket"), Box::new(s))
    }

    #[test]
    fn megabytes_cross_both_ways_and_close_notify_ends_each() {
        let (s, ours, mut c, mut theirs) = sessions();
        let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        // The client: everything, close_notify, then it reads the echo.
        let client = std::thread::spawn(move || {
            for piece in sent.chunks(16 * 1024) {
                c.writer().write_all(piece).expect("plaintext");
                while c.wants_write() {
                    c.write_tls(&mut theirs).expect("ciphertext");
                }
            }
            c.send_close_notify();
            while c.wants_write() {
                c.write_tls(&mut theirs).expect("ciphertext");
            }
            let mut back = Vec::new();
            loop {
                match c.reader().read_to_end(&mut back) {
                    Ok(_) => return back,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("client read: {e}"),
                }
                assert!(
                    c.read_tls(&mut theirs).expect("client reads") > 0,
                    "no close_notify"
                );
                c.process_new_packets().expect("client");
            }
        });
        let got = runtime().block_on(async move {
            let mut io = adapter(s, ours);
            let mut got = Vec::new();
            // Small reads: plaintext left in rustls between them.
            let mut buf = [0u8; 1000];
            loop {
                let n = io.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            // The client is not reading yet: writes wait for room.
            io.write_all(&got).await.expect("write");
            io.shutdown().await.expect("shutdown");
            got
        });
        assert!(got == data, "{} of {} bytes", got.len(), data.len());
        let back = client.join().expect("client");
        assert!(back == data, "{} of {} bytes back", back.len(), data.len());
    }

    #[test]
    fn a_tls_error_is_an_io_error() {
        let (s, ours, _c, mut theirs) = sessions();
        // A record of an unknown content type.
        theirs.write_all(&[0x99, 3, 3, 0, 1, 0]).expect("garbage");
        let got = runtime().block_on(async move {
            let mut io = adapter(s, ours);
            let mut buf = [0u8; 16];
            io.read(&mut buf).await
        });
        let e = got.expect_err("a TLS error");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }
}
