//! The dialog host: one thread owns every window. It waits for a [`DialogRequest`], opens
//! one egui window (eframe) showing the topmost of a stack of dialogs, and closes the
//! window when the stack is empty. Requests that arrive while the window is open join the
//! stack: bridge prompts on top (they have a web page waiting), the rest underneath.
//!
//! It runs in the dialog process ([`super::child`]), never in the daemon: OpenGL stays
//! out of the long-running process.
//!
//! The window stays on top, near the tray (top-right of the screen), and takes the focus
//! when a new dialog comes to the top.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use eframe::egui;

use super::backend::Services;
use super::dialogs::{self, Cx, Dialog, DialogRequest, Outcome};
use super::fonts;
use super::notify::Notifier;

/// How far from the screen's edge the window sits.
const MARGIN: f32 = 16.0;
/// Below a top panel, where GNOME and trayer keep the tray.
const TOP: f32 = 40.0;

/// Opens dialogs on the host thread. Cheap to clone.
#[derive(Clone)]
pub struct HostHandle {
    tx: mpsc::Sender<DialogRequest>,
    shared: Arc<Shared>,
}

struct Shared {
    /// The open window's context, to wake it when a request arrives.
    ctx: Mutex<Option<egui::Context>>,
    /// False once windows turned out impossible (no display, no OpenGL).
    running: AtomicBool,
}

impl HostHandle {
    /// Ask for a window; false when no window can be shown (the request is dropped, so a
    /// prompt's reply channel closes).
    pub fn open(&self, request: DialogRequest) -> bool {
        if !self.is_running() || self.tx.send(request).is_err() {
            return false;
        }
        self.wake();
        true
    }

    /// Draw the open window again (what it shows has changed).
    pub fn wake(&self) {
        if let Some(ctx) = &*self.shared.ctx.lock().unwrap_or_else(|e| e.into_inner()) {
            ctx.request_repaint();
        }
    }

    /// Whether windows can be shown.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }
}

/// The dialog host, to be run on the process's main thread (macOS draws windows there
/// only; the dialog process has nothing else for it to do).
pub struct Host {
    rx: mpsc::Receiver<DialogRequest>,
    backend: Arc<dyn Services>,
    notifier: Notifier,
    shared: Arc<Shared>,
}

/// Told each time the window closes: how many requests the host has taken so far, or why
/// windows cannot be shown at all (then the host has stopped).
pub type RoundEnd = Box<dyn FnMut(Result<u64, String>)>;

impl Host {
    /// The host and the handle that sends it requests from other threads.
    pub fn new(backend: Arc<dyn Services>, notifier: Notifier) -> (Host, HostHandle) {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            ctx: Mutex::new(None),
            running: AtomicBool::new(true),
        });
        let handle = HostHandle {
            tx,
            shared: shared.clone(),
        };
        let host = Host {
            rx,
            backend,
            notifier,
            shared,
        };
        (host, handle)
    }

    /// Show windows as requests come, until every handle is gone or windows turn out
    /// impossible. Windows open only when a request comes.
    pub fn run(self, mut round_end: RoundEnd) {
        let Host {
            rx,
            backend,
            notifier,
            shared,
        } = self;
        let received = Cell::new(0u64);
        while let Ok(first) = rx.recv() {
            let mut windows = Windows {
                backend: backend.clone(),
                notifier: notifier.clone(),
                rx: &rx,
                received: &received,
                stack: Vec::new(),
                shown: None,
                placed: false,
            };
            windows.request(first);
            if windows.stack.is_empty() {
                drop(windows);
                round_end(Ok(received.get()));
                continue;
            }
            let (title, size) = {
                let top = windows.stack.last().expect("not empty");
                (top.title(backend.lang()), top.size())
            };
            let options = native_options(&title, size);
            let ctx_slot = shared.clone();
            let result = eframe::run_native(
                "certray",
                options,
                Box::new(move |cc| {
                    fonts::install(&cc.egui_ctx);
                    *ctx_slot.ctx.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(cc.egui_ctx.clone());
                    Ok(Box::new(windows))
                }),
            );
            *shared.ctx.lock().unwrap_or_else(|e| e.into_inner()) = None;
            if let Err(e) = result {
                // No display or no OpenGL: from now on the bridge's prompts answer "no one to
                // ask", as when headless. The dialogs of this round were dropped with the app,
                // which answered their waiting prompts.
                tracing::error!(error = %e, "cannot open windows; dialogs are off");
                shared.running.store(false, Ordering::SeqCst);
                while rx.try_recv().is_ok() {}
                round_end(Err(e.to_string()));
                return;
            }
            round_end(Ok(received.get()));
        }
    }
}

