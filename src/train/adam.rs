//! Adam with the update of PyTorch's `torch.optim.Adam` (bias-corrected, no weight decay), f32,
//! over one module's variables. Unlike candle-nn's optimisers its moments and step count can be
//! saved beside the module's weights and restored, so a resumed run takes the very steps an
//! uninterrupted one would. On the CPU each parameter is updated in one pass over its data
//! (read the gradient, update both moments, write the weight); elsewhere through tensor ops.

use crate::files::write_atomic;
use crate::model::checkpoint::CheckpointError;
use candle_core::backprop::GradStore;
use candle_core::bail;
use candle_core::{CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Result, Tensor, Var};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

/// `format` entry of a state file's metadata.
const FORMAT: &str = "ls3-adam";

/// Adam's hyperparameters; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam over a fixed set of named variables (names are those of the checkpoint, so a state file
/// says which moment belongs to which weight).
pub struct Adam {
    params: AdamParams,
    step: u64,
    slots: Vec<Slot>,
}

struct Slot {
    name: String,
    var: Var,
    moments: Moments,
}

/// First and second moments: host vectors for f32 variables on the CPU (the fused update), else
/// tensors beside the variable.
enum Moments {
    Host { m: Vec<f32>, v: Vec<f32> },
    Tensors { m: Tensor, v: Tensor },
}

impl Moments {
    fn zeros(var: &Var) -> Result<Self> {
        Ok(if fused(var) {
            let n = var.elem_count();
            Self::Host {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }
        } else {
            Self::Tensors {
                m: var.zeros_like()?,
                v: var.zeros_like()?,
            }
        })
    }

    /// Moments read from a state file (already checked against the variable's shape).
    fn from_tensors(m: &Tensor, v: &Tensor, var: &Var) -> Result<Self> {
        Ok(if fused(var) {
            let host = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
            Self::Host {
                m: host(m)?,
                v: host(v)?,
            }
        } else {
            let place = |t: &Tensor| t.to_dtype(var.dtype())?.to_device(var.device());
            Self::Tensors {
                m: place(m)?,
                v: place(v)?,
            }
        })
    }

    /// Both moments as CPU tensors of the variable's shape.
    fn to_tensors(&self, var: &Var) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Host { m, v } => Ok((
                Tensor::from_slice(m, var.shape(), &Device::Cpu)?,
                Tensor::from_slice(v, var.shape(), &Device::Cpu)?,
            )),
            Self::Tensors { m, v } => Ok((m.to_device(&Device::Cpu)?, v.to_device(&Device::Cpu)?)),
        }
    }
}

/// Whether a variable takes the fused CPU update.
fn fused(var: &Var) -> bool {
    var.device().is_cpu() && var.dtype() == DType::F32
}

/// The scalars of one step, computed in f64 as PyTorch does in Python floats.
#[derive(Clone, Copy)]
struct StepScalars {
    /// `lr / (1 − β₁ᵗ)`
    step_size: f64,
    /// `√(1 − β₂ᵗ)`
    bias_correction2_sqrt: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl StepScalars {
    fn new(p: &AdamParams, step: u64) -> Self {
        let t = step as f64;
        Self {
            step_size: p.lr / (1.0 - p.beta1.powf(t)),
            bias_correction2_sqrt: (1.0 - p.beta2.powf(t)).sqrt(),
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
        }
    }
}

/// The update of one parameter in one pass: `m ← m + (1−β₁)(g − m)`, `v ← β₂v + (1−β₂)g²`,
/// `p ← p − step_size · m / (√v / √(1−β₂ᵗ) + ε)`, in PyTorch's order of operations.
fn update_slices(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &StepScalars) {
    let w1 = (1.0 - s.beta1) as f32;
    let (b2, w2) = (s.beta2 as f32, (1.0 - s.beta2) as f32);
    let (step_size, bc2, eps) = (
        s.step_size as f32,
        s.bias_correction2_sqrt as f32,
        s.eps as f32,
    );
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m += w1 * (g - *m);
        *v = *v * b2 + w2 * g * g;
        let denom = v.sqrt() / bc2 + eps;
        *p -= step_size * *m / denom;
    }
}

