//! Agent checkpoints: a folder with one `.safetensors` file per module (`vae`, `dyn`, `val`, `ss`,
//! `constr`, `gi`) and `agent.json` (environment, shapes, the run's configuration). Every file is
//! written to a temporary name and renamed, so a crash never leaves half a checkpoint; loading
//! checks every tensor's name and shape and says exactly what does not fit.

use super::agent::{Agent, AgentSpec, ModuleKind};
use super::torch::read_pth;
use crate::env::EnvKind;
use crate::files::write_atomic;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Name of the metadata file in a checkpoint folder.
pub const META_FILE: &str = "agent.json";
const FORMAT: &str = "ls3-agent";
const VERSION: u32 = 1;

/// What can be wrong with a checkpoint; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint folder {0} does not exist")]
    MissingFolder(PathBuf),
    #[error(
        "{path}: missing (a checkpoint folder needs agent.json and vae, dyn, val, ss, constr, gi)"
    )]
    MissingFile { path: PathBuf },
    #[error("{path}: {msg}")]
    Unreadable { path: PathBuf, msg: String },
    #[error("{path}: checkpoint is for {found}, expected {expected}")]
    WrongEnv {
        path: PathBuf,
        found: EnvKind,
        expected: EnvKind,
    },
    #[error("{path}: tensor {name} is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: unexpected tensor {name} (not part of this module)")]
    UnexpectedTensor { path: PathBuf, name: String },
    #[error("{path}: {msg}")]
    Write { path: PathBuf, msg: String },
}

fn unreadable(path: &Path, msg: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Unreadable {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// `agent.json`: what the tensors are for and how the agent was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentMeta {
    pub format: String,
    pub version: u32,
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// Layer sizes, for people reading the file.
    pub architecture: BTreeMap<String, String>,
    /// The configuration of the run that produced the agent, if any.
    #[serde(default)]
    pub config: serde_json::Value,
}

impl AgentMeta {
    fn new(spec: &AgentSpec, config: serde_json::Value) -> Self {
        let c = spec.channels;
        let arch = [
            (
                "vae",
                format!(
                    "conv encoder {c}→32→64→128→256, latent {}, transposed-conv decoder →{c}",
                    spec.latent
                ),
            ),
            (
                "dyn",
                format!(
                    "5 × MLP({}+2 → 2·{}, hidden 128 × 2)",
                    spec.latent, spec.latent
                ),
            ),
            (
                "val",
                format!(
                    "{} × MLP({} → 1, hidden 200 × 3) + targets",
                    spec.value_members, spec.latent
                ),
            ),
            (
                "ss",
                format!("MLP({} → 1, hidden 200 × 3) + target", spec.latent),
            ),
            (
                "constr",
                format!("MLP({} → 1, hidden 200 × 3)", spec.latent),
            ),
            ("gi", format!("MLP({} → 1, hidden 200 × 3)", spec.latent)),
        ];
        Self {
            format: FORMAT.into(),
            version: VERSION,
            spec: spec.clone(),
            architecture: arch.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            config,
        }
    }
}

/// Path of a module's file in a checkpoint folder.
pub fn module_path(dir: &Path, m: ModuleKind) -> PathBuf {
    dir.join(format!("{}.safetensors", m.name()))
}

fn var_tensors(vars: &VarMap) -> HashMap<String, Tensor> {
    let data = vars.data().lock().expect("var map lock");
    data.iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect()
}

/// Writes the whole agent into `dir` (created if needed), with `config` in `agent.json`.
pub fn save(agent: &Agent, dir: &Path, config: serde_json::Value) -> Result<(), CheckpointError> {
    save_with(agent, dir, config, false)
}

/// Like [`save`], with `half` storing weight matrices and kernels (tensors of rank ≥ 2) as
/// 16-bit floats: half the size, for shipping an agent. Biases and running statistics stay
/// 32-bit; [`load`] reads either.
pub fn save_with(
    agent: &Agent,
    dir: &Path,
    config: serde_json::Value,
    half: bool,
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|e| CheckpointError::Write {
        path: dir.into(),
        msg: e.to_string(),
    })?;
    for m in ModuleKind::ALL {
        write_module(agent, m, &module_path(dir, m), half)?;
    }
    let meta = serde_json::to_vec_pretty(&AgentMeta::new(&agent.spec, config))
        .expect("metadata serialises");
    let path = dir.join(META_FILE);
    write_atomic(&path, &meta).map_err(|e| CheckpointError::Write {
        path,
        msg: e.to_string(),
    })
}

