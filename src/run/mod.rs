//! Run directories (`outputs/<date>/<time>/`): configuration, CSV logs and image grids.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run's output folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `<root>/<YYYY-MM-DD>/<HH-MM-SS>` (UTC), adding a suffix if that already exists, so
    /// no run ever writes into another's folder.
    pub fn create(root: &Path) -> Result<Self> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (date, time) = utc_stamp(secs);
        let day = root.join(date);
        std::fs::create_dir_all(&day).with_context(|| format!("creating {}", day.display()))?;
        for k in 0.. {
            let name = if k == 0 {
                time.clone()
            } else {
                format!("{time}-{k}")
            };
            let path = day.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        unreachable!("some suffix is free")
    }

    /// Uses an existing folder (resuming) or creates it.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Writes `value` as pretty JSON to `<run>/<name>` atomically.
    pub fn write_json(&self, name: &str, value: &impl serde::Serialize) -> Result<PathBuf> {
        let path = self.path.join(name);
        let bytes = serde_json::to_vec_pretty(value).context("serialising JSON")?;
        crate::files::write_atomic(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// `(YYYY-MM-DD, HH-MM-SS)` of a Unix time, in UTC.
pub fn utc_stamp(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil-from-days (proleptic Gregorian), valid for any date after 1970
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}-{:02}-{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// An append-only CSV file with a fixed header; each row is flushed so a crash loses nothing.
pub struct CsvLog {
    file: std::fs::File,
    columns: usize,
    path: PathBuf,
}

impl CsvLog {
    /// Opens `path` for appending, writing `header` if the file is new or empty.
    pub fn open(path: &Path, header: &[&str]) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut log = Self {
            file,
            columns: header.len(),
            path: path.to_path_buf(),
        };
        if log.file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            log.write_line(&header.join(","))?;
        }
        Ok(log)
    }

    /// Appends one row (must have as many fields as the header).
    pub fn row(&mut self, fields: &[String]) -> Result<()> {
        anyhow::ensure!(
            fields.len() == self.columns,
            "{}: row has {} fields, header {}",
            self.path.display(),
            fields.len(),
            self.columns
        );
        self.write_line(&fields.join(","))
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Tiles RGB images (each channel-major `3×64×64` floats in 0..1, clamped) into a grid PNG with
/// `cols` columns and a 2-pixel gap.
pub fn save_grid_png(path: &Path, images: &[Vec<f32>], cols: usize) -> Result<()> {
    const S: usize = crate::env::IMAGE_SIZE;
    const GAP: usize = 2;
    let cols = cols.max(1).min(images.len().max(1));
    let rows = images.len().div_ceil(cols);
    let (w, h) = (cols * (S + GAP) + GAP, rows * (S + GAP) + GAP);
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([40, 40, 40]));
    for (k, chw) in images.iter().enumerate() {
        let (ox, oy) = (GAP + (k % cols) * (S + GAP), GAP + (k / cols) * (S + GAP));
        for y in 0..S {
            for x in 0..S {
                let px =
                    |c: usize| (chw[c * S * S + y * S + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                img.put_pixel(
                    (ox + x) as u32,
                    (oy + y) as u32,
                    image::Rgb([px(0), px(1), px(2)]),
                );
            }
        }
    }
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes an animated GIF (looping) of RGB frames, each channel-major `3×64×64` bytes, scaled up
/// `scale`× with nearest-neighbour pixels and shown `delay_ms` each. Written atomically.
pub fn save_gif(path: &Path, frames: &[&[u8]], scale: u32, delay_ms: u32) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    const S: usize = crate::env::IMAGE_SIZE;
    let scale = scale.max(1);
    let side = S as u32 * scale;
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .context("configuring the GIF encoder")?;
        for chw in frames {
            anyhow::ensure!(chw.len() == 3 * S * S, "GIF frame of {} bytes", chw.len());
            let img = image::RgbaImage::from_fn(side, side, |x, y| {
                let i = (y / scale) as usize * S + (x / scale) as usize;
                image::Rgba([chw[i], chw[S * S + i], chw[2 * S * S + i], 255])
            });
            let delay = image::Delay::from_numer_denom_ms(delay_ms, 1);
            encoder
                .encode_frame(image::Frame::from_parts(img, 0, 0, delay))
                .with_context(|| format!("encoding {}", path.display()))?;
        }
    }
    crate::files::write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamp_matches_known_dates() {
        assert_eq!(utc_stamp(0), ("1970-01-01".into(), "00-00-00".into()));
        assert_eq!(
            utc_stamp(951_782_400),
            ("2000-02-29".into(), "00-00-00".into())
        );
        assert_eq!(
            utc_stamp(1_795_614_245),
            ("2026-11-25".into(), "13-44-05".into())
        );
    }

    #[test]
    fn run_dirs_never_collide_and_csv_appends() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path()).unwrap();
        let b = RunDir::create(root.path()).unwrap();
        assert_ne!(a.path, b.path);
        let csv = a.path.join("loss.csv");
        CsvLog::open(&csv, &["iter", "loss"])
            .unwrap()
            .row(&["1".into(), "0.5".into()])
            .unwrap();
        CsvLog::open(&csv, &["iter", "loss"])
            .unwrap()
            .row(&["2".into(), "0.4".into()])
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "iter,loss\n1,0.5\n2,0.4\n"
        );
        assert!(
            CsvLog::open(&csv, &["iter", "loss"])
                .unwrap()
                .row(&["3".into()])
                .is_err()
        );
    }

    #[test]
    fn grid_png_has_the_tiled_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let imgs = vec![vec![0.5f32; 3 * 64 * 64]; 5];
        save_grid_png(&path, &imgs, 4).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (4 * 66 + 2, 2 * 66 + 2));
    }
}