/// The fused CPU update as an in-place op on the parameter, with the gradient as its operand.
struct FusedUpdate<'a> {
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    scalars: StepScalars,
}

impl FusedUpdate<'_> {
    fn apply(&self, p: &mut CpuStorage, pl: &Layout, g: &[f32]) -> Result<()> {
        let CpuStorage::F32(p) = p else {
            bail!("adam: the fused update takes f32 weights and gradients")
        };
        let Some((p0, p1)) = pl.contiguous_offsets() else {
            bail!("adam: the fused update takes contiguous weights and gradients")
        };
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        let n = p1 - p0;
        if g.len() != n || m.len() != n || v.len() != n {
            bail!("adam: weight, gradient and moments differ in size");
        }
        update_slices(&mut p[p0..p1], g, &mut m, &mut v, &self.scalars);
        Ok(())
    }
}

impl InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, pl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        let (CpuStorage::F32(g), Some((g0, g1))) = (g, gl.contiguous_offsets()) else {
            bail!("adam: the fused update takes contiguous f32 gradients")
        };
        self.apply(p, pl, &g[g0..g1])
    }
}

/// [`FusedUpdate`] with the gradient given as a host slice.
struct FusedSliceUpdate<'a> {
    update: FusedUpdate<'a>,
    grad: &'a [f32],
}

impl InplaceOp1 for FusedSliceUpdate<'_> {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, pl: &Layout) -> Result<()> {
        self.update.apply(p, pl, self.grad)
    }
}

impl Slot {
    /// [`update`](Self::update) with the gradient as a host slice of the variable's size.
    fn update_slice(&mut self, grad: &[f32], s: &StepScalars) -> Result<()> {
        match &mut self.moments {
            Moments::Host { m, v } => {
                let op = FusedSliceUpdate {
                    update: FusedUpdate {
                        m: RefCell::new(m),
                        v: RefCell::new(v),
                        scalars: *s,
                    },
                    grad,
                };
                self.var.as_tensor().inplace_op1(&op)
            }
            Moments::Tensors { .. } => {
                let grad = Tensor::from_slice(grad, self.var.shape(), self.var.device())?;
                self.update(&grad.to_dtype(self.var.dtype())?, s)
            }
        }
    }

    fn update(&mut self, grad: &Tensor, s: &StepScalars) -> Result<()> {
        match &mut self.moments {
            Moments::Host { m, v } => {
                let grad = grad.to_dtype(DType::F32)?.contiguous()?;
                let op = FusedUpdate {
                    m: RefCell::new(m),
                    v: RefCell::new(v),
                    scalars: *s,
                };
                self.var.as_tensor().inplace_op2(&grad, &op)
            }
            Moments::Tensors { m, v } => {
                let next_m = ((&*m * s.beta1)? + (grad * (1.0 - s.beta1))?)?;
                let next_v = ((&*v * s.beta2)? + (grad.sqr()? * (1.0 - s.beta2))?)?;
                let denom = ((next_v.sqrt()? / s.bias_correction2_sqrt)? + s.eps)?;
                let delta = ((&next_m * s.step_size)? / denom)?;
                self.var.set(&(self.var.as_tensor() - delta)?)?;
                *m = next_m;
                *v = next_v;
                Ok(())
            }
        }
    }
}

