//! Timing helpers shared by the benchmarks (`mod common;` in each).

use std::time::Instant;

/// CPU time of this process so far (user + system, all threads), in seconds; 0 where unknown.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // numeric fields after the command name and the state: utime and stime come 11th and 12th
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    f.get(10)
        .zip(f.get(11))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Times `f` `runs` times after one warm-up; prints the median, extremes and CPU time per run
/// (with the cores it kept busy) and returns the median in seconds.
pub fn time(name: &str, runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let cpu = cpu_seconds();
    let mut ts: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let cpu = (cpu_seconds() - cpu) / runs as f64;
    ts.sort_by(|a, b| a.total_cmp(b));
    let median = ts[runs / 2];
    println!(
        "{name:<34} median {median:.5} s  min {:.5} s  max {:.5} s  ({runs} runs, cpu {cpu:.4} s/run = {:.2} cores)",
        ts[0],
        ts[runs - 1],
        cpu / median.max(1e-9),
    );
    median
}
