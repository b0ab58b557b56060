//! Data: episodes and their labels, `.npy` arrays, on-disk demo sets, and demo collection.

pub mod collect;
pub mod dataset;
pub mod episode;
pub mod npy;
