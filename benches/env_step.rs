//! Environment speed: steps per second of `step` (which renders the new 64×64 frame) for each
//! environment, and of `render_state` alone. Run with `cargo bench --bench env_step`.

use ls3::env::EnvKind;
use std::time::Instant;

fn main() {
    println!("{:<12} {:>14} {:>14}", "env", "step+render/s", "render/s");
    for kind in EnvKind::ALL {
        let mut env = kind.make(0);
        env.reset();
        let b = kind.action_bound();
        // warm up, then time whole episodes of a fixed zig-zag policy
        let steps = 3 * kind.horizon();
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < 2.0 {
            env.reset();
            for t in 0..steps {
                let s = if (t / 10) % 2 == 0 { 1.0 } else { -1.0 };
                std::hint::black_box(env.step([0.5 * b, s * 0.5 * b]));
                n += 1;
            }
        }
        let step_rate = n as f64 / start.elapsed().as_secs_f64();

        let state = env.state();
        let start = Instant::now();
        let mut m = 0;
        while start.elapsed().as_secs_f64() < 1.0 {
            std::hint::black_box(env.render_state(&state));
            m += 1;
        }
        let render_rate = m as f64 / start.elapsed().as_secs_f64();
        println!(
            "{:<12} {:>14.0} {:>14.0}",
            kind.name(),
            step_rate,
            render_rate
        );
    }
}
