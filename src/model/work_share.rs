//! Work items shared between the calling thread and one helper thread per other core, for the
//! hand-written training passes. The caller takes items itself and waits only for helpers that
//! have started on them: on a machine whose cores other processes keep busy, a helper that is not
//! scheduled costs nothing (candle's barrier pool waits for every worker, which made a 2-core
//! split slower than one thread there).

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// A posted task: the caller's closure with its lifetime erased.
type Task = dyn Fn(usize) + Sync;

struct Job {
    /// Valid while the job is posted: [`run`] withdraws it, and waits for the helpers inside it,
    /// before the closure goes out of scope.
    task: *const Task,
    items: usize,
}

// SAFETY: the task is `Sync`, and only dereferenced while the job is posted (see `Job::task`).
unsafe impl Send for Job {}

#[derive(Default)]
struct State {
    job: Option<Job>,
    generation: u64,
    /// Helpers working on the posted job.
    active: usize,
    /// A helper's panic, raised again on the caller.
    panic: Option<Box<dyn Any + Send>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Helpers wait here for a job.
    posted: Condvar,
    /// The caller waits here for the helpers to leave a withdrawn job.
    left: Condvar,
    /// The next item to take.
    cursor: AtomicUsize,
    /// One job at a time.
    call: Mutex<()>,
}

struct Pool {
    shared: &'static Shared,
    helpers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::default());
        let helpers = candle_core::utils::get_num_threads().saturating_sub(1);
        for h in 0..helpers {
            let spawned = std::thread::Builder::new()
                .name(format!("ls3-helper-{h}"))
                .spawn(move || help(shared));
            if spawned.is_err() {
                return Pool { shared, helpers: h };
            }
        }
        Pool { shared, helpers }
    })
}

/// Threads that [`run`] spreads items over: the caller and its helpers.
pub fn threads() -> usize {
    pool().helpers + 1
}

/// Calls `f(i)` for every `i` in `0..items`, each once, on the calling thread and the helpers.
pub fn run(items: usize, f: impl Fn(usize) + Sync) {
    let pool = pool();
    if items <= 1 || pool.helpers == 0 {
        (0..items).for_each(f);
        return;
    }
    let shared = pool.shared;
    let _one_job = lock(&shared.call);
    let task: &(dyn Fn(usize) + Sync + '_) = &f;
    // SAFETY: only the lifetime is erased; `Withdraw` below ends every use of the pointer
    // before `f` is dropped, also when `f` panics.
    let task: *const Task =
        unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Task>(task) };
    shared.cursor.store(0, Ordering::Relaxed);
    {
        let mut s = lock(&shared.state);
        s.job = Some(Job { task, items });
        s.generation += 1;
        s.panic = None;
    }
    shared.posted.notify_all();
    let withdraw = Withdraw(shared);
    take_items(shared, items, &f);
    drop(withdraw);
    if let Some(p) = lock(&shared.state).panic.take() {
        std::panic::resume_unwind(p);
    }
}

/// Withdraws the posted job and waits for the helpers inside it to leave (on drop).
struct Withdraw(&'static Shared);

impl Drop for Withdraw {
    fn drop(&mut self) {
        let mut s = lock(&self.0.state);
        s.job = None;
        while s.active > 0 {
            s = self.0.left.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn take_items(shared: &Shared, items: usize, f: &(impl Fn(usize) + ?Sized)) {
    loop {
        let i = shared.cursor.fetch_add(1, Ordering::Relaxed);
        if i >= items {
            return;
        }
        f(i);
    }
}

/// A helper's loop: joins each job posted while it looks, takes items until none are left.
fn help(shared: &'static Shared) {
    // the training passes run with denormals flushed, on the caller and here alike
    crate::cpu::flush_denormals();
    let mut seen = 0;
    loop {
        let (task, items) = {
            let mut s = lock(&shared.state);
            loop {
                match &s.job {
                    Some(_) if s.generation != seen => break,
                    _ => s = shared.posted.wait(s).unwrap_or_else(|e| e.into_inner()),
                }
            }
            seen = s.generation;
            let job = s.job.as_ref().expect("a posted job");
            let (task, items) = (job.task, job.items);
            s.active += 1;
            (task, items)
        };
        // SAFETY: the job stays posted, and its closure alive, until `active` is back to 0.
        let task = unsafe { &*task };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            take_items(shared, items, task)
        }));
        let mut s = lock(&shared.state);
        if let Err(p) = result {
            s.panic.get_or_insert(p);
        }
        s.active -= 1;
        if s.active == 0 {
            shared.left.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_once_whoever_takes_it() {
        for items in [0, 1, 2, 7, 1000] {
            let counts: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
            run(items, |i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn a_panicking_item_reaches_the_caller_and_the_pool_goes_on() {
        let caught = std::panic::catch_unwind(|| {
            run(64, |i| {
                if i == 40 {
                    panic!("item 40");
                }
            })
        });
        assert!(caught.is_err());
        let sum = AtomicUsize::new(0);
        run(10, |i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 45);
    }
}
