//! What the learned models say about the state space, for the app's views and for diagnosis:
//! heatmaps of the latent heads over a 2-D grid of ground-truth states, a 2-D PCA of latents,
//! and decoded latents as frames.

pub mod colormap;
pub mod heatmap;
pub mod imagine;
pub mod pca;
