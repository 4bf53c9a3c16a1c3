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
//! tray thread its commands, and the one menu-click handler. [`local`] is the tray on its
//! thread (icon, tooltip, menu from [`menu`]); each platform's loop has its own file and
//! the same two items, `Waker` and `spawn`.

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

use std::sync::{Mutex, Once, mpsc};

use super::view::{Action, TrayView};

/// Where menu clicks go: set by [`start`], cleared when its tray stops. muda takes one
/// event handler per process, once, so the handler forwards to this.
type Clicks = Box<dyn Fn(Action) + Send + Sync>;
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

impl TrayHandle {
    /// Show `view` (icon, tooltip, menu). Never blocks.
    pub fn show(&self, view: TrayView) {
        if self.tx.send(Command::Show(Box::new(view))).is_ok() {
            self.waker.wake();
        }
    }
}

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
