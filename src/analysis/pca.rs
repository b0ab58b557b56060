//! A two-component principal component analysis for the latent view: the covariance of at most
//! a few thousand 32-d points, its two leading eigenvectors by power iteration with deflation.

/// The projection onto the two directions of largest variance.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    /// Mean of the fitted points.
    pub mean: Vec<f32>,
    /// Unit directions, the first of largest variance; each has the sign that makes its largest
    /// coordinate positive, so refits of similar data point the same way.
    pub components: [Vec<f32>; 2],
    /// Fraction of the total variance along each component.
    pub explained: [f32; 2],
}

impl Pca {
    /// Fits `rows` (each `dim` values, row after row). `None` for no points or `dim` 0.
    pub fn fit(rows: &[f32], dim: usize) -> Option<Self> {
        if dim == 0 || rows.len() < dim {
            return None;
        }
        let n = rows.len() / dim;
        let mut mean = vec![0.0f64; dim];
        for row in rows.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; dim * dim];
        let mut centred = vec![0.0f64; dim];
        for row in rows.chunks_exact(dim) {
            for ((c, &x), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = x as f64 - m;
            }
            for i in 0..dim {
                for j in i..dim {
                    cov[i * dim + j] += centred[i] * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in i..dim {
                let v = cov[i * dim + j] / n as f64;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        let total: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
        let (v1, l1) = leading_eigenvector(&cov, dim);
        deflate(&mut cov, dim, &v1, l1);
        let (v2, l2) = leading_eigenvector(&cov, dim);
        let ratio = |l: f64| {
            if total > 0.0 {
                (l.max(0.0) / total) as f32
            } else {
                0.0
            }
        };
        let unit = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        Some(Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            components: [unit(v1), unit(v2)],
            explained: [ratio(l1), ratio(l2)],
        })
    }

    /// Coordinates of `z` in the plane of the two components.
    pub fn project(&self, z: &[f32]) -> [f32; 2] {
        project(&self.mean, &self.components, z)
    }
}

/// Coordinates of `z − mean` along two (unit) components.
pub fn project(mean: &[f32], components: &[Vec<f32>; 2], z: &[f32]) -> [f32; 2] {
    let dot = |c: &[f32]| -> f32 {
        z.iter()
            .zip(mean)
            .zip(c)
            .map(|((z, m), c)| (z - m) * c)
            .sum()
    };
    [dot(&components[0]), dot(&components[1])]
}

/// Power iteration on a symmetric positive semi-definite `dim × dim` matrix: the unit
/// eigenvector of the largest eigenvalue, and that eigenvalue.
fn leading_eigenvector(m: &[f64], dim: usize) -> (Vec<f64>, f64) {
    // A start that is not orthogonal to the leading eigenvector for any realistic data.
    let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + 0.1 * i as f64).collect();
    normalise(&mut v);
    let mut lambda = 0.0;
    for _ in 0..500 {
        let mut w = mat_vec(m, dim, &v);
        let norm = normalise(&mut w);
        if norm == 0.0 {
            // The matrix is zero on everything left: any unit vector orthogonal to nothing.
            return (v, 0.0);
        }
        let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
        v = w;
        lambda = norm;
        if change < 1e-10 {
            break;
        }
    }
    let biggest = v
        .iter()
        .copied()
        .fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
    if biggest < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    (v, lambda)
}

/// Removes the `lambda · v vᵀ` part, so the next power iteration finds the next eigenvector.
fn deflate(m: &mut [f64], dim: usize, v: &[f64], lambda: f64) {
    for i in 0..dim {
        for j in 0..dim {
            m[i * dim + j] -= lambda * v[i] * v[j];
        }
    }
}

fn mat_vec(m: &[f64], dim: usize, v: &[f64]) -> Vec<f64> {
    (0..dim)
        .map(|i| (0..dim).map(|j| m[i * dim + j] * v[j]).sum())
        .collect()
}

/// Scales `v` to unit length; returns its former length.
fn normalise(v: &mut [f64]) -> f64 {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_directions_of_largest_variance_in_order() {
        // Points spread widely along (1, 1, 0)/√2, less along z and barely along (1, −1, 0)/√2.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        // A full grid: the three spreads are uncorrelated by construction.
        let mut rows = Vec::new();
        for a in -10..=10 {
            for b in [-2.0f32, 2.0] {
                for c in [-0.01f32, 0.01] {
                    let a = a as f32;
                    rows.extend([5.0 + a * s + c * s, -1.0 + a * s - c * s, 2.0 + b]);
                }
            }
        }
        let pca = Pca::fit(&rows, 3).expect("fits");
        let [first, second] = &pca.components;
        assert!(
            (first[0] - s).abs() < 1e-3 && (first[1] - s).abs() < 1e-3,
            "{first:?}"
        );
        assert!(first[2].abs() < 1e-3);
        assert!((second[2].abs() - 1.0).abs() < 1e-3, "{second:?}");
        let dot: f32 = first.iter().zip(second).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-4, "components are orthogonal");
        assert!(pca.explained[0] > pca.explained[1] && pca.explained[1] > 0.0);
        assert!(pca.explained[0] + pca.explained[1] <= 1.0 + 1e-5);
        // The mean projects to the origin.
        assert_eq!(pca.project(&pca.mean.clone()), [0.0, 0.0]);
    }

    #[test]
    fn nothing_to_fit_gives_none_and_equal_points_no_variance() {
        assert!(Pca::fit(&[], 3).is_none());
        let pca = Pca::fit(&[1.0, 2.0, 1.0, 2.0], 2).expect("fits");
        assert_eq!(pca.mean, [1.0, 2.0]);
        assert_eq!(pca.explained, [0.0, 0.0]);
    }
}
