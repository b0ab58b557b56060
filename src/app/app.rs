//! The `eframe::App`: drains worker events into the [`AppState`] once per frame, lays out
//! top bar → side panel → central views, and sends the commands they return.

use super::controls::Controls;
use super::frame_times::FrameTimes;
use super::screenshot::ScreenshotJob;
use super::settings::Settings;
use super::state::{AppState, DEFAULT_CAPACITY};
use super::views::Views;
use super::views::episode::SceneToggles;
use super::views::episode::Selection;
use super::views::episode_list;
use super::worker::{Command, Event, WorkerHandle, WorkerOptions};
use super::{AppOptions, error_bar, shortcuts, top_bar};
use std::time::Instant;

/// LS3 Studio's window.
pub struct StudioApp {
    settings: Settings,
    state: AppState,
    worker: WorkerHandle,
    selection: Selection,
    views: Views,
    dismissed_errors: u64,
    controls: Controls,
    frame_times: FrameTimes,
    /// When the frame being built began.
    frame_start: Option<Instant>,
    /// When the worker first asked for a repaint since the last drain (event latency).
    pending: Pending,
    /// Every frame time and event latency since launch, with `--report`.
    report: Option<Report>,
    /// Set in `--screenshot` mode, which also leaves the stored settings alone.
    screenshot: Option<ScreenshotJob>,
}

impl StudioApp {
    /// Restores the settings, applies the command-line overrides and starts the worker.
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        options: AppOptions,
        screenshot: Option<ScreenshotJob>,
    ) -> std::io::Result<Self> {
        let stored = cc
            .storage
            .filter(|_| screenshot.is_none())
            .and_then(|s| eframe::get_value::<Settings>(s, eframe::APP_KEY));
        let mut settings = stored.unwrap_or_default();
        settings.env = options.env.unwrap_or(settings.env);
        settings.speed = options.speed.unwrap_or(settings.speed);
        settings.tab = options.view.unwrap_or(settings.tab);

        install_symbol_fallback(&cc.egui_ctx);
        let ctx = cc.egui_ctx.clone();
        let pending = Pending::default();
        let since = pending.clone();
        let worker = WorkerHandle::spawn(
            WorkerOptions {
                kind: settings.env,
                seed: options.seed,
                steps_per_second: settings.speed,
                agents: super::agents(&options),
                planner: settings.planner.clone(),
                ..WorkerOptions::default()
            },
            Box::new(move || {
                since
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(Instant::now);
                ctx.request_repaint()
            }),
        )?;
        if let Some(path) = &options.config {
            worker.send(Command::LoadConfig(path.clone()));
        }
        if let Some(dir) = &options.open {
            worker.send(Command::OpenRun(dir.clone()));
        }
        if options.train {
            worker.send(Command::TrainFromScratch);
        }
        if let Some(steps) = screenshot.as_ref().and_then(|job| job.after_steps()) {
            worker.send(Command::PlayFor(steps));
        }
        Ok(Self {
            controls: Controls::new(settings.env),
            frame_times: FrameTimes::default(),
            frame_start: None,
            pending,
            report: options.report.then(Report::default),
            state: AppState::new(settings.env, DEFAULT_CAPACITY),
            settings,
            worker,
            selection: Selection::default(),
            views: Views::default(),
            dismissed_errors: 0,
            screenshot,
        })
    }

    /// What the app knows (for tests and tools driving it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Sends a command to the worker, as a view would.
    pub fn send(&self, command: Command) {
        self.worker.send(command);
    }

    fn drain_events(&mut self) {
        let since = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let (Some(since), Some(report)) = (since, self.report.as_mut()) {
            report.latencies.push(since.elapsed());
        }
        while let Some(event) = self.worker.try_recv() {
            if let Event::Restarted { kind, .. } = event {
                self.settings.env = kind;
            }
            self.state.apply(event);
        }
    }
}

/// Symbols the views use; they must all have a glyph (see the test below).
pub const SYMBOLS: &str = "▶‖⇥↺●√×▲…·–";

/// egui's proportional font lacks the geometric symbols of the controls (▶ ● ↺ ⇥ …); Hack, its
/// bundled monospace font, has them, so it becomes the proportional family's last fallback.
pub fn install_symbol_fallback(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    if let Some(family) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
        family.push("Hack".to_owned());
    }
    ctx.set_fonts(fonts);
}