impl Adam {
    /// An optimiser over `vars` (name, variable), with zero moments. Variables that are not
    /// floating point are left out.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        let slots = vars
            .into_iter()
            .filter(|(_, var)| var.dtype().is_float())
            .map(|(name, var)| {
                let moments = Moments::zeros(&var)?;
                Ok(Slot { name, var, moments })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            params,
            step: 0,
            slots,
        })
    }

    pub fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    /// Changes the rate from the next step on; moments and step count are kept.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Steps taken (the `t` of the bias corrections).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Backpropagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One step with `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let scalars = StepScalars::new(&self.params, self.step);
        for slot in &mut self.slots {
            if let Some(g) = grads.get(&slot.var) {
                slot.update(g, &scalars)?;
            }
        }
        Ok(())
    }

    /// One step with gradients as host slices, each beside its variable's tensor (matched by
    /// identity, as in a [`GradStore`]): what hand-written backprop produces. Variables without
    /// a gradient are left alone; nothing changes unless every gradient has its variable's size.
    pub fn step_slices(&mut self, grads: &[(&Tensor, &[f32])]) -> Result<()> {
        let found: Vec<Option<&[f32]>> = self
            .slots
            .iter()
            .map(|slot| {
                let id = slot.var.as_tensor().id();
                grads.iter().find(|(t, _)| t.id() == id).map(|&(_, g)| g)
            })
            .collect();
        for (slot, g) in self.slots.iter().zip(&found) {
            if let Some(g) = g.filter(|g| g.len() != slot.var.elem_count()) {
                bail!(
                    "adam: the gradient of {} has {} elements, the variable {}",
                    slot.name,
                    g.len(),
                    slot.var.elem_count()
                );
            }
        }
        self.step += 1;
        let scalars = StepScalars::new(&self.params, self.step);
        for (slot, g) in self.slots.iter_mut().zip(found) {
            if let Some(g) = g {
                slot.update_slice(g, &scalars)?;
            }
        }
        Ok(())
    }

    /// Writes the moments (`exp_avg.<name>`, `exp_avg_sq.<name>`) and the step count (metadata)
    /// to a `.safetensors` file, atomically.
    pub fn save(&self, path: &Path) -> std::result::Result<(), CheckpointError> {
        let werr = |e: &dyn std::fmt::Display| CheckpointError::Write {
            path: path.into(),
            msg: e.to_string(),
        };
        let mut tensors = Vec::with_capacity(2 * self.slots.len());
        for slot in &self.slots {
            let (m, v) = slot.moments.to_tensors(&slot.var).map_err(|e| werr(&e))?;
            tensors.push((format!("exp_avg.{}", slot.name), m));
            tensors.push((format!("exp_avg_sq.{}", slot.name), v));
        }
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("step".to_string(), self.step.to_string()),
        ]);
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
                .map_err(|e| werr(&e))?;
        write_atomic(path, &bytes).map_err(|e| werr(&e))
    }

    /// Replaces moments and step count with those saved in `path` by [`save`](Self::save), after
    /// checking every name and shape; nothing changes unless the whole file fits.
    pub fn load(&mut self, path: &Path) -> std::result::Result<(), CheckpointError> {
        let unreadable = |msg: String| CheckpointError::Unreadable {
            path: path.into(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| unreadable(format!("cannot read ({e})")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| unreadable(format!("not a readable safetensors file ({e})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(unreadable(format!(
                "not an Adam state file (no \"format\": \"{FORMAT}\" in its metadata)"
            )));
        }
        let step = meta
            .get("step")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| unreadable("no valid step count in its metadata".into()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| unreadable(format!("not a readable safetensors file ({e})")))?;
        let mut expected = Vec::with_capacity(2 * self.slots.len());
        for slot in &self.slots {
            for key in [
                format!("exp_avg.{}", slot.name),
                format!("exp_avg_sq.{}", slot.name),
            ] {
                match tensors.get(&key) {
                    None => {
                        return Err(CheckpointError::MissingTensor {
                            path: path.into(),
                            name: key,
                        });
                    }
                    Some(t) if t.dims() != slot.var.dims() => {
                        return Err(CheckpointError::WrongShape {
                            path: path.into(),
                            name: key,
                            found: t.dims().to_vec(),
                            expected: slot.var.dims().to_vec(),
                        });
                    }
                    Some(_) => expected.push(key),
                }
            }
        }
        let mut extra: Vec<&String> = tensors.keys().filter(|k| !expected.contains(k)).collect();
        extra.sort();
        if let Some(name) = extra.first() {
            return Err(CheckpointError::UnexpectedTensor {
                path: path.into(),
                name: (*name).clone(),
            });
        }
        let mut moments = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let m = &tensors[&format!("exp_avg.{}", slot.name)];
            let v = &tensors[&format!("exp_avg_sq.{}", slot.name)];
            let read = Moments::from_tensors(m, v, &slot.var)
                .map_err(|e| unreadable(format!("moments of {}: {e}", slot.name)))?;
            moments.push(read);
        }
        for (slot, read) in self.slots.iter_mut().zip(moments) {
            slot.moments = read;
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rng::TensorRng;
    use candle_nn::Optimizer;

    const LR: f64 = 0.01;
    const P0: [f64; 5] = [0.5, -1.0, 2.0, 0.0, 0.25];
    /// Gradients of the two steps (the zero exercises ε).
    const G: [[f64; 5]; 2] = [[0.1, -0.2, 0.0, 3.0, 1e-3], [-0.3, 0.05, 1e-3, 3.0, -2.0]];

    /// PyTorch's Adam written out in f64: the expected weights after each step.
    fn by_hand() -> [[f64; 5]; 2] {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let (mut p, mut m, mut v) = (P0, [0.0; 5], [0.0; 5]);
        let mut out = [[0.0; 5]; 2];
        for (t, g) in G.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..5 {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= LR * m_hat / (v_hat.sqrt() + eps);
            }
            out[t as usize - 1] = p;
        }
        out
    }

    /// One and two steps of our Adam on a variable of `dtype` (f32: the fused CPU update; f64:
    /// the tensor-op path), as f64.
    fn ours(dtype: DType) -> [[f64; 5]; 2] {
        let dev = Device::Cpu;
        let var =
            Var::from_tensor(&Tensor::new(&P0, &dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
        let params = AdamParams {
            lr: LR,
            ..Default::default()
        };
        let mut adam = Adam::new(vec![("w".into(), var.clone())], params).unwrap();
        let mut out = [[0.0; 5]; 2];
        for (t, g) in G.iter().enumerate() {
            let g = Tensor::new(g, &dev).unwrap().to_dtype(dtype).unwrap();
            // d/dp Σ p·g = g
            let loss = (var.as_tensor() * g).unwrap().sum_all().unwrap();
            adam.backward_step(&loss).unwrap();
            let p = var.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            out[t].copy_from_slice(&p);
        }
        assert_eq!(adam.step_count(), 2);
        out
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < tol, "{what}[{i}]: {x} vs {y}");
        }
    }

    #[test]
    fn one_and_two_steps_match_the_formula_computed_by_hand() {
        let want = by_hand();
        // Sanity of the hand computation: the first step moves each weight by lr·sign(g).
        assert!((want[0][3] - (0.0 - LR)).abs() < 1e-9 && want[0][2] == 2.0);
        for dtype in [DType::F32, DType::F64] {
            let got = ours(dtype);
            for t in 0..2 {
                assert_close(
                    &got[t],
                    &want[t],
                    1e-6,
                    &format!("{dtype:?} step {}", t + 1),
                );
            }
        }
    }

    /// A 4 → 8 → 1 tanh MLP's weights, seeded.
    fn mlp_vars(seed: u64) -> Vec<(String, Var)> {
        let mut rng = TensorRng::new(seed);
        let dev = Device::Cpu;
        [
            ("w1", vec![8, 4]),
            ("b1", vec![8]),
            ("w2", vec![1, 8]),
            ("b2", vec![1]),
        ]
        .into_iter()
        .map(|(n, s)| {
            let t = rng.uniform(s, -0.5, 0.5, &dev).unwrap();
            (n.to_string(), Var::from_tensor(&t).unwrap())
        })
        .collect()
    }

    fn mlp_loss(vars: &[(String, Var)], x: &Tensor, y: &Tensor) -> Tensor {
        let [w1, b1, w2, b2] = [0, 1, 2, 3].map(|i| vars[i].1.as_tensor());
        let h = x
            .matmul(&w1.t().unwrap())
            .unwrap()
            .broadcast_add(b1)
            .unwrap();
        let out = h.tanh().unwrap().matmul(&w2.t().unwrap()).unwrap();
        let out = out.broadcast_add(b2).unwrap();
        (out - y).unwrap().sqr().unwrap().mean_all().unwrap()
    }

    fn values(vars: &[(String, Var)]) -> Vec<f64> {
        vars.iter()
            .flat_map(|(_, v)| {
                let t = v.flatten_all().unwrap().to_dtype(DType::F64).unwrap();
                t.to_vec1::<f64>().unwrap()
            })
            .collect()
    }

    #[test]
    fn five_steps_on_a_small_mlp_match_candle_nn_adamw_without_weight_decay() {
        let mut rng = TensorRng::new(9);
        let x = rng.normal((16, 4), &Device::Cpu).unwrap();
        let y = rng.normal((16, 1), &Device::Cpu).unwrap();
        let (a, b) = (mlp_vars(3), mlp_vars(3));
        let lr = 0.02;
        let mut ours = Adam::new(
            a.clone(),
            AdamParams {
                lr,
                ..Default::default()
            },
        )
        .unwrap();
        let theirs_params = candle_nn::ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        };
        let b_vars = b.iter().map(|(_, v)| v.clone()).collect();
        let mut theirs = candle_nn::AdamW::new(b_vars, theirs_params).unwrap();
        let start = values(&a);
        for _ in 0..5 {
            ours.backward_step(&mlp_loss(&a, &x, &y)).unwrap();
            theirs.backward_step(&mlp_loss(&b, &x, &y)).unwrap();
        }
        let (va, vb) = (values(&a), values(&b));
        assert_close(&va, &vb, 1e-6, "weights");
        let moved = va.iter().zip(&start).map(|(x, y)| (x - y).abs());
        assert!(
            moved.fold(0.0, f64::max) > 0.05,
            "five steps of lr {lr} move the weights"
        );
    }

    #[test]
    fn a_saved_state_continues_exactly_and_a_mismatched_one_is_refused() {
        let mut rng = TensorRng::new(5);
        let x = rng.normal((16, 4), &Device::Cpu).unwrap();
        let y = rng.normal((16, 1), &Device::Cpu).unwrap();
        let (a, b) = (mlp_vars(1), mlp_vars(1));
        let mut first = Adam::new(a.clone(), AdamParams::default()).unwrap();
        let mut second = Adam::new(b.clone(), AdamParams::default()).unwrap();
        for _ in 0..3 {
            first.backward_step(&mlp_loss(&a, &x, &y)).unwrap();
            second.backward_step(&mlp_loss(&b, &x, &y)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gi_adam.safetensors");
        first.save(&path).unwrap();
        // Continue `second` from the file with fresh moments, as a resumed run does.
        let mut resumed = Adam::new(b.clone(), AdamParams::default()).unwrap();
        resumed.load(&path).unwrap();
        assert_eq!(resumed.step_count(), 3);
        for _ in 0..2 {
            first.backward_step(&mlp_loss(&a, &x, &y)).unwrap();
            resumed.backward_step(&mlp_loss(&b, &x, &y)).unwrap();
        }
        assert_eq!(values(&a), values(&b), "bit-exact continuation");
        drop(second);

        // Another architecture: the error names the file and the tensor, and nothing changes.
        let mut other = mlp_vars(2);
        other[0].1 = Var::zeros((8, 5), DType::F32, &Device::Cpu).unwrap();
        let mut wrong = Adam::new(other, AdamParams::default()).unwrap();
        let err = wrong.load(&path).unwrap_err().to_string();
        assert!(
            err.contains("gi_adam.safetensors")
                && err.contains("exp_avg.w1")
                && err.contains("[8, 4]")
                && err.contains("[8, 5]"),
            "{err}"
        );
        assert_eq!(wrong.step_count(), 0);
        // A module's weight file is not an Adam state file.
        let weights = dir.path().join("gi.safetensors");
        let named: HashMap<String, Tensor> = a
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&named, &weights).unwrap();
        let err = resumed.load(&weights).unwrap_err().to_string();
        assert!(
            err.contains("gi.safetensors") && err.contains("not an Adam state"),
            "{err}"
        );
    }
}
