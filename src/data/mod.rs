//! Data: episodes and their labels, the episode player (teachers' demos, the agent's episodes), `.npy` arrays, on-disk
//! demo sets, demo collection, image augmentation, random-action branches off recorded episodes,
//! and the latent replay buffer the latent modules train from.

pub mod augment;
pub mod branch;
pub mod collect;
pub mod dataset;
pub mod demo;
pub mod episode;
pub mod images;
pub mod npy;
pub mod player;
pub mod replay;
