//! A lock file that says "this process is training that shared folder", safe on a shared file
//! system: the holder touches it while it works, so a lock left by a killed worker goes stale
//! and another worker takes over (and resumes what the first one left).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How often the holder touches its lock.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A lock untouched for this long belongs to a worker that died.
const STALE: Duration = Duration::from_secs(90);

/// A held lock; dropping it removes the file.
pub struct Lock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Lock {
    /// Takes the lock at `path` if it is free or stale; `None` while another worker holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
        if path.exists() && is_stale(path) {
            // Two workers that find the same stale lock at the same instant could both take
            // it; workers start seconds apart in practice, and the stale window is long.
            let _ = std::fs::remove_file(path);
        }
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        use std::io::Write;
        writeln!(file, "{} {}", hostname(), std::process::id())
            .with_context(|| format!("writing {}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, touched) = (stop.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            let step = Duration::from_millis(200);
            let mut since = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                since += step;
                if since >= HEARTBEAT {
                    since = Duration::ZERO;
                    if let Ok(f) = std::fs::File::options().write(true).open(&touched) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        Ok(Some(Self {
            path: path.to_path_buf(),
            stop,
        }))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Untouched for [`STALE`], or written by a process of this machine that no longer exists.
fn is_stale(path: &Path) -> bool {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut words = text.split_whitespace();
    let dead_here = match (
        words.next(),
        words.next().and_then(|p| p.parse::<u32>().ok()),
    ) {
        (Some(host), Some(pid)) => {
            host == hostname()
                && Path::new("/proc/self").exists()
                && !Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    };
    old || dead_here
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_lock_is_exclusive_and_a_dead_holders_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let held = Lock::try_acquire(&path).unwrap().expect("free");
        assert!(Lock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(!path.exists());
        // A lock of this machine whose process is gone (pid beyond any pid_max).
        std::fs::write(&path, format!("{} 4294967295\n", hostname())).unwrap();
        if Path::new("/proc/self").exists() {
            assert!(Lock::try_acquire(&path).unwrap().is_some());
        }
    }
}
