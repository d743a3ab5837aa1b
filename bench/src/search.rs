//! Finding the maximum sustainable rate (`producer_rate = 0`).
//!
//! As OpenMessaging Benchmark does, the producers run on a schedule whose
//! rate a controller adjusts once a second: up while the broker acknowledges
//! what is asked and consumers keep up, down to just under what was achieved
//! when either falls behind. The rate first grows by half each second, to
//! find the region fast, then moves in small steps around the limit, holding
//! while a backlog drains. Latency stays measured from intended send times,
//! so a probe past the limit shows in the latency of the messages it delayed.

/// Starting point: this many bytes per second, whatever the message size.
pub const START_BYTES_PER_SEC: f64 = 32.0 * 1024.0 * 1024.0;
/// Growth per interval until the first miss, and the back-off after it:
/// an overshoot of at most half the limit drains in a few seconds.
const COARSE_STEP: f64 = 1.5;
const COARSE_BACK_OFF: f64 = 0.8;
/// Growth per interval after the first miss, and the back-off after later
/// misses.
const FINE_STEP: f64 = 1.1;
const FINE_BACK_OFF: f64 = 0.9;
/// Publishing keeps up when it reaches this fraction of the asked rate ...
const KEEP_UP_FRACTION: f64 = 0.95;
/// ... and the producers are at most this many seconds behind schedule.
const PRODUCER_LAG_SECS_MAX: f64 = 0.01;
/// Consumers keep up while their backlog is at most this many seconds of
/// the asked rate.
const BACKLOG_SECS_MAX: f64 = 0.5;

/// What one interval showed.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Messages acknowledged per second.
    pub published: f64,
    /// Messages received per second (ignored without consumers).
    pub consumed: f64,
    /// How far behind their schedule the producers are, seconds, at the
    /// interval's end and start.
    pub producer_lag: f64,
    pub producer_lag_before: f64,
    /// Acknowledged but not yet received, at the interval's end and start.
    pub backlog: f64,
    pub backlog_before: f64,
    pub has_consumers: bool,
}

/// The controller: owns the asked-for total rate.
#[derive(Debug, Clone)]
pub struct RateSearch {
    rate: f64,
    step: f64,
    back_off: f64,
    min: f64,
    max: f64,
}

impl RateSearch {
    /// Starts at `start` msg/s, never leaving `[min, max]`.
    pub fn new(start: f64, min: f64, max: f64) -> RateSearch {
        assert!(0.0 < min && min <= max, "bad rate bounds {min}..{max}");
        RateSearch {
            rate: start.clamp(min, max),
            step: COARSE_STEP,
            back_off: COARSE_BACK_OFF,
            min,
            max,
        }
    }

