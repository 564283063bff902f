//! Choosing the worker for a new connection: the one with the most free
//! threads in the scoreboard, counting connections still in its channel,
//! among those that have descriptors left to receive it. A connection no
//! worker can take stays with the master until one can.

use crate::workers::Workers;

/// Descriptors a worker must have free, beyond the connections already on
/// their way to it, to be handed another one.
pub const MIN_FD_HEADROOM: i64 = 16;
use rwsgi_shared::scoreboard::Scoreboard;

/// Picks a worker slot, rotating among equals so load spreads when all are idle.
pub fn choose(
    workers: &Workers,
    scoreboard: &Scoreboard,
    rotate: &mut usize,
    exclude: &[usize],
) -> Option<usize> {
    let mut best: Option<(i64, usize)> = None;
    let candidates: Vec<usize> = workers
        .iter()
        .filter(|(slot, w)| w.accepts_work() && !exclude.contains(slot))
        .map(|(slot, _)| slot)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let n = candidates.len();
    for k in 0..n {
        let slot = candidates[(*rotate + k) % n];
        let (Some(worker), Some(sb)) = (workers.get(slot), scoreboard.worker(slot)) else {
            continue;
        };
        let in_flight = worker.sent.saturating_sub(sb.accepted()) as i64;
        if i64::from(sb.fd_headroom()) - in_flight < MIN_FD_HEADROOM {
            continue;
        }
        let free = sb.free_threads() - in_flight;
        if best.is_none_or(|(b, _)| free > b) {
            best = Some((free, slot));
        }
    }
    *rotate = rotate.wrapping_add(1);
    best.map(|(_, slot)| slot)
}
