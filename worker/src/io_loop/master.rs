//! The master's channel: connections handed over (adopted here), the
//! orders to stop, and, while draining, idle connections handed back.

use super::{deadline, Entry, IoLoop, Mode};
use crate::conn::Conn;
use mio::unix::SourceFd;
use rwsgi_shared::channel::{ChannelError, Control, Message};
use rwsgi_shared::scoreboard::WorkerState;
use slog::{info, warn};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A draining worker waits at most this long for room in the channel to
/// hand back one connection (the master reads it between other work).
const HAND_BACK_PATIENCE: Duration = Duration::from_millis(500);

impl IoLoop<'_> {
    pub(super) fn read_channel(&mut self) {
        loop {
            match self.ctx.channel.recv(&mut self.recv_buf) {
                Ok(received) => match (received.message, received.fd) {
                    (
                        Message::Handoff {
                            mut origin,
                            buffered,
                            accepted_at_us,
                        },
                        Some(fd),
                    ) => {
                        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
                            sb.note_accepted();
                        }
                        let stream = TcpStream::from(fd);
                        if stream.set_nonblocking(true).is_err() {
                            continue;
                        }
                        if !self.ctx.config.proxy_protocol {
                            origin.expect_no_preamble();
                        }
                        if let Some(bridge) = self.ctx.tls.filter(|b| b.serves(&stream)) {
                            if let Mode::Draining { .. } = self.mode {
                                // Not yet spoken to: the master can give it
                                // to another worker.
                                self.give_up(Conn::new(stream, origin, buffered));
                                continue;
                            }
                            let waited =
                                rwsgi_shared::time::now_us().saturating_sub(accepted_at_us);
                            bridge.adopt(crate::tls::Incoming {
                                stream,
                                origin,
                                accepted_at: Instant::now()
                                    .checked_sub(Duration::from_micros(waited)),
                            });
                            continue;
                        }
                        let mut conn = Conn::new(stream, origin, buffered);
                        // Both clocks are the machine's monotonic clock.
                        let waited = rwsgi_shared::time::now_us().saturating_sub(accepted_at_us);
                        conn.accepted_at =
                            Instant::now().checked_sub(Duration::from_micros(waited));
                        self.adopt(conn);
                    }
                    (Message::Control(Control::GracefulStop), _) => {
                        self.drain(true, self.ctx.config.timeouts.graceful_ms)
                    }
                    (Message::Control(Control::Evict), _) => {
                        self.drain(true, self.ctx.config.timeouts.eviction())
                    }
                    (other, _) => {
                        warn!(self.ctx.log, "unexpected channel message"; "message" => ?other)
                    }
                },
                Err(ChannelError::WouldBlock) => return,
                Err(ChannelError::Malformed(why)) => {
                    // A hand-off whose socket could not be received (no
                    // descriptor left): counted, so the master's count of
                    // connections in flight stays true, and logged.
                    if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
                        sb.note_accepted();
                    }
                    warn!(self.ctx.log, "a message from the master was lost"; "why" => why);
                    self.publish_fd_headroom(true);
                }
                Err(e) => {
                    // The master is gone: finish what is running, then exit.
                    if self.mode == Mode::Serving {
                        warn!(self.ctx.log, "lost the master ({}); draining", e);
                    }
                    let fd = self.ctx.channel.as_raw_fd();
                    let _ = self.ctx.poll.registry().deregister(&mut SourceFd(&fd));
                    self.drain(false, self.ctx.config.timeouts.graceful_ms);
                    return;
                }
            }
        }
    }

    /// Stops taking connections; in-flight requests have `within_ms`.
    pub(super) fn drain(&mut self, hand_back: bool, within_ms: u64) {
        if let Mode::Draining { .. } = self.mode {
            if !hand_back {
                self.mode = Mode::Draining {
                    deadline: deadline(within_ms),
                    hand_back: false,
                };
            }
            return;
        }
        info!(self.ctx.log, "draining: finishing in-flight requests");
        if let Some(h2) = self.ctx.http2 {
            // GOAWAY: open streams finish, no new ones start.
            h2.drain();
        }
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_state(WorkerState::Draining);
        }
        self.mode = Mode::Draining {
            deadline: deadline(within_ms),
            hand_back,
        };
        for token in 0..self.entries.len() {
            if matches!(self.entries[token], Some(Entry::Idle(_))) {
                if let Some(Entry::Idle(conn)) = self.take(token) {
                    self.give_up(conn);
                }
            }
        }
    }

    /// While draining: an idle connection goes back to the master (with any
    /// bytes already read) so a reload closes nothing; otherwise it is closed.
    /// The connection is no longer watched here (see `IoLoop::take`).
    pub(super) fn give_up(&mut self, conn: Conn) {
        let Some(socket) = conn.transport.plain().filter(|_| conn.http2.is_none()) else {
            // Its TLS session lives in this worker: closing it (dropping
            // it sends close_notify) is the only way to let it go.
            return;
        };
        if let Mode::Draining {
            hand_back: true, ..
        } = self.mode
        {
            let msg = Message::HandBack {
                origin: conn.origin,
                buffered: conn.buf.clone(),
            };
            // The master reads its channel between other work: a burst of
            // hand-backs waits for room rather than losing connections.
            if let Err(e) = self.ctx.channel.send_waiting(
                &msg,
                Some(std::os::fd::AsFd::as_fd(socket)),
                HAND_BACK_PATIENCE,
            ) {
                warn!(self.ctx.log, "could not hand a connection back to the master; closing it";
                    "error" => %e, "buffered" => conn.buf.len(), "client" => %conn.origin);
            }
        }
    }

    pub(super) fn adopt(&mut self, conn: Conn) {
        if let Mode::Draining { .. } = self.mode {
            self.give_up(conn);
            return;
        }
        self.make_room();
        let token = self.insert(Entry::Idle(conn));
        // Read at once: it is watched only if it must wait (see `watch`).
        self.read_conn(token);
    }
}
