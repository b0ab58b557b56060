//! Presentation of the library's long-running jobs on a terminal: progress bars and summaries.
//! Only the `ls3` binary uses this; the work itself lives in the library.

pub mod train;

use indicatif::{ProgressBar, ProgressStyle};
use ls3::train::phases::PhaseProgress;
use std::collections::HashMap;

/// One progress bar per phase, created when the phase first reports.
#[derive(Default)]
pub struct PhaseBars {
    bars: HashMap<String, ProgressBar>,
}

impl PhaseBars {
    /// Shows `p` (phase name, i/n, ETA, latest loss).
    pub fn update(&mut self, p: &PhaseProgress) {
        let bar = self.bars.entry(p.phase.clone()).or_insert_with(|| {
            let b = ProgressBar::new(p.total as u64);
            b.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} ({eta}) {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(p.phase.clone());
            b
        });
        bar.set_position(p.done as u64);
        if let Some(loss) = p.loss {
            bar.set_message(format!("loss {loss:.5}"));
        }
        if p.done >= p.total {
            bar.finish();
        }
    }
}
