//! Signals become bytes (signal-hook's self-pipe), bytes become a `Control`.

use signal_hook::consts::signal::{
    SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1,
};
use signal_hook_mio::v1_0::Signals;

/// What the operator (or the kernel) asked the master to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM: stop accepting, finish in-flight requests, exit 0.
    GracefulStop,
    /// SIGINT, SIGQUIT: stop now.
    FastStop,
    /// SIGUSR1, SIGHUP: replace every worker without dropping requests.
    Reload,
    /// SIGTTIN: one more worker.
    AddWorker,
    /// SIGTTOU: one fewer worker.
    RemoveWorker,
    /// SIGCHLD: a child changed state.
    ChildExited,
}

pub fn install() -> std::io::Result<Signals> {
    Signals::new([
        SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGTTIN, SIGTTOU, SIGCHLD,
    ])
}

/// Drains the self-pipe into controls, in arrival order.
pub fn drain(signals: &mut Signals) -> Vec<Control> {
    signals
        .pending()
        .filter_map(|sig| match sig {
            SIGTERM => Some(Control::GracefulStop),
            SIGINT | SIGQUIT => Some(Control::FastStop),
            SIGHUP | SIGUSR1 => Some(Control::Reload),
            SIGTTIN => Some(Control::AddWorker),
            SIGTTOU => Some(Control::RemoveWorker),
            SIGCHLD => Some(Control::ChildExited),
            _ => None,
        })
        .collect()
}
