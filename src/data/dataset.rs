//! Demo sets on disk, in the layout of the original code (LS3_SPEC §6): one folder per set, per
//! trajectory `i.json` (transitions without images) plus `i_obs.npy` and `i_next_obs.npy`
//! (uint8, `T×3×64×64`, or `T×k×3×64×64` for frame-stacked observations).

use super::episode::{Episode, Transition, label};
use super::npy;
use crate::env::{FRAME_LEN, IMAGE_SIZE};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a dataset could not be read; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset folder {0} does not exist")]
    Missing(PathBuf),
    #[error("dataset folder {0} holds no trajectories (no <i>.json files)")]
    Empty(PathBuf),
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> DatasetError {
    DatasetError::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

fn obs_shape(ep: &Episode) -> Vec<usize> {
    let mut shape = vec![ep.len()];
    if ep.frame_stack > 1 {
        shape.push(ep.frame_stack);
    }
    shape.extend_from_slice(&[3, IMAGE_SIZE, IMAGE_SIZE]);
    shape
}

/// Writes episode number `i` into the set folder `dir` (which must exist).
pub fn write_episode(dir: &Path, i: usize, ep: &Episode) -> std::io::Result<()> {
    let shape = obs_shape(ep);
    npy::write(&dir.join(format!("{i}_obs.npy")), &shape, &ep.obs)?;
    npy::write(&dir.join(format!("{i}_next_obs.npy")), &shape, &ep.next_obs)?;
    let json = serde_json::to_vec(&ep.transitions).map_err(std::io::Error::other)?;
    crate::files::write_atomic(&dir.join(format!("{i}.json")), &json)
}

/// Reads episode number `i` from the set folder `dir`.
pub fn read_episode(dir: &Path, i: usize) -> Result<Episode, DatasetError> {
    let json_path = dir.join(format!("{i}.json"));
    let text = std::fs::read(&json_path).map_err(|e| file_err(&json_path, e))?;
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| file_err(&json_path, format!("malformed JSON: {e}")))?;
    let items = value
        .as_array()
        .ok_or_else(|| file_err(&json_path, "expected a JSON list of transitions"))?;
    if items.is_empty() {
        return Err(file_err(&json_path, "the trajectory has no transitions"));
    }
    let mut transitions = Vec::with_capacity(items.len());
    let mut needs_labels = false;
    for (t, item) in items.iter().enumerate() {
        let (tr, complete) = parse_transition(item)
            .map_err(|m| file_err(&json_path, format!("transition {t}: {m}")))?;
        needs_labels |= !complete;
        transitions.push(tr);
    }
    if needs_labels {
        label(&mut transitions);
    }
    let (obs, k1) = read_images(&dir.join(format!("{i}_obs.npy")), transitions.len())?;
    let (next_obs, k2) = read_images(&dir.join(format!("{i}_next_obs.npy")), transitions.len())?;
    if k1 != k2 {
        return Err(file_err(
            &dir.join(format!("{i}_next_obs.npy")),
            format!("stacks {k2} frames but {i}_obs.npy stacks {k1}"),
        ));
    }
    Ok(Episode {
        frame_stack: k1,
        transitions,
        obs,
        next_obs,
        start_state: None,
    })
}

/// Reads an image array and checks it is `T×3×64×64` or `T×k×3×64×64`; returns bytes and `k`.
fn read_images(path: &Path, t: usize) -> Result<(Vec<u8>, usize), DatasetError> {
    let arr = npy::read(path).map_err(|e| file_err(path, e))?;
    let s = &arr.shape;
    let tail_ok = s.len() >= 4 && s[s.len() - 3..] == [3, IMAGE_SIZE, IMAGE_SIZE];
    let k = match s.len() {
        4 => 1,
        5 => s[1],
        _ => 0,
    };
    if !tail_ok || k == 0 {
        return Err(file_err(
            path,
            format!("shape {s:?}: expected [T, 3, 64, 64] or [T, k, 3, 64, 64]"),
        ));
    }
    if s[0] != t {
        return Err(file_err(
            path,
            format!(
                "holds {} observations but the JSON has {t} transitions",
                s[0]
            ),
        ));
    }
    debug_assert_eq!(arr.data.len(), t * k * FRAME_LEN);
    Ok((arr.data, k))
}

fn flag(item: &Value, key: &str) -> Result<Option<bool>, String> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(0.0) != 0.0)),
        Some(other) => Err(format!(
            "'{key}' should be a boolean or number, found {other}"
        )),
    }
}

fn number(item: &Value, key: &str) -> Result<Option<f32>, String> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|x| x as f32)),
        Some(Value::Bool(b)) => Ok(Some(*b as u8 as f32)),
        Some(other) => Err(format!("'{key}' should be a number, found {other}")),
    }
}

/// Parses one transition; accepts the original code's mix of booleans and numbers. Returns
/// whether all label fields were present.
fn parse_transition(item: &Value) -> Result<(Transition, bool), String> {
    if !item.is_object() {
        return Err("expected a JSON object".into());
    }
    let action = match item.get("action") {
        Some(Value::Array(a)) if a.len() == 2 => {
            let f = |v: &Value| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| format!("non-numeric action entry {v}"))
            };
            [f(&a[0])?, f(&a[1])?]
        }
        Some(other) => {
            return Err(format!(
                "'action' should be a list of 2 numbers, found {other}"
            ));
        }
        None => return Err("missing 'action'".into()),
    };
    let reward = number(item, "reward")?.ok_or("missing 'reward'")?;
    let constraint = flag(item, "constraint")?.ok_or("missing 'constraint'")?;
    let safe_set = flag(item, "safe_set")?;
    let done = flag(item, "done")?;
    let rtg = number(item, "rtg")?;
    let on_policy = flag(item, "on_policy")?.unwrap_or(true);
    let state = match item.get("state") {
        Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_f64).collect()),
        _ => None,
    };
    let complete = safe_set.is_some() && done.is_some() && rtg.is_some();
    let tr = Transition {
        action,
        reward,
        constraint,
        done: done.unwrap_or(false),
        safe_set: safe_set.unwrap_or(false),
        on_policy,
        rtg: rtg.unwrap_or(0.0),
        state,
    };
    Ok((tr, complete))
}