fn native_options(title: &str, size: egui::Vec2) -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_app_id("certray")
            .with_inner_size(size)
            .with_resizable(false)
            .with_minimize_button(false)
            .with_maximize_button(false)
            .with_window_level(egui::WindowLevel::AlwaysOnTop),
        ..Default::default()
    }
}

/// The eframe app: a stack of dialogs, the topmost shown.
struct Windows<'a> {
    backend: Arc<dyn Services>,
    notifier: Notifier,
    rx: &'a mpsc::Receiver<DialogRequest>,
    /// How many requests came through `rx`.
    received: &'a Cell<u64>,
    stack: Vec<Box<dyn Dialog>>,
    /// Title and size last applied to the window, and which dialog had them.
    shown: Option<(usize, String, egui::Vec2)>,
    /// The window has been moved near the tray.
    placed: bool,
}

impl Windows<'_> {
    fn request(&mut self, request: DialogRequest) {
        self.received.set(self.received.get() + 1);
        let Some(dialog) = dialogs::build(request, &self.backend) else {
            return;
        };
        if dialog.urgent() {
            self.stack.push(dialog);
        } else {
            // Underneath the prompts, which have a web page waiting.
            let at = self
                .stack
                .iter()
                .position(|d| d.urgent())
                .unwrap_or(self.stack.len());
            self.stack.insert(at, dialog);
        }
    }

    /// Apply the top dialog's title and size when the top changed; take the focus then.
    fn fit(&mut self, ctx: &egui::Context) {
        let lang = self.backend.lang();
        let top = self.stack.last().expect("not empty");
        let id = &**top as *const dyn Dialog as *const () as usize;
        let (title, size) = (top.title(lang), top.size());
        let changed = match &self.shown {
            Some((i, t, s)) => *i != id || *t != title || *s != size,
            None => true,
        };
        if changed {
            let new_top = self.shown.as_ref().is_none_or(|(i, _, _)| *i != id);
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(size));
            if new_top {
                ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
            }
            self.shown = Some((id, title, size));
            self.placed = false;
        }
        if !self.placed
            && let Some(monitor) = ctx.input(|i| i.viewport().monitor_size)
        {
            let x = (monitor.x - size.x - MARGIN).max(0.0);
            ctx.send_viewport_cmd(egui::ViewportCommand::OuterPosition(egui::pos2(x, TOP)));
            self.placed = true;
        }
    }
}

impl eframe::App for Windows<'_> {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        while let Ok(r) = self.rx.try_recv() {
            self.request(r);
        }
        // Prompts whose web request went away.
        self.stack.retain(|d| d.alive());
        // Esc or the title bar's ×: cancel the top dialog only.
        let (escape, close) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::Escape),
                i.viewport().close_requested(),
            )
        });
        if (escape || close)
            && let Some(mut top) = self.stack.pop()
        {
            top.cancel();
        }
        if close && !self.stack.is_empty() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        if self.stack.is_empty() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        self.fit(&ctx);
        let mut open = Vec::new();
        let outcome = {
            let top = self.stack.last_mut().expect("not empty");
            let mut cx = Cx {
                lang: self.backend.lang(),
                backend: &self.backend,
                notifier: &self.notifier,
                open: &mut open,
            };
            egui::CentralPanel::default()
                .show(ui, |ui| top.ui(ui, &mut cx))
                .inner
        };
        if outcome == Outcome::Close {
            self.stack.pop();
        }
        for r in open {
            // Opened from the top dialog: goes on top of it, whatever its kind.
            if let Some(d) = dialogs::build(r, &self.backend) {
                self.stack.push(d);
            }
        }
        if self.stack.is_empty() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        // Notice prompts that went away and requests, even when nothing moves.
        ctx.request_repaint_after(Duration::from_millis(250));
    }
}

impl Drop for Windows<'_> {
    fn drop(&mut self) {
        // Closing with dialogs still open (certray stopping): answer whoever waits. Nothing
        // was ever drawn when the window could not be opened.
        let drawn = self.shown.is_some();
        for mut d in self.stack.drain(..) {
            if drawn { d.cancel() } else { d.never_shown() }
        }
    }
}
