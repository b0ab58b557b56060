//! How long the UI takes to build a frame, over the last few hundred frames, for the top bar's
//! readout (so a slow view shows up while using the app, not only in a profiler).

use std::collections::VecDeque;
use std::time::Duration;

/// Frames the percentiles look back over.
pub const WINDOW: usize = 300;

/// The most recent frame times, oldest first.
#[derive(Clone, Debug)]
pub struct FrameTimes {
    samples: VecDeque<Duration>,
    capacity: usize,
}

impl Default for FrameTimes {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl FrameTimes {
    /// Keeps the last `capacity` frames (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records one frame, forgetting the oldest beyond the window.
    pub fn push(&mut self, frame: Duration) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(frame);
    }

    /// Frames recorded (at most the window).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// No frame recorded yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The nearest-rank `q`-quantile (`q` in 0..=1) of the window; `None` before any frame.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let samples: Vec<Duration> = self.samples.iter().copied().collect();
        percentile(&samples, q)
    }

    /// Median and 95th percentile.
    pub fn p50_p95(&self) -> Option<(Duration, Duration)> {
        Some((self.percentile(0.5)?, self.percentile(0.95)?))
    }
}

/// The nearest-rank `q`-quantile (`q` in 0..=1) of `samples`; `None` when there are none.
pub fn percentile(samples: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n.max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank_of_the_recent_window() {
        let ms = Duration::from_millis;
        let mut t = FrameTimes::new(100);
        assert_eq!(t.p50_p95(), None);
        for i in (1..=100).rev() {
            t.push(ms(i));
        }
        assert_eq!(t.p50_p95(), Some((ms(50), ms(95))));
        assert_eq!(t.percentile(0.0), Some(ms(1)));
        assert_eq!(t.percentile(1.0), Some(ms(100)));
        // A hundred slow frames push the fast ones out of the window.
        for _ in 0..100 {
            t.push(ms(40));
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.p50_p95(), Some((ms(40), ms(40))));
    }
}