    /// The rate to ask for now, msg/s over all producers.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes one interval's observation and returns the next rate.
    pub fn observe(&mut self, o: Observation) -> f64 {
        let publishing_ok =
            o.published >= KEEP_UP_FRACTION * self.rate && o.producer_lag <= PRODUCER_LAG_SECS_MAX;
        let consuming_ok = !o.has_consumers || o.backlog <= BACKLOG_SECS_MAX * self.rate;
        let producers_draining = o.producer_lag < o.producer_lag_before;
        let consumers_draining = !o.has_consumers || o.backlog < o.backlog_before;
        if publishing_ok && consuming_ok {
            self.rate = (self.rate * self.step).min(self.max);
        } else if (publishing_ok || producers_draining) && (consuming_ok || consumers_draining) {
            // Behind, but catching up at this rate: hold until drained.
        } else {
            let achieved = if o.has_consumers {
                o.published.min(o.consumed)
            } else {
                o.published
            };
            self.rate = (self.back_off * achieved).clamp(self.min, self.rate);
            self.step = FINE_STEP;
            self.back_off = FINE_BACK_OFF;
        }
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system that acknowledges and delivers at most `capacity` msg/s;
    /// producers keep every intended message, so overdue ones pile up.
    struct Model {
        capacity: f64,
        overdue: f64,
        backlog: f64,
    }

    impl Model {
        fn interval(&mut self, asked: f64) -> Observation {
            let (lag_before, backlog_before) = (self.overdue / asked, self.backlog);
            let published = (asked + self.overdue).min(self.capacity);
            self.overdue = (self.overdue + asked - published).max(0.0);
            let consumed = (published + self.backlog).min(self.capacity);
            self.backlog += published - consumed;
            Observation {
                published,
                consumed,
                producer_lag: self.overdue / asked,
                producer_lag_before: lag_before,
                backlog: self.backlog,
                backlog_before,
                has_consumers: true,
            }
        }
    }

    fn ok(rate: f64) -> Observation {
        Observation {
            published: rate,
            consumed: rate,
            producer_lag: 0.0,
            producer_lag_before: 0.0,
            backlog: 0.0,
            backlog_before: 0.0,
            has_consumers: true,
        }
    }

    #[test]
    fn settles_near_the_capacity_and_stays_there() {
        let capacity = 300_000.0;
        let mut m = Model {
            capacity,
            overdue: 0.0,
            backlog: 0.0,
        };
        let mut s = RateSearch::new(8_000.0, 1.0, 2_000_000.0);
        let mut published = Vec::new();
        for i in 0..60 {
            let o = m.interval(s.rate());
            s.observe(o);
            if i >= 20 {
                published.push(o.published);
                assert!(o.producer_lag < 1.0, "lag {} s at {i}", o.producer_lag);
            }
        }
        let mean = published.iter().sum::<f64>() / published.len() as f64;
        assert!(mean >= 0.8 * capacity, "mean {mean}");
        assert!(mean <= capacity, "mean {mean}");
    }

    #[test]
    fn grows_coarsely_until_the_first_miss_then_steps_finely() {
        let mut s = RateSearch::new(1_000.0, 1.0, 1e9);
        assert_eq!(s.observe(ok(1_000.0)), 1_500.0);
        assert_eq!(s.observe(ok(1_500.0)), 2_250.0);
        let miss = Observation {
            producer_lag: 0.2,
            producer_lag_before: 0.0,
            ..ok(2_000.0)
        };
        assert_eq!(s.observe(miss), 1_600.0);
        let next = s.observe(ok(1_600.0));
        assert!((next - 1_760.0).abs() < 1e-6, "{next}");
        let miss = Observation {
            published: 1_500.0,
            ..ok(1_500.0)
        };
        assert_eq!(s.observe(miss), 1_350.0);
    }

    #[test]
    fn producers_behind_but_catching_up_hold_the_rate() {
        let mut s = RateSearch::new(10_000.0, 1.0, 1e9);
        let draining = Observation {
            producer_lag: 0.3,
            producer_lag_before: 0.5,
            ..ok(12_000.0)
        };
        assert_eq!(s.observe(draining), 10_000.0);
    }

    #[test]
    fn lagging_consumers_bring_the_rate_down_and_a_draining_backlog_holds_it() {
        let mut s = RateSearch::new(10_000.0, 1.0, 1e9);
        let lagging = Observation {
            consumed: 6_000.0,
            backlog: 8_000.0,
            backlog_before: 4_000.0,
            ..ok(10_000.0)
        };
        assert_eq!(s.observe(lagging), 4_800.0);
        let draining = Observation {
            consumed: 7_000.0,
            backlog: 6_400.0,
            backlog_before: 8_000.0,
            ..ok(4_800.0)
        };
        assert_eq!(s.observe(draining), 4_800.0);
    }

    #[test]
    fn the_rate_never_leaves_its_bounds() {
        let mut s = RateSearch::new(50.0, 100.0, 1_000.0);
        assert_eq!(s.rate(), 100.0);
        let dead = Observation {
            published: 0.0,
            consumed: 0.0,
            has_consumers: false,
            ..ok(0.0)
        };
        assert_eq!(s.observe(dead), 100.0);
        for _ in 0..30 {
            s.observe(Observation {
                published: 1e9,
                ..dead
            });
        }
        assert_eq!(s.rate(), 1_000.0);
    }
}
