//! What the learned models say about the state space, for the app's views and for diagnosis:
//! heatmaps of the latent heads over a 2-D grid of ground-truth states, a 2-D PCA of latents,
//! the dynamics' one-step error off the demonstrated actions, and the
//! gap between what the planner imagines for its best plan and what that plan really leads to;
//! and a sweep's results over seeds ([`sweep`]).

pub mod colormap;
pub mod dynamics_error;
pub mod heatmap;
pub mod pca;
pub mod plan_check;
pub mod sweep;
