//! The fixed-rate schedule that keeps latency honest.
//!
//! Message `i` of a producer has an intended send time `start + i / rate`,
//! fixed before the run. Latency is measured from that time, not from when the
//! producer got round to sending, so a broker stall that delays sending shows
//! up in the latency of every message it delayed (no coordinated omission).

/// A producer's send schedule, in nanoseconds on the run clock.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
    /// Messages already handed out by [`Schedule::next_due`].
    issued: u64,
}

impl Schedule {
    /// `rate` messages per second (> 0) starting at `start_ns`.
    pub fn new(start_ns: u64, rate: f64) -> Schedule {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        Schedule {
            start_ns,
            interval_ns: 1e9 / rate,
            issued: 0,
        }
    }

    pub fn intended_ns(&self, index: u64) -> u64 {
        self.start_ns + (index as f64 * self.interval_ns) as u64
    }

    /// Changes the rate from the next message on. Intended times already
    /// handed out stay, and messages already overdue stay overdue, so a rate
    /// search that overshot still pays for the backlog it made.
    pub fn set_rate(&mut self, rate: f64) {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        self.start_ns = self.next_ns();
        self.issued = 0;
        self.interval_ns = 1e9 / rate;
    }

    /// The intended time of the next message, whether due or not.
    pub fn next_ns(&self) -> u64 {
        self.intended_ns(self.issued)
    }

    /// The intended time of the next message if it is due at `now_ns`; a
    /// producer that fell behind gets every overdue message back to back.
    pub fn next_due(&mut self, now_ns: u64) -> Option<u64> {
        let t = self.next_ns();
        if t <= now_ns {
            self.issued += 1;
            Some(t)
        } else {
            None
        }
    }

    #[cfg(test)]
    pub fn issued(&self) -> u64 {
        self.issued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_due_before_start() {
        let mut s = Schedule::new(1_000, 1000.0);
        assert_eq!(s.next_due(999), None);
        assert_eq!(s.next_due(1_000), Some(1_000));
        assert_eq!(s.next_due(1_000), None);
    }

    #[test]
    fn one_second_at_rate_r_issues_r_messages() {
        let mut s = Schedule::new(0, 50_000.0);
        let mut n = 0;
        while s.next_due(999_999_999).is_some() {
            n += 1;
        }
        assert_eq!(n, 50_000);
        assert_eq!(s.issued(), 50_000);
    }

    #[test]
    fn a_late_producer_keeps_the_intended_times() {
        let mut s = Schedule::new(0, 10.0); // one every 100 ms
                                            // The producer wakes up 350 ms late: four messages are overdue and
                                            // each keeps its own intended time, so latency counts the stall.
        let due: Vec<u64> = std::iter::from_fn(|| s.next_due(350_000_000)).collect();
        assert_eq!(due, vec![0, 100_000_000, 200_000_000, 300_000_000]);
        assert_eq!(s.next_ns(), 400_000_000);
    }

    #[test]
    fn a_new_rate_applies_from_the_next_message() {
        let mut s = Schedule::new(0, 10.0);
        assert_eq!(s.next_due(150_000_000), Some(0));
        assert_eq!(s.next_due(150_000_000), Some(100_000_000));
        s.set_rate(100.0); // one every 10 ms from 200 ms on
        assert_eq!(s.next_due(150_000_000), None);
        let due: Vec<u64> = std::iter::from_fn(|| s.next_due(225_000_000)).collect();
        assert_eq!(due, vec![200_000_000, 210_000_000, 220_000_000]);
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        let s = Schedule::new(0, 3.0);
        assert_eq!(s.intended_ns(3), 1_000_000_000);
        assert_eq!(s.intended_ns(3_000_000), 1_000_000 * 1_000_000_000);
    }
}
