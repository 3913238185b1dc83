//! Consecutive-result counting, as the kubelet's prober worker does: a
//! result counts only after `successThreshold` (or `failureThreshold`) of
//! the same in a row.

/// The thresholded state of one probe.
#[derive(Debug)]
pub(super) struct Thresholds {
    success: u32,
    failure: u32,
    /// The last attempt's result and how many in a row ended so.
    last: Option<(bool, u32)>,
    /// The outcome reported so far (`None` until first decided).
    decided: Option<bool>,
}

impl Thresholds {
    pub(super) fn new(success: u32, failure: u32) -> Self {
        Self {
            success: success.max(1),
            failure: failure.max(1),
            last: None,
            decided: None,
        }
    }

    /// Records an attempt; returns the new outcome when it changes (or is
    /// first decided).
    pub(super) fn observe(&mut self, ok: bool) -> Option<bool> {
        let run = match self.last {
            Some((last, run)) if last == ok => run.saturating_add(1),
            _ => 1,
        };
        self.last = Some((ok, run));
        let needed = if ok { self.success } else { self.failure };
        (run >= needed && self.decided != Some(ok)).then(|| {
            self.decided = Some(ok);
            ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Thresholds, attempts: &[bool]) -> Vec<Option<bool>> {
        attempts.iter().map(|ok| t.observe(*ok)).collect()
    }

    #[test]
    fn failure_after_n_in_a_row_and_recovery_after_success_threshold() {
        let mut t = Thresholds::new(2, 3);
        assert_eq!(
            feed(
                &mut t,
                &[true, true, true, false, false, true, false, false, false, false]
            ),
            [
                None,
                Some(true),
                None,
                None,
                None,
                None,
                None,
                None,
                Some(false),
                None
            ]
        );
        assert_eq!(
            feed(&mut t, &[true, false, true, true]),
            [None, None, None, Some(true)]
        );
    }

    #[test]
    fn first_decision_is_reported_either_way() {
        let mut t = Thresholds::new(1, 1);
        assert_eq!(
            feed(&mut t, &[false, false, true]),
            [Some(false), None, Some(true)]
        );
    }
}
