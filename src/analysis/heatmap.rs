//! Safe-set, value, constraint and goal maps over an environment's 2-D state grid: every grid
//! state is rendered to pixels, encoded with the VAE (encoder mean) and scored by the heads.
//!
//! The grid's axes: navigation x–y (canvas units); reacher shoulder–wrist angles (velocities
//! zero); push the pusher's x–y, with the blocks where `base` has them.

use crate::env::{Env, EnvKind};
use crate::model::agent::Agent;
use anyhow::Result;
use candle_core::Tensor;

/// One of the four maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Head {
    SafeSet,
    Value,
    Constraint,
    Goal,
}

impl Head {
    pub const ALL: [Head; 4] = [Head::SafeSet, Head::Value, Head::Constraint, Head::Goal];

    pub fn name(self) -> &'static str {
        match self {
            Head::SafeSet => "safe set",
            Head::Value => "value",
            Head::Constraint => "constraint",
            Head::Goal => "goal",
        }
    }
}

/// The grid's two axes: what they mean and their ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct Axes {
    pub x_label: &'static str,
    pub y_label: &'static str,
    pub x: [f64; 2],
    pub y: [f64; 2],
}

/// The axes of `kind`'s grid.
pub fn axes(kind: EnvKind) -> Axes {
    use std::f64::consts::PI;
    match kind {
        EnvKind::Navigation => Axes {
            x_label: "x",
            y_label: "y",
            x: [0.0, 180.0],
            y: [0.0, 150.0],
        },
        EnvKind::Reacher => Axes {
            x_label: "shoulder angle (rad)",
            y_label: "wrist angle (rad)",
            x: [-PI, PI],
            y: [-PI, PI],
        },
        EnvKind::Push => Axes {
            x_label: "pusher x",
            y_label: "pusher y",
            x: [-crate::env::push::WORKSPACE, crate::env::push::WORKSPACE],
            y: [-crate::env::push::WORKSPACE, crate::env::push::WORKSPACE],
        },
    }
}

/// The ground-truth state at grid point `(gx, gy)`, with everything the grid does not vary taken
/// from `base` (push: the blocks; reacher: velocities are zero).
pub fn grid_state(kind: EnvKind, base: &[f64], gx: f64, gy: f64) -> Vec<f64> {
    match kind {
        EnvKind::Navigation => vec![gx, gy],
        EnvKind::Reacher => vec![gx, gy, 0.0, 0.0],
        EnvKind::Push => {
            let mut s = base.to_vec();
            s[0] = gx;
            s[1] = gy;
            s
        }
    }
}

/// Heads evaluated on an `nx × ny` grid; `values[head][j * nx + i]` is the value at column `i`
/// (x ascending) and row `j` (y ascending).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmaps {
    pub kind: EnvKind,
    pub axes: Axes,
    pub nx: usize,
    pub ny: usize,
    /// Safe-set probability, value (ensemble mean), constraint probability, goal probability.
    pub values: [Vec<f32>; 4],
}

impl Heatmaps {
    /// The map of one head.
    pub fn get(&self, head: Head) -> &[f32] {
        &self.values[head as usize]
    }

    /// Value of `head` at grid cell `(i, j)`.
    pub fn at(&self, head: Head, i: usize, j: usize) -> f32 {
        self.get(head)[j * self.nx + i]
    }

    /// Grid coordinates of cell `(i, j)`'s centre.
    pub fn cell_center(&self, i: usize, j: usize) -> [f64; 2] {
        let f =
            |r: [f64; 2], k: usize, n: usize| r[0] + (r[1] - r[0]) * (k as f64 + 0.5) / n as f64;
        [f(self.axes.x, i, self.nx), f(self.axes.y, j, self.ny)]
    }
}

