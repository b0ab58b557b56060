//! Sweeps: many runs (environments × seeds × ablations) planned once into `sweep.json` and run
//! one index at a time — by a cluster's job array or by [`local`] on this machine.
//!
//! ```text
//! <sweep>/sweep.json                the plan (plan.rs)
//! <sweep>/shared/<env>-s<seed>/     demos + initial agent of one environment and seed
//! <sweep>/runs/<env>-<ablation>-s<seed>/   one ordinary run folder per planned run
//! <sweep>/logs/<name>.log           what a local worker printed
//! ```

pub mod execute;
pub mod local;
mod lock;
pub mod plan;

pub use execute::{Outcome, RunStatus, run_one, status};
pub use plan::{Base, PlannedRun, SweepPlan, SweepSpec};

/// The run index a cluster's job array gives this worker: `SLURM_ARRAY_TASK_ID`, else
/// Kubernetes' `JOB_COMPLETION_INDEX`.
pub fn index_from_env() -> anyhow::Result<usize> {
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(v) = std::env::var(var) {
            return v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{var}={v:?} is not a run index"));
        }
    }
    anyhow::bail!(
        "no run index: pass --index N, or run inside a job array (SLURM_ARRAY_TASK_ID or \
         JOB_COMPLETION_INDEX)"
    )
}
