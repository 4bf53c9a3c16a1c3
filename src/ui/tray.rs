//! The tray icon and its menu (tray-icon), on a thread of its own.
//!
//! A `TrayIcon` is `!Send` and must live on a thread that runs the platform's event loop:
//! on Linux a GTK main loop (tray-icon builds on GTK 3 and ayatana-appindicator, which falls
//! back to an XEmbed icon when no StatusNotifier host is there), on Windows a Win32 message
//! loop. The tray thread only renders [`TrayView`]s the controller sends; clicks go back as
//! [`Action`]s through muda's one process-wide event handler. macOS: the main thread's
//! event loop, which `main` keeps for the tray ([`main_thread`]).
//!
//! This file is what every platform shares: [`start`], the [`TrayHandle`] that sends the
//! tray thread its commands, the one menu-click handler, and [`link`]. [`local`] is the tray on its
//! thread (icon, tooltip, menu from [`menu`]); each platform's loop has its own file and
//! the same two items, `Waker` and `spawn`.
//!
//! *Which executables have a tray*: only those whose `main` calls [`link`]. The controller
//! reaches the tray only through what [`link`] registered, so an executable that never
//! calls it has no path to this code and its linker leaves the platform toolkit out: on
//! Linux the headless `certray` needs no GTK (not even loaded, a third of an idle daemon's
//! memory), and `certray-desktop` is the same program with the tray linked in.

mod icon_files;
mod local;
pub mod main_thread;
mod menu;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
mod other;
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
use other as platform;

use std::sync::{Mutex, Once, OnceLock, mpsc};

use super::view::{Action, TrayView};

/// What a menu click calls.
pub type Clicks = Box<dyn Fn(Action) + Send + Sync>;
/// Where menu clicks go: set by [`start`], cleared when its tray stops. muda takes one
/// event handler per process, once, so the handler forwards to this.
static CLICKS: Mutex<Option<Clicks>> = Mutex::new(None);

/// What the tray thread is told.
enum Command {
    Show(Box<TrayView>),
    Stop,
}

/// Talks to the tray thread. Dropping it removes the icon and ends the thread.
pub struct TrayHandle {
    tx: mpsc::Sender<Command>,
    waker: platform::Waker,
}

/// A tray that is shown, as the controller holds it: dropping it removes the icon.
pub trait Shown {
    /// Show `view` (icon, tooltip, menu). Never blocks.
    fn show(&self, view: TrayView);
}

impl Shown for TrayHandle {
    fn show(&self, view: TrayView) {
        if self.tx.send(Command::Show(Box::new(view))).is_ok() {
            self.waker.wake();
        }
    }
}

type Starter = fn(TrayView, Clicks) -> Result<Box<dyn Shown>, String>;

/// The tray this executable has, if its `main` linked one in.
static LINKED: OnceLock<Starter> = OnceLock::new();

/// Link the tray into this executable: its `main` calls this before anything runs. Until
/// then (and in an executable that never calls it) [`start_linked`] has no tray to start.
pub fn link() {
    let _ =
        LINKED.set(|view, on_click| start(view, on_click).map(|t| Box::new(t) as Box<dyn Shown>));
}

/// Whether this executable has the tray linked in.
pub fn linked() -> bool {
    LINKED.get().is_some()
}

/// Start the tray [`link`] linked in, as [`start`] does; fails when there is none.
pub fn start_linked(view: TrayView, on_click: Clicks) -> Result<Box<dyn Shown>, String> {
    match LINKED.get() {
        Some(start) => start(view, on_click),
        None => Err(format!(
            "this executable has no tray; `{DESKTOP_EXE}` is certray with it"
        )),
    }
}

/// The executable that is certray with the tray linked in (see the module's docs).
pub const DESKTOP_EXE: &str = if cfg!(windows) {
    "certray-desktop.exe"
} else {
    "certray-desktop"
};

/// `certray` itself, beside [`DESKTOP_EXE`].
pub const CLI_EXE: &str = if cfg!(windows) {
    "certray.exe"
} else {
    "certray"
};

impl Drop for TrayHandle {
    fn drop(&mut self) {
        *CLICKS.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.tx.send(Command::Stop).is_ok() {
            self.waker.wake();
        }
    }
}

/// Start the tray thread showing `view`; menu clicks call `on_click` (on the tray thread:
/// it must return at once). Fails when there is no tray to be had (GTK cannot open the
/// display, ayatana-appindicator is not installed, macOS).
pub fn start(
    view: TrayView,
    on_click: impl Fn(Action) + Send + Sync + 'static,
) -> Result<TrayHandle, String> {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        tray_icon::menu::MenuEvent::set_event_handler(Some(|e: tray_icon::menu::MenuEvent| {
            let Some(action) = Action::from_id(e.id().as_ref()) else {
                return;
            };
            if let Some(f) = &*CLICKS.lock().unwrap_or_else(|e| e.into_inner()) {
                f(action);
            }
        }));
    });
    *CLICKS.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(on_click));
    let (tx, rx) = mpsc::channel();
    match platform::spawn(view, rx) {
        Ok(waker) => Ok(TrayHandle { tx, waker }),
        Err(e) => {
            *CLICKS.lock().unwrap_or_else(|e| e.into_inner()) = None;
            Err(e)
        }
    }
}
