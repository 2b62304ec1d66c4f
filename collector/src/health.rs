//! What `/health` reports beyond "ok": problems found at start (a damaged
//! write-ahead log segment, a quarantined split) and conditions that hold now (the
//! disk is full, commits fail). Threads that hit a persistent failure say so here
//! and in the log, once per interval rather than once per attempt ([`Throttle`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The collector's problems, shared by every stage.
#[derive(Debug, Default)]
pub struct Health {
    /// Found since start, kept until the next start (the operator has to look).
    events: Mutex<Vec<String>>,
    /// Holding now, by what reports them; cleared when it recovers.
    conditions: Mutex<BTreeMap<String, String>>,
}

impl Health {
    /// Records a problem found since start.
    pub fn note(&self, problem: String) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(problem);
    }

    /// Sets (or, with `None`, clears) the current condition of `source`.
    pub fn set(&self, source: &str, condition: Option<String>) {
        let mut conditions = self
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match condition {
            Some(text) => {
                conditions.insert(source.to_string(), text);
            }
            None => {
                conditions.remove(source);
            }
        }
    }

    /// Problems holding now, then those found since start.
    pub fn problems(&self) -> Vec<String> {
        let conditions = self
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        conditions.values().chain(events.iter()).cloned().collect()
    }

    /// The problems holding now.
    pub fn conditions(&self) -> Vec<String> {
        self.conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Whether something holds now (as opposed to only having happened).
    pub fn is_degraded(&self) -> bool {
        !self
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// Lets a repeated failure through to the log once per interval, with how many
/// times it happened in between.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were
    /// not since the last one that was.
    pub fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// After a success: whether a failure had been let through (so that the
    /// recovery is worth a line of its own). Forgets the failure.
    pub fn admit_recovery(&mut self) -> bool {
        let was_failing = self.last.is_some();
        self.reset();
        was_failing
    }

    /// Forgets the failure: the next one is logged at once.
    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_clear_and_events_stay() {
        let health = Health::default();
        health.note("segment 7 was damaged".into());
        health.set("index spans", Some("commit failing: disk full".into()));
        assert!(health.is_degraded());
        assert_eq!(health.problems().len(), 2);
        health.set("index spans", None);
        assert!(!health.is_degraded());
        assert_eq!(health.problems(), vec!["segment 7 was damaged".to_string()]);
    }

    #[test]
    fn a_throttle_admits_once_per_interval_and_counts_the_rest() {
        let mut throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        throttle.reset();
        assert_eq!(throttle.admit(), Some(0));
        let mut every_time = Throttle::new(Duration::ZERO);
        assert_eq!(every_time.admit(), Some(0));
        assert_eq!(every_time.admit(), Some(0));
    }
}
