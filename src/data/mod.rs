//! Data: episodes and their labels, `.npy` arrays, on-disk demo sets, demo collection, image
//! augmentation, random-action branches off the demos, and the latent replay buffer the latent modules train from.

pub mod augment;
pub mod branch;
pub mod collect;
pub mod dataset;
pub mod episode;
pub mod images;
pub mod npy;
pub mod replay;