impl eframe::App for StudioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame_start = Some(Instant::now());
        self.drain_events();
        if let Some(job) = &mut self.screenshot {
            job.poll(ctx, &self.state);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let mut commands = shortcuts::handle(ui.ctx(), &self.state, &mut self.selection);
        egui::Panel::top("top_bar").show(ui, |ui| {
            commands.extend(top_bar::ui(
                ui,
                &self.state,
                &mut self.settings,
                &self.frame_times,
            ));
        });
        if error_bar::pending(&self.state, self.dismissed_errors) {
            egui::Panel::bottom("errors").show(ui, |ui| {
                error_bar::ui(ui, &self.state, &mut self.dismissed_errors);
            });
        }
        egui::Panel::left("episodes")
            .default_size(290.0)
            .show(ui, |ui| {
                episode_list::ui(ui, &self.state, &mut self.selection)
            });
        egui::Panel::right("controls")
            .default_size(300.0)
            .show(ui, |ui| {
                commands.extend(self.controls.ui(ui, &self.state, &mut self.settings));
            });
        commands.extend(self.controls.poll());
        egui::CentralPanel::default().show(ui, |ui| {
            let render = frame.wgpu_render_state();
            let (state, selection) = (&self.state, &mut self.selection);
            let settings = &mut self.settings;
            let toggles = SceneToggles {
                overlay: &mut settings.show_overlay,
                plans: &mut settings.show_plans,
            };
            let tab = &mut settings.tab;
            self.views.ui(ui, state, selection, tab, toggles, render);
        });
        for command in commands {
            self.worker.send(command);
        }
        if let Some(start) = self.frame_start.take() {
            self.frame_times.push(start.elapsed());
            if let Some(report) = self.report.as_mut() {
                report.frames.push(start.elapsed());
            }
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.screenshot.is_none() {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }

    fn persist_egui_memory(&self) -> bool {
        self.screenshot.is_none()
    }

    fn on_exit(&mut self) {
        if let Some(report) = &self.report {
            eprintln!("{}", report.summary(&self.state));
        }
        self.worker.shutdown();
    }
}

/// The time of the worker's first repaint request not yet drained.
type Pending = std::sync::Arc<std::sync::Mutex<Option<Instant>>>;

/// What `--report` prints when the window closes.
#[derive(Default)]
struct Report {
    frames: Vec<std::time::Duration>,
    /// From the worker's repaint request to the UI draining its events.
    latencies: Vec<std::time::Duration>,
}

impl Report {
    fn summary(&self, state: &AppState) -> String {
        let ms = |v: &[std::time::Duration], q: f64| -> String {
            super::frame_times::percentile(v, q).map_or_else(
                || "–".into(),
                |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
            )
        };
        let t = &state.analysis.training;
        format!(
            "frames {}: build time p50 {}, p95 {}, max {}; event latency ({} batches) p50 {}, \
             p95 {}; steps shown {}; training rounds {}; resident memory {}",
            self.frames.len(),
            ms(&self.frames, 0.5),
            ms(&self.frames, 0.95),
            ms(&self.frames, 1.0),
            self.latencies.len(),
            ms(&self.latencies, 0.5),
            ms(&self.latencies, 0.95),
            state.total_steps,
            t.rounds.len(),
            resident_memory().unwrap_or_else(|| "unknown".into()),
        )
    }
}

/// The process's resident and peak resident memory (Linux `/proc`), read once at exit.
fn resident_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<String> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(format!("{:.0} MB", kb / 1024.0))
    };
    Some(format!("{} (peak {})", field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_the_views_use_has_a_glyph() {
        let ctx = egui::Context::default();
        install_symbol_fallback(&ctx);
        ctx.run_ui(egui::RawInput::default(), |_| {})
            .textures_delta
            .clear();
        for font in [
            egui::FontId::proportional(14.0),
            egui::FontId::monospace(14.0),
        ] {
            for c in SYMBOLS.chars() {
                assert!(
                    ctx.fonts_mut(|f| f.has_glyph(&font, c)),
                    "{c:?} missing in {font:?}"
                );
            }
        }
    }
}