/// Renders every grid state in `env` (stacked `frame_stack` times, as a resting observation),
/// encodes it and evaluates the four heads.
pub fn compute(
    agent: &Agent,
    env: &dyn Env,
    base: &[f64],
    nx: usize,
    ny: usize,
) -> Result<Heatmaps> {
    let kind = env.kind();
    let axes = axes(kind);
    let stack = kind.frame_stack();
    let mut images = Vec::with_capacity(nx * ny);
    let mut grid = Heatmaps {
        kind,
        axes: axes.clone(),
        nx,
        ny,
        values: Default::default(),
    };
    for j in 0..ny {
        for i in 0..nx {
            let [gx, gy] = grid.cell_center(i, j);
            let frame = env.render_state(&grid_state(kind, base, gx, gy));
            let mut obs = Vec::with_capacity(stack * frame.0.len());
            for _ in 0..stack {
                obs.extend_from_slice(&frame.0);
            }
            images.push(obs);
        }
    }
    let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let (mean, _) = agent.encode_observations(&refs)?;
    let z = Tensor::from_vec(mean, (nx * ny, agent.spec.latent), &agent.device)?;
    let col = |t: Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    grid.values = [
        col(agent.safe_set.online.prob(&z)?)?,
        col(agent.value.forward(&z)?)?,
        col(agent.constraint.prob(&z)?)?,
        col(agent.goal.prob(&z)?)?,
    ];
    Ok(grid)
}

/// Writes the four maps side by side as a PNG (`scale` pixels per cell; row 0 at the top, which
/// for navigation matches the camera image). Probabilities use the fixed range [0, 1], the value
/// its own minimum..maximum.
pub fn save_png(maps: &Heatmaps, path: &std::path::Path, scale: u32) -> Result<()> {
    use super::colormap::color;
    let (nx, ny, s) = (maps.nx as u32, maps.ny as u32, scale.max(1));
    let gap = 4;
    let w = 4 * nx * s + 3 * gap;
    let mut img = image::RgbImage::from_pixel(w, ny * s, image::Rgb([255, 255, 255]));
    for (p, head) in Head::ALL.into_iter().enumerate() {
        let v = maps.get(head);
        let (lo, hi) = match head {
            Head::Value => v
                .iter()
                .filter(|x| x.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                }),
            _ => (0.0, 1.0),
        };
        let span = (hi - lo).max(1e-6);
        for j in 0..ny {
            for i in 0..nx {
                let c = color((maps.at(head, i as usize, j as usize) - lo) / span);
                for dy in 0..s {
                    for dx in 0..s {
                        let x = p as u32 * (nx * s + gap) + i * s + dx;
                        img.put_pixel(x, j * s + dy, image::Rgb(c));
                    }
                }
            }
        }
    }
    img.save(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_cover_the_axes_and_maps_have_every_cell() {
        let device = candle_core::Device::Cpu;
        let spec = crate::model::agent::AgentSpec::for_env(EnvKind::Navigation);
        let agent = Agent::new(spec, &device, 0).unwrap();
        let env = EnvKind::Navigation.make(0);
        let maps = compute(&agent, env.as_ref(), &env.state(), 6, 5).unwrap();
        assert_eq!(maps.cell_center(0, 0), [15.0, 15.0]);
        assert_eq!(maps.cell_center(5, 4), [165.0, 135.0]);
        for head in Head::ALL {
            assert_eq!(maps.get(head).len(), 30);
            assert!(
                maps.get(head).iter().all(|v| v.is_finite()),
                "{}",
                head.name()
            );
        }
        // Probabilities are probabilities; different places give different latents.
        assert!(
            maps.get(Head::SafeSet)
                .iter()
                .all(|&p| (0.0..=1.0).contains(&p))
        );
        assert!(maps.at(Head::Value, 0, 0) != maps.at(Head::Value, 5, 4));
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("maps.png");
        save_png(&maps, &png, 4).unwrap();
        let img = image::open(&png).unwrap();
        assert_eq!((img.width(), img.height()), (4 * 24 + 12, 20));
    }
}
