//! How long a thread waiting for its peer polls the socket before it
//! sleeps. A thread that never sleeps is not woken, and a wakeup across
//! CPUs costs tens of microseconds on a machine with few cores (48-72 µs
//! for a 1-byte round trip on the benchmark machine, against 14 µs with
//! both ends on one CPU): the better part of a small round trip.
//!
//! A fixed poll caught a Rust peer's answer, but not always a Python
//! peer's: when the peer took a little longer than the poll, both ends
//! slept and each answer cost two wakeups (a Python client's tiny call
//! took 75 or 170-250 µs, by luck). So each waiting end learns how long
//! its peer usually takes and polls up to twice that, within a cap; a
//! peer that usually takes longer than the cap (a policy thinking for
//! milliseconds, a slow simulator step) gets the short poll only, so no
//! CPU is burnt where polling would not pay.

use std::time::Duration;

/// The poll when the peer is slow (the old fixed poll); an unknown peer
/// starts at an average of this, a poll of twice it.
pub(crate) const SPIN_MIN: Duration = Duration::from_micros(60);
/// The longest poll, for a peer that usually answers within it.
pub(crate) const SPIN_MAX: Duration = Duration::from_micros(300);
/// A gap is counted as at most this (one long pause moves the average, and
/// no more than a pause of this does).
const GAP_MAX: Duration = Duration::from_millis(2);

/// A moving average of how long the peer took (from our last message to
/// its next), and the poll it earns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spin {
    average: Duration,
}

impl Default for Spin {
    fn default() -> Spin {
        Spin { average: SPIN_MIN }
    }
}

impl Spin {
    /// How long to poll: twice the peer's usual time, within
    /// [`SPIN_MIN`]..=[`SPIN_MAX`], or [`SPIN_MIN`] when it usually takes
    /// longer than [`SPIN_MAX`].
    pub(crate) fn budget(&self) -> Duration {
        if self.average > SPIN_MAX {
            SPIN_MIN
        } else {
            (self.average * 2).clamp(SPIN_MIN, SPIN_MAX)
        }
    }

    /// The peer took `gap` this time (an eighth of the average's weight).
    pub(crate) fn observe(&mut self, gap: Duration) {
        self.average = (self.average * 7 + gap.min(GAP_MAX)) / 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_quick_peer_earns_twice_its_time_and_a_slow_one_the_short_poll() {
        let mut s = Spin::default();
        assert_eq!(s.budget(), us(120));
        // A Python peer answering in about 100 µs: polled for about 200.
        for _ in 0..64 {
            s.observe(us(100));
        }
        assert!(
            (us(195)..=us(205)).contains(&s.budget()),
            "{:?}",
            s.budget()
        );
        // A fast peer: never below the short poll.
        for _ in 0..64 {
            s.observe(us(5));
        }
        assert_eq!(s.budget(), SPIN_MIN);
        // Around the cap: capped.
        for _ in 0..64 {
            s.observe(us(250));
        }
        assert_eq!(s.budget(), SPIN_MAX);
        // A peer thinking for milliseconds: the short poll only.
        for _ in 0..64 {
            s.observe(Duration::from_secs(1));
        }
        assert_eq!(s.budget(), SPIN_MIN);
        // And back, a few dozen quick answers later.
        for _ in 0..48 {
            s.observe(us(80));
        }
        assert!(
            (us(155)..=us(175)).contains(&s.budget()),
            "{:?}",
            s.budget()
        );
    }

    #[test]
    fn one_long_pause_among_quick_answers_does_not_stop_the_poll() {
        let mut s = Spin::default();
        for _ in 0..64 {
            s.observe(us(80));
        }
        s.observe(Duration::from_secs(30));
        // 2 ms counts as 2 ms: (7 x 80 + 2000) / 8 = 320 µs on average, over
        // the cap: the short poll, until the next quick answers.
        assert_eq!(s.budget(), SPIN_MIN);
        for _ in 0..8 {
            s.observe(us(80));
        }
        assert!(s.budget() > SPIN_MIN, "{:?}", s.budget());
    }
}
