//! `ls3 sweep` end to end on the tiny navigation configuration (`assets/configs/tiny_sweep.json`):
//! 2 seeds × 2 ablations run locally, interrupted as Ctrl-C does and started again: a finished
//! run is never redone, the interrupted one resumes, the report counts every seed, and the
//! cluster files in `deploy/` run commands the CLI accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

fn ls3(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ls3"))
        .args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .expect("ls3 runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Plans navigation, seeds 0-1, LS3 and no safe set (4 runs) of the tiny configuration.
fn plan(dir: &Path) -> Output {
    let config = repo("assets/configs/tiny_sweep.json");
    ls3(&[
        "sweep",
        "plan",
        "--out",
        dir.to_str().unwrap(),
        "--envs",
        "navigation",
        "--seeds",
        "0-1",
        "--ablations",
        "none,no-safe-set",
        "--config",
        config.to_str().unwrap(),
        "--demo-episodes",
        "3",
    ])
}

/// Modification times of every file under `dir`.
fn mtimes(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), e.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `finished` of a run folder's `state.json` (`None` before it exists).
fn status_of(run: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(run.join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state["finished"].as_bool()
}

/// Starts `ls3 sweep local --jobs 1` in its own process group, waits until run 0
/// (`navigation-none-s0`) has finished and another run folder holds its configuration, then
/// sends SIGINT to the whole group (with SIGINT's default action, as under a terminal's
/// Ctrl-C, even where the test itself runs with SIGINT ignored). Returns run 0's file times at
/// that moment and the folder of the run that was under way.
fn interrupt_after_first_run(sweep: &Path) -> (Vec<(PathBuf, SystemTime)>, PathBuf) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_ls3"));
    // SAFETY: `signal` is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command
        .args(["sweep", "local", sweep.to_str().unwrap(), "--jobs", "1"])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("ls3 sweep local starts");
    let run0 = sweep.join("runs/navigation-none-s0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    let next = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not get past run 0"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sweep local ended before it was interrupted"
        );
        if status_of(&run0) == Some(true) {
            let started = std::fs::read_dir(sweep.join("runs"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| *p != run0 && p.join("config.json").is_file());
            if let Some(p) = started {
                break p;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let before = mtimes(&run0);
    let pgid = format!("-{}", child.id());
    let killed = Command::new("kill")
        .args(["-INT", "--", &pgid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(!exit.success(), "sweep local was not interrupted: {exit:?}");
    (before, next)
}

#[test]
fn a_tiny_sweep_runs_locally_skips_finished_runs_and_reports_every_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    let o = plan(&sweep);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4 runs"), "{}", text(&o));
    // Planning the same sweep again is fine.
    let o = plan(&sweep);
    assert!(o.status.success(), "{}", text(&o));

    // Interrupt `sweep local` the way Ctrl-C does (SIGINT to its process group, workers
    // included) once run 0 has finished and the next run is under way.
    let run0 = sweep.join("runs/navigation-none-s0");
    let (before, interrupted) = interrupt_after_first_run(&sweep);
    assert!(
        status_of(&interrupted) != Some(true),
        "{} finished before the interrupt",
        interrupted.display()
    );
    let o = ls3(&["sweep", "local", sweep.to_str().unwrap(), "--jobs", "2"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("run 0 navigation-none-s0: finished earlier"),
        "{out}"
    );
    for name in [
        "navigation-no-safe-set-s0",
        "navigation-none-s1",
        "navigation-no-safe-set-s1",
    ] {
        assert!(out.contains(&format!("{name}: finished after")), "{out}");
    }
    assert_eq!(mtimes(&run0), before, "the finished run was touched");
    // The interrupted run went on from where it stopped.
    assert_eq!(status_of(&interrupted), Some(true));
    let log = std::fs::read_to_string(interrupted.join("log.txt")).unwrap();
    assert!(log.contains("resuming"), "{log}");

    // Each seed trained its own demos and initial agent, and both its runs started from them.
    for seed in [0, 1] {
        let shared = sweep.join(format!("shared/navigation-s{seed}"));
        assert!(shared.join("checkpoints/init/agent.json").is_file());
        for ablation in ["none", "no-safe-set"] {
            let config = std::fs::read_to_string(
                sweep.join(format!("runs/navigation-{ablation}-s{seed}/config.json")),
            )
            .unwrap();
            let config: serde_json::Value = serde_json::from_str(&config).unwrap();
            assert_eq!(config["seed"], seed);
            assert!(
                config["checkpoint"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("navigation-s{seed}/checkpoints/init")),
                "{config}"
            );
        }
    }

    // Running an index again does nothing.
    let run3 = sweep.join("runs/navigation-no-safe-set-s1");
    let before = mtimes(&run3);
    let o = ls3(&["sweep", "run", sweep.to_str().unwrap(), "--index", "3"]);
    assert!(text(&o).contains("run 3: finished earlier"), "{}", text(&o));
    assert_eq!(mtimes(&run3), before);

    let o = ls3(&["sweep", "report", sweep.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("report.json")).unwrap()).unwrap();
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    for v in variants {
        assert_eq!(v["n"], 2, "{v}");
        assert_eq!(v["rounds"].as_array().unwrap().len(), 2, "{v}");
        let s = v["last_success_rate"]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s), "{v}");
    }
    assert!(report["unfinished"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(sweep.join("report.md")).unwrap();
    assert!(
        md.contains("| LS3 | 2 |") && md.contains("| no safe set | 2 |"),
        "{md}"
    );
    let png = image::open(sweep.join("report.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);
}

#[test]
fn a_sweep_refuses_an_index_out_of_range_and_a_different_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    assert!(plan(&sweep).status.success());
    let o = ls3(&["sweep", "run", sweep.to_str().unwrap(), "--index", "4"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("runs 0-3"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_ls3"))
        .args(["sweep", "run", sweep.to_str().unwrap()])
        .env("SLURM_ARRAY_TASK_ID", "7")
        .output()
        .unwrap();
    assert!(text(&o).contains("index 7 is out of range"), "{}", text(&o));
    let o = ls3(&[
        "sweep",
        "plan",
        "--out",
        sweep.to_str().unwrap(),
        "--seeds",
        "0-2",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("different sweep"), "{}", text(&o));
    assert!(!sweep.join("runs").exists());
}

/// Runs `args` (the cluster file's command without the program) against a planned sweep with
/// the array index in `var` out of range: the CLI must parse them and get as far as the plan.
fn assert_worker_command_is_accepted(args: &[String], var: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_ls3"))
        .args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .env(var, "99")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
    assert!(
        text(&o).contains("index 99 is out of range: the sweep has runs 0-3"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_slurm_array_script_runs_a_sweep_worker_the_cli_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    assert!(plan(&sweep).status.success());
    let script = std::fs::read_to_string(repo("deploy/slurm-array.sh")).unwrap();
    assert!(script.starts_with("#!/bin/bash"));
    let array = script
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("an #SBATCH --array line");
    assert!(array.starts_with("0-") && array.contains('%'), "{array}");
    let srun = script
        .lines()
        .find(|l| l.starts_with("srun "))
        .expect("an srun line");
    let words: Vec<String> = srun
        .split_whitespace()
        .skip(1)
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    assert_eq!(words[0], "$LS3");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| match w.as_str() {
            "$SWEEP_DIR" => sweep.to_str().unwrap().to_string(),
            w => w.to_string(),
        })
        .collect();
    assert_worker_command_is_accepted(&args, "SLURM_ARRAY_TASK_ID");
}

#[test]
fn the_kubernetes_indexed_job_runs_a_sweep_worker_the_cli_accepts() {
    use yaml_rust2::{Yaml, YamlLoader};
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    assert!(plan(&sweep).status.success());
    let text_yaml = std::fs::read_to_string(repo("deploy/k8s-indexed-job.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text_yaml).unwrap();
    let job = &docs[0];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let strings = |y: &Yaml| -> Vec<String> {
        y.as_vec()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(strings(&container["command"]), ["ls3"]);
    let mount = &container["volumeMounts"][0];
    let path = mount["mountPath"].as_str().unwrap();
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume is declared");
    assert!(!volume["persistentVolumeClaim"]["claimName"].is_badvalue());
    let args: Vec<String> = strings(&container["args"])
        .into_iter()
        .map(|a| a.replace(path, sweep.to_str().unwrap()))
        .collect();
    assert!(
        args.starts_with(&["sweep".into(), "run".into()]),
        "{args:?}"
    );
    assert_worker_command_is_accepted(&args, "JOB_COMPLETION_INDEX");
}