/// Writes one module's tensors to `path` atomically.
pub fn save_module(agent: &Agent, m: ModuleKind, path: &Path) -> Result<(), CheckpointError> {
    write_module(agent, m, path, false)
}

fn write_module(
    agent: &Agent,
    m: ModuleKind,
    path: &Path,
    half: bool,
) -> Result<(), CheckpointError> {
    let werr = |e: &dyn std::fmt::Display| CheckpointError::Write {
        path: path.into(),
        msg: e.to_string(),
    };
    let mut tensors = var_tensors(agent.vars(m));
    if half {
        for t in tensors.values_mut() {
            if t.rank() >= 2 {
                *t = t.to_dtype(candle_core::DType::F16).map_err(|e| werr(&e))?;
            }
        }
    }
    let bytes = safetensors::serialize(
        tensors
            .iter()
            .map(|(n, t)| (n.clone(), t))
            .collect::<Vec<_>>(),
        None,
    )
    .map_err(|e| werr(&e))?;
    write_atomic(path, &bytes).map_err(|e| werr(&e))
}

/// Reads `agent.json` of a checkpoint folder.
pub fn read_meta(dir: &Path) -> Result<AgentMeta, CheckpointError> {
    if !dir.is_dir() {
        return Err(CheckpointError::MissingFolder(dir.into()));
    }
    let path = dir.join(META_FILE);
    let bytes =
        std::fs::read(&path).map_err(|_| CheckpointError::MissingFile { path: path.clone() })?;
    let meta: AgentMeta = serde_json::from_slice(&bytes)
        .map_err(|e| unreadable(&path, format!("malformed agent.json: {e}")))?;
    if meta.format != FORMAT {
        return Err(unreadable(
            &path,
            format!("format {:?} is not {FORMAT:?}", meta.format),
        ));
    }
    if meta.spec.channels != 3 * meta.spec.env.frame_stack() {
        return Err(unreadable(
            &path,
            format!(
                "{} channels do not fit {} (expected {})",
                meta.spec.channels,
                meta.spec.env,
                3 * meta.spec.env.frame_stack()
            ),
        ));
    }
    Ok(meta)
}

/// Loads a complete agent from `dir`. With `expected_env`, a checkpoint of another environment is
/// refused.
pub fn load(
    dir: &Path,
    expected_env: Option<EnvKind>,
    device: &Device,
) -> Result<(Agent, AgentMeta), CheckpointError> {
    let meta = read_meta(dir)?;
    if let Some(expected) = expected_env.filter(|e| *e != meta.spec.env) {
        return Err(CheckpointError::WrongEnv {
            path: dir.join(META_FILE),
            found: meta.spec.env,
            expected,
        });
    }
    let agent = Agent::new(meta.spec.clone(), device, 0).map_err(|e| unreadable(dir, e))?;
    for m in ModuleKind::ALL {
        load_module(&agent, m, &module_path(dir, m))?;
    }
    Ok((agent, meta))
}

/// Replaces one module's weights with those in a `.safetensors` file, after checking every name
/// and shape.
pub fn load_module(agent: &Agent, m: ModuleKind, path: &Path) -> Result<(), CheckpointError> {
    if !path.is_file() {
        return Err(CheckpointError::MissingFile { path: path.into() });
    }
    let tensors = candle_core::safetensors::load(path, &agent.device)
        .map_err(|e| unreadable(path, format!("not a readable safetensors file ({e})")))?;
    assign(agent, m, tensors, path)
}