/// Number of trajectories in a set folder: the `i.json` files must be numbered 0..n−1.
pub fn count_episodes(dir: &Path) -> Result<usize, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::Missing(dir.to_path_buf()));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| file_err(dir, e))?;
    let mut indices = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| file_err(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(i) = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<usize>().ok())
        {
            indices.push(i);
        }
    }
    if indices.is_empty() {
        return Err(DatasetError::Empty(dir.to_path_buf()));
    }
    indices.sort_unstable();
    if let Some(gap) = (0..indices.len()).find(|&k| indices[k] != k) {
        return Err(file_err(
            &dir.join(format!("{gap}.json")),
            "missing: trajectories must be numbered from 0 without gaps",
        ));
    }
    Ok(indices.len())
}

/// Reads every trajectory of a set folder.
pub fn read_set(dir: &Path) -> Result<Vec<Episode>, DatasetError> {
    let n = count_episodes(dir)?;
    (0..n).map(|i| read_episode(dir, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::demo::run_episode;
    use crate::env::EnvKind;
    use rand::SeedableRng;

    fn demo(seed: u64) -> Episode {
        let kind = EnvKind::Navigation;
        let mut env = kind.make(seed);
        let rng = rand::rngs::StdRng::seed_from_u64(seed);
        run_episode(env.as_mut(), &kind.demo_sets()[0], rng)
    }

    #[test]
    fn write_then_read_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let eps = [demo(1), demo(2)];
        for (i, ep) in eps.iter().enumerate() {
            write_episode(dir.path(), i, ep).unwrap();
        }
        let back = read_set(dir.path()).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in eps.iter().zip(&back) {
            assert_eq!(a.transitions, b.transitions);
            assert_eq!(a.obs, b.obs);
            assert_eq!(a.next_obs, b.next_obs);
            assert_eq!(b.frame_stack, 1);
        }
    }

    #[test]
    fn stacked_observations_round_trip_with_five_dims() {
        let dir = tempfile::tempdir().unwrap();
        let mut ep = demo(3);
        ep.transitions.truncate(4);
        ep.frame_stack = 3;
        ep.obs = (0..4 * 3 * FRAME_LEN).map(|i| (i % 251) as u8).collect();
        ep.next_obs = ep.obs.iter().map(|b| b.wrapping_add(1)).collect();
        write_episode(dir.path(), 0, &ep).unwrap();
        let arr = npy::read(&dir.path().join("0_obs.npy")).unwrap();
        assert_eq!(arr.shape, vec![4, 3, 3, 64, 64]);
        let back = read_episode(dir.path(), 0).unwrap();
        assert_eq!(back.frame_stack, 3);
        assert_eq!(back.obs, ep.obs);
        assert_eq!(back.next_obs, ep.next_obs);
    }

    #[test]
    fn reads_the_original_codes_json_style() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"[{"action": [0.5, -1.0], "reward": -1.0, "constraint": false, "safe_set": 1, "on_policy": 1, "rtg": 0.0, "done": 0},
                       {"action": [1, 2], "reward": 0, "constraint": 0, "safe_set": 1, "on_policy": 1, "rtg": 0, "done": 1}]"#;
        std::fs::write(dir.path().join("0.json"), json).unwrap();
        let frames = vec![9u8; 2 * FRAME_LEN];
        npy::write(&dir.path().join("0_obs.npy"), &[2, 3, 64, 64], &frames).unwrap();
        npy::write(&dir.path().join("0_next_obs.npy"), &[2, 3, 64, 64], &frames).unwrap();
        let ep = read_episode(dir.path(), 0).unwrap();
        assert_eq!(ep.transitions[1].action, [1.0, 2.0]);
        assert!(
            ep.transitions[0].safe_set && ep.transitions[1].done && !ep.transitions[0].constraint
        );
    }

    #[test]
    fn broken_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_episode(dir.path(), 0, &demo(4)).unwrap();
        write_episode(dir.path(), 1, &demo(5)).unwrap();
        // truncated npy
        let obs = dir.path().join("0_obs.npy");
        let bytes = std::fs::read(&obs).unwrap();
        std::fs::write(&obs, &bytes[..bytes.len() / 2]).unwrap();
        let msg = read_set(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("0_obs.npy") && msg.contains("truncated"),
            "{msg}"
        );
        // malformed json
        std::fs::write(dir.path().join("1.json"), "[{\"action\": [1, 2], ").unwrap();
        let msg = read_episode(dir.path(), 1).unwrap_err().to_string();
        assert!(
            msg.contains("1.json") && msg.contains("malformed JSON"),
            "{msg}"
        );
        // missing and empty folders
        let missing = dir.path().join("nope");
        assert!(
            read_set(&missing)
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(
            read_set(&empty)
                .unwrap_err()
                .to_string()
                .contains("no trajectories")
        );
    }
}
