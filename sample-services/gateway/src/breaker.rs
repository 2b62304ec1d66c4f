//! A circuit breaker: closed (calls go through, consecutive failures counted), open
//! (calls refused at once until `open_for` has passed), half-open (one trial call:
//! success closes, failure opens again).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: State,
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
    threshold: u32,
    open_for: Duration,
}

/// What the breaker says about a call about to be made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Allowed,
    /// Refused: the breaker is open (or a half-open trial is already running).
    Refused,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: State::Closed,
            failures: 0,
            opened_at: None,
            trial_in_flight: false,
            threshold,
            open_for,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Asks to make a call at `now`; may move open -> half-open. Returns the
    /// admission and the state change, if any.
    pub(crate) fn admit(&mut self, now: Instant) -> (Admission, Option<(State, State)>) {
        match self.state {
            State::Closed => (Admission::Allowed, None),
            State::Open => {
                if self
                    .opened_at
                    .is_some_and(|at| now.duration_since(at) >= self.open_for)
                {
                    self.state = State::HalfOpen;
                    self.trial_in_flight = true;
                    (Admission::Allowed, Some((State::Open, State::HalfOpen)))
                } else {
                    (Admission::Refused, None)
                }
            }
            State::HalfOpen if !self.trial_in_flight => {
                self.trial_in_flight = true;
                (Admission::Allowed, None)
            }
            State::HalfOpen => (Admission::Refused, None),
        }
    }

    /// Records a call's outcome; returns the state change, if any.
    pub(crate) fn record(&mut self, success: bool, now: Instant) -> Option<(State, State)> {
        let before = self.state;
        if success {
            self.failures = 0;
            self.trial_in_flight = false;
            self.state = State::Closed;
        } else {
            self.failures += 1;
            self.trial_in_flight = false;
            if self.state == State::HalfOpen || self.failures >= self.threshold {
                self.state = State::Open;
                self.opened_at = Some(now);
            }
        }
        (before != self.state).then_some((before, self.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_good_trial() {
        let start = Instant::now();
        let mut breaker = Breaker::new(3, Duration::from_secs(5));
        for _ in 0..2 {
            assert_eq!(breaker.admit(start).0, Admission::Allowed);
            assert_eq!(breaker.record(false, start), None);
        }
        assert_eq!(
            breaker.record(false, start),
            Some((State::Closed, State::Open))
        );
        assert_eq!(
            breaker.admit(start + Duration::from_secs(1)).0,
            Admission::Refused
        );
        let later = start + Duration::from_secs(5);
        assert_eq!(
            breaker.admit(later),
            (Admission::Allowed, Some((State::Open, State::HalfOpen)))
        );
        assert_eq!(
            breaker.admit(later).0,
            Admission::Refused,
            "one trial at a time"
        );
        assert_eq!(
            breaker.record(true, later),
            Some((State::HalfOpen, State::Closed))
        );
    }

    #[test]
    fn a_failed_trial_opens_again() {
        let start = Instant::now();
        let mut breaker = Breaker::new(1, Duration::from_secs(1));
        breaker.record(false, start);
        let later = start + Duration::from_secs(1);
        breaker.admit(later);
        assert_eq!(
            breaker.record(false, later),
            Some((State::HalfOpen, State::Open))
        );
        assert_eq!(breaker.admit(later).0, Admission::Refused);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let now = Instant::now();
        let mut breaker = Breaker::new(2, Duration::from_secs(1));
        breaker.record(false, now);
        breaker.record(true, now);
        assert_eq!(breaker.record(false, now), None);
        assert_eq!(breaker.state(), State::Closed);
    }
}
