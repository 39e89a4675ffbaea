//! The `markets` channel's throttle: at most one tick per market per interval.
//! A tick that comes too soon is held (a newer one replaces it) and sent when
//! the interval has passed, so the last price always arrives and nothing older
//! than one interval is ever delayed further.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug)]
struct Slot {
    last_sent: Instant,
    pending: Option<Value>,
}

/// Per-key rate limiting with coalescing (latest wins).
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    slots: HashMap<String, Slot>,
}

impl Throttle {
    /// At most `ticks_per_second` ticks per key per second (0 means unthrottled).
    pub fn new(ticks_per_second: u32) -> Self {
        let interval = if ticks_per_second == 0 { Duration::ZERO } else { Duration::from_secs(1) / ticks_per_second };
        Self { interval, slots: HashMap::new() }
    }

    /// A tick for `key` at `now`: returned when it may be sent now, else held.
    pub fn offer(&mut self, key: &str, tick: Value, now: Instant) -> Option<Value> {
        match self.slots.get_mut(key) {
            Some(slot) if now.duration_since(slot.last_sent) < self.interval => {
                slot.pending = Some(tick);
                None
            }
            Some(slot) => {
                slot.last_sent = now;
                slot.pending = None;
                Some(tick)
            }
            None => {
                self.slots.insert(key.to_owned(), Slot { last_sent: now, pending: None });
                Some(tick)
            }
        }
    }

    /// The held ticks whose interval has passed at `now` (they count as sent);
    /// keys quiet for a while are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Value> {
        let interval = self.interval;
        let mut ready = Vec::new();
        self.slots.retain(|_, slot| {
            let waited = now.duration_since(slot.last_sent);
            if waited >= interval
                && let Some(tick) = slot.pending.take()
            {
                slot.last_sent = now;
                ready.push(tick);
                return true;
            }
            slot.pending.is_some() || waited < interval.max(Duration::from_secs(1)) * 10
        });
        ready
    }

    /// When the earliest held tick falls due (`None`: nothing held).
    pub fn next_due(&self) -> Option<Instant> {
        self.slots.values().filter(|slot| slot.pending.is_some()).map(|slot| slot.last_sent + self.interval).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ticks_are_spaced_and_the_latest_held_one_wins() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut throttle = Throttle::new(4); // 250 ms
        assert_eq!(throttle.offer("a", json!(1), at(0)), Some(json!(1)));
        assert_eq!(throttle.offer("b", json!(10), at(10)), Some(json!(10)), "keys are independent");
        assert_eq!(throttle.offer("a", json!(2), at(100)), None);
        assert_eq!(throttle.offer("a", json!(3), at(200)), None);
        assert_eq!(throttle.next_due(), Some(at(250)));
        assert!(throttle.due(at(249)).is_empty());
        assert_eq!(throttle.due(at(250)), [json!(3)], "the newest held tick, once");
        assert!(throttle.due(at(600)).is_empty());
        assert_eq!(throttle.next_due(), None);
        assert_eq!(throttle.offer("a", json!(4), at(400)), None, "250 ms after the held tick went out");
        assert_eq!(throttle.offer("a", json!(5), at(800)), Some(json!(5)));
    }

    #[test]
    fn zero_means_unthrottled() {
        let now = Instant::now();
        let mut throttle = Throttle::new(0);
        for n in 0..5 {
            assert_eq!(throttle.offer("a", json!(n), now), Some(json!(n)));
        }
    }
}
