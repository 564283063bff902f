//! The worker's signal dispositions.
//!
//! Signals meant for the server (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1,
//! SIGTTIN, SIGTTOU) are the master's to interpret: systemd's default
//! `KillMode=control-group`, `kill -- -PGID`, Ctrl-C on a terminal and many
//! inits send them to the whole process group, and a worker that died of
//! its copy would kill its in-flight requests before the master could stop
//! it gracefully. So a worker ignores them unless they come from its
//! master, which tells it what to do over the channel and uses signals only
//! where the channel cannot reach (a worker still starting, a fast stop):
//! those still take their default effect.

use std::sync::atomic::{AtomicI32, Ordering};

/// Signals whose copies sent to the process group belong to the master.
const SERVER_SIGNALS: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// The master's pid, read by the handler.
static MASTER: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_server_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let sender = unsafe { info.as_ref().map_or(0, |i| i.si_pid()) };
    if sender != 0 && sender == MASTER.load(Ordering::Relaxed) {
        // The master means this worker: take the default action. signal()
        // and raise() are async-signal-safe.
        // SAFETY: restoring the default disposition and re-raising.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
    // Anyone else (the terminal, a group kill, init): the master got its
    // own copy and decides.
}

/// Installs the handler for the server signals; `master` is the parent pid.
pub fn leave_server_signals_to(master: i32) {
    MASTER.store(master, Ordering::Relaxed);
    for sig in SERVER_SIGNALS {
        // SAFETY: a zeroed sigaction is valid; the handler is an
        // `extern "C"` function that only calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_server_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}