/// Checks `tensors` against module `m` of `agent` and copies them in. Nothing is changed unless
/// every tensor fits.
pub fn assign(
    agent: &Agent,
    m: ModuleKind,
    tensors: HashMap<String, Tensor>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let data = agent.vars(m).data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in &names {
        let expected = data[*name].dims().to_vec();
        match tensors.get(*name) {
            None => {
                return Err(CheckpointError::MissingTensor {
                    path: path.into(),
                    name: (*name).clone(),
                });
            }
            Some(t) if t.dims() != expected => {
                return Err(CheckpointError::WrongShape {
                    path: path.into(),
                    name: (*name).clone(),
                    found: t.dims().to_vec(),
                    expected,
                });
            }
            Some(_) => {}
        }
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|n| !data.contains_key(*n)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(CheckpointError::UnexpectedTensor {
            path: path.into(),
            name: (*name).clone(),
        });
    }
    for name in names {
        let t = tensors[name]
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| data[name].set(&t));
        t.map_err(|e| unreadable(path, format!("tensor {name}: {e}")))?;
    }
    agent.weights_changed();
    Ok(())
}

/// Imports the original implementation's PyTorch checkpoints (`vae.pth`, `dyn.pth`, `val.pth`,
/// `ss.pth`, `constr.pth`, `gi.pth` in `dir`) for `env`. Target nets missing from the files are
/// copied from their online nets; a `val.pth` without `models.` keys is a single value net.
pub fn import_torch(dir: &Path, env: EnvKind, device: &Device) -> Result<Agent, CheckpointError> {
    if !dir.is_dir() {
        return Err(CheckpointError::MissingFolder(dir.into()));
    }
    let pth = |m: ModuleKind| dir.join(format!("{}.pth", m.name()));
    let mut files = HashMap::new();
    for m in ModuleKind::ALL {
        let path = pth(m);
        if !path.is_file() {
            return Err(CheckpointError::MissingFile { path });
        }
        let tensors = read_pth(&path, device).map_err(|e| unreadable(&path, format!("{e:#}")))?;
        files.insert(m, tensors);
    }
    let mut spec = AgentSpec::for_env(env);
    if !files[&ModuleKind::Val]
        .keys()
        .any(|k| k.starts_with("models."))
    {
        spec.value_members = 1;
    }
    let agent = Agent::new(spec, device, 0).map_err(|e| unreadable(dir, e))?;
    for m in ModuleKind::ALL {
        let mut tensors = files.remove(&m).expect("read above");
        if m == ModuleKind::Ss && !tensors.keys().any(|k| k.starts_with("target.")) {
            let copies: Vec<_> = tensors
                .iter()
                .map(|(k, v)| (format!("target.{k}"), v.clone()))
                .collect();
            tensors.extend(copies);
        }
        assign(&agent, m, tensors, &pth(m))?;
    }
    Ok(agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(seed: u64) -> Agent {
        Agent::new(AgentSpec::for_env(EnvKind::Navigation), &Device::Cpu, seed).unwrap()
    }

    fn all_tensors(a: &Agent) -> BTreeMap<String, Vec<f32>> {
        let mut out = BTreeMap::new();
        for m in ModuleKind::ALL {
            for (n, t) in var_tensors(a.vars(m)) {
                out.insert(
                    format!("{m}/{n}"),
                    t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
            }
        }
        out
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(1);
        save(&a, dir.path(), serde_json::json!({"note": "test"})).unwrap();
        let (b, meta) = load(dir.path(), Some(EnvKind::Navigation), &Device::Cpu).unwrap();
        assert_eq!(meta.config["note"], "test");
        assert_eq!(all_tensors(&a), all_tensors(&b));
        assert_ne!(
            all_tensors(&a),
            all_tensors(&agent(2)),
            "different seeds give different weights"
        );
    }

    #[test]
    fn half_precision_copies_are_smaller_and_close() {
        let (full, half) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = agent(3);
        save(&a, full.path(), serde_json::json!({})).unwrap();
        save_with(&a, half.path(), serde_json::json!({}), true).unwrap();
        let size = |d: &Path| -> u64 {
            ModuleKind::ALL
                .iter()
                .map(|&m| std::fs::metadata(module_path(d, m)).unwrap().len())
                .sum()
        };
        let (s_full, s_half) = (size(full.path()), size(half.path()));
        assert!(s_half * 10 < s_full * 6, "{s_half} vs {s_full} bytes");
        let (b, _) = load(half.path(), Some(EnvKind::Navigation), &Device::Cpu).unwrap();
        let (ta, tb) = (all_tensors(&a), all_tensors(&b));
        for (name, va) in &ta {
            let vb = &tb[name];
            let worst = va
                .iter()
                .zip(vb)
                .map(|(x, y)| (x - y).abs() / x.abs().max(1e-3))
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-3, "{name}: relative error {worst}");
        }
    }

    #[test]
    fn bad_checkpoints_are_errors_that_name_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(3);
        save(&a, dir.path(), serde_json::Value::Null).unwrap();
        let load_err = || {
            load(dir.path(), None, &Device::Cpu)
                .err()
                .expect("load fails")
                .to_string()
        };

        // another environment
        let err = load(dir.path(), Some(EnvKind::Reacher), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("agent.json") && err.contains("navigation") && err.contains("reacher"),
            "{err}"
        );

        // truncated tensor file
        let dyn_path = module_path(dir.path(), ModuleKind::Dyn);
        let bytes = std::fs::read(&dyn_path).unwrap();
        std::fs::write(&dyn_path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_err();
        assert!(err.contains("dyn.safetensors"), "{err}");
        save_module(&a, ModuleKind::Dyn, &dyn_path).unwrap();

        // missing tensor, wrong shape, unexpected tensor
        let gi_path = module_path(dir.path(), ModuleKind::Gi);
        let mut t = var_tensors(a.vars(ModuleKind::Gi));
        let w = t.remove("model.2.weight").unwrap();
        let write =
            |t: &HashMap<String, Tensor>| candle_core::safetensors::save(t, &gi_path).unwrap();
        write(&t);
        let err = load_err();
        assert!(
            err.contains("gi.safetensors")
                && err.contains("model.2.weight")
                && err.contains("missing"),
            "{err}"
        );
        t.insert("model.2.weight".into(), w.narrow(1, 0, 100).unwrap());
        write(&t);
        let err = load_err();
        assert!(
            err.contains("model.2.weight")
                && err.contains("[200, 100]")
                && err.contains("[200, 200]"),
            "{err}"
        );
        t.insert("model.2.weight".into(), w.clone());
        t.insert("model.9.weight".into(), w);
        write(&t);
        let err = load_err();
        assert!(
            err.contains("gi.safetensors") && err.contains("unexpected tensor model.9.weight"),
            "{err}"
        );
        save_module(&a, ModuleKind::Gi, &gi_path).unwrap();

        // channels that do not fit the environment, then a missing file, then a missing folder
        let meta_path = dir.path().join(META_FILE);
        let json = std::fs::read_to_string(&meta_path)
            .unwrap()
            .replace("\"channels\": 3", "\"channels\": 9");
        std::fs::write(&meta_path, json).unwrap();
        assert!(load_err().contains("9 channels"), "{}", load_err());
        std::fs::remove_file(&meta_path).unwrap();
        assert!(load_err().contains("agent.json") && load_err().contains("missing"));
        let nowhere = dir.path().join("nowhere");
        let err = load(&nowhere, None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn a_failed_load_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(4);
        let b = agent(5);
        let path = dir.path().join("gi.safetensors");
        let mut t = var_tensors(a.vars(ModuleKind::Gi));
        t.remove("model.6.bias");
        candle_core::safetensors::save(&t, &path).unwrap();
        let before = all_tensors(&b);
        assert!(load_module(&b, ModuleKind::Gi, &path).is_err());
        assert_eq!(before, all_tensors(&b));
    }
}
