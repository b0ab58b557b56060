//! LS3 Studio: Latent Space Safe Sets (Wilcox, Balakrishna et al., CoRL 2021) in Rust.
//!
//! The data's journey names the modules: [`env`] (simulators and pixels) → [`data`] (episodes,
//! datasets) → later the models, the planner and the training session. The CLI (`src/main.rs`)
//! and the desktop app ([`app`]) are thin front ends over this library.

pub mod analysis;
pub mod app;
pub mod config;
pub mod cpu;
pub mod data;
pub mod env;
pub mod files;
pub mod model;
pub mod planner;
pub mod run;
pub mod seed;
pub mod train;
pub mod valid;
