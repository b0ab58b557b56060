//! `report.png`: per environment (one row each), success rate (left) and cumulative violations
//! (right) per round, each variant's mean as a line over a ±1 std band. Drawn by hand: axes and
//! light grid lines, no text (the report's Markdown names the colours).

use super::{RoundSpread, SweepReport};
use crate::env::EnvKind;
use crate::planner::Ablation;
use image::{Rgb, RgbImage};

const PANEL_W: u32 = 360;
const PANEL_H: u32 = 220;
const MARGIN: u32 = 24;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const AXIS: Rgb<u8> = Rgb([60, 60, 60]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

/// A curve's mean and std per round.
type Series = fn(&RoundSpread) -> (f32, f32);

/// The colour of an ablation's curves.
pub fn colour(a: Ablation) -> Rgb<u8> {
    match a {
        Ablation::None => Rgb([31, 119, 180]),
        Ablation::NoSafeSet => Rgb([255, 127, 14]),
        Ablation::NoConstraints => Rgb([44, 160, 44]),
    }
}

/// The figure of `report` (one blank row when nothing finished).
pub fn render(report: &SweepReport) -> RgbImage {
    let mut envs: Vec<EnvKind> = Vec::new();
    for v in &report.variants {
        if !envs.contains(&v.env) {
            envs.push(v.env);
        }
    }
    let rows = envs.len().max(1) as u32;
    let mut img = RgbImage::from_pixel(2 * PANEL_W, rows * PANEL_H, BACKGROUND);
    for (row, env) in envs.iter().enumerate() {
        let vs: Vec<_> = report.variants.iter().filter(|v| v.env == *env).collect();
        let rounds = vs.iter().map(|v| v.rounds.len()).max().unwrap_or(0);
        let top = |s: &RoundSpread| s.cumulative_violations.mean + s.cumulative_violations.std;
        let max_viol = vs
            .iter()
            .flat_map(|v| v.rounds.iter().map(top))
            .filter(|x| x.is_finite())
            .fold(1.0f32, f32::max);
        let panels: [(Series, f32); 2] = [
            (|s| (s.success_rate.mean, s.success_rate.std), 1.0),
            (
                |s| (s.cumulative_violations.mean, s.cumulative_violations.std),
                max_viol,
            ),
        ];
        for (col, (get, y_max)) in panels.into_iter().enumerate() {
            let panel = Panel {
                x0: col as u32 * PANEL_W + MARGIN,
                y0: row as u32 * PANEL_H + MARGIN / 2,
                w: PANEL_W - MARGIN * 3 / 2,
                h: PANEL_H - MARGIN * 3 / 2,
                rounds: rounds.max(2),
                y_max,
            };
            panel.axes(&mut img);
            for v in &vs {
                let pts: Vec<(usize, f32, f32)> = v
                    .rounds
                    .iter()
                    .map(|s| (s.round, get(s).0, get(s).1))
                    .filter(|(_, m, _)| m.is_finite())
                    .collect();
                panel.band(&mut img, &pts, colour(v.ablation));
                panel.line(&mut img, &pts, colour(v.ablation));
            }
        }
    }
    img
}

/// One plot's area in pixels and its data ranges (x: rounds 1..=rounds, y: 0..=y_max).
struct Panel {
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
    rounds: usize,
    y_max: f32,
}

impl Panel {
    fn px(&self, round: usize) -> f32 {
        self.x0 as f32 + round as f32 / (self.rounds - 1) as f32 * self.w as f32
    }

    fn py(&self, y: f32) -> f32 {
        let t = (y / self.y_max).clamp(0.0, 1.0);
        (self.y0 + self.h) as f32 - t * self.h as f32
    }

    fn axes(&self, img: &mut RgbImage) {
        for k in 0..=4 {
            let y = (self.y0 + self.h * k / 4).min(img.height() - 1);
            for x in self.x0..=self.x0 + self.w {
                img.put_pixel(x, y, GRID);
            }
        }
        for r in 0..self.rounds {
            let x = self.px(r).round() as u32;
            for y in self.y0..=self.y0 + self.h {
                img.put_pixel(x, y, GRID);
            }
        }
        for x in self.x0..=self.x0 + self.w {
            img.put_pixel(x, self.y0 + self.h, AXIS);
        }
        for y in self.y0..=self.y0 + self.h {
            img.put_pixel(self.x0, y, AXIS);
        }
    }

    /// Shades mean ± std between consecutive rounds, blended at 25 %.
    fn band(&self, img: &mut RgbImage, pts: &[(usize, f32, f32)], c: Rgb<u8>) {
        for pair in pts.windows(2) {
            let ((r0, m0, s0), (r1, m1, s1)) = (pair[0], pair[1]);
            let (xa, xb) = (self.px(r0).round() as u32, self.px(r1).round() as u32);
            for x in xa..=xb {
                let t = if xb > xa {
                    (x - xa) as f32 / (xb - xa) as f32
                } else {
                    0.0
                };
                let (m, s) = (m0 + t * (m1 - m0), s0 + t * (s1 - s0));
                let s = if s.is_finite() { s } else { 0.0 };
                let (ya, yb) = (self.py(m + s).round() as u32, self.py(m - s).round() as u32);
                for y in ya..=yb {
                    let p = img.get_pixel_mut(x, y);
                    for k in 0..3 {
                        p.0[k] = ((p.0[k] as u32 * 3 + c.0[k] as u32) / 4) as u8;
                    }
                }
            }
        }
    }

    /// The mean, 2 pixels wide; a single round is a dot.
    fn line(&self, img: &mut RgbImage, pts: &[(usize, f32, f32)], c: Rgb<u8>) {
        let mut dot = |x: f32, y: f32| {
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = (x.round() as u32 + dx, y.round() as u32 + dy);
                if x < img.width() && y < img.height() {
                    img.put_pixel(x, y, c);
                }
            }
        };
        if let [(r, m, _)] = pts {
            dot(self.px(*r), self.py(*m));
        }
        for pair in pts.windows(2) {
            let ((r0, m0, _), (r1, m1, _)) = (pair[0], pair[1]);
            let (xa, ya, xb, yb) = (self.px(r0), self.py(m0), self.px(r1), self.py(m1));
            let steps = (xb - xa).abs().max((yb - ya).abs()).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let t = k as f32 / steps as f32;
                dot(xa + t * (xb - xa), ya + t * (yb - ya));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Spread, VariantReport};
    use super::*;

    fn spread(mean: f32, std: f32) -> Spread {
        Spread { mean, std }
    }

    #[test]
    fn sweep_plot_draws_each_variant_in_its_colour_with_a_band() {
        let rounds = (0..3)
            .map(|r| RoundSpread {
                round: r,
                seeds: 2,
                success_rate: spread(0.5, 0.25),
                violation_rate: spread(0.0, 0.0),
                mean_cost: spread(40.0, 5.0),
                cumulative_violations: spread(r as f32, 0.5),
            })
            .collect();
        let v = VariantReport {
            env: EnvKind::Navigation,
            ablation: Ablation::NoSafeSet,
            seeds: vec![0, 1],
            n: 2,
            rounds,
            last_success_rate: spread(0.5, 0.25),
            last_violation_rate: spread(0.0, 0.0),
            last_mean_cost: spread(40.0, 5.0),
            demo_cost: spread(30.0, 1.0),
        };
        let report = SweepReport {
            last_rounds: 3,
            variants: vec![v],
            unfinished: vec![],
        };
        let img = render(&report);
        assert_eq!((img.width(), img.height()), (2 * PANEL_W, PANEL_H));
        let orange = colour(Ablation::NoSafeSet);
        assert!(img.pixels().any(|p| *p == orange));
        assert!(!img.pixels().any(|p| *p == colour(Ablation::None)));
        // The band: a blend of orange and white above the success line (0.5 + 0.25 at most).
        let panel_mid_x = MARGIN + (PANEL_W - MARGIN * 3 / 2) / 2;
        let y_line = MARGIN / 2 + (PANEL_H - MARGIN * 3 / 2) / 2;
        let above = img.get_pixel(panel_mid_x, y_line - 10);
        assert!(above.0[0] > above.0[2] && *above != BACKGROUND && *above != orange);
    }
}
