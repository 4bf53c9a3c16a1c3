//! Linux: GTK on the tray thread; updates arrive as glib idle callbacks.

use std::cell::RefCell;
use std::sync::mpsc;

use gtk::glib;

use super::Command;
use super::icon_files;
use super::local::Local;
use crate::ui::view::TrayView;

thread_local! {
    /// The tray, on the tray thread only.
    static TRAY: RefCell<Option<Local>> = const { RefCell::new(None) };
}

pub struct Waker;

impl Waker {
    pub fn wake(&self) {
        // Runs on the thread that runs the default main context: the tray thread.
        glib::idle_add_once(drain);
    }
}

fn drain() {
    TRAY.with(|t| {
        let mut t = t.borrow_mut();
        let keep = t.as_mut().is_some_and(Local::drain);
        if !keep && t.take().is_some() {
            let _ = std::fs::remove_dir_all(icon_files::icon_dir());
            gtk::main_quit();
        }
    });
}

pub fn spawn(view: TrayView, rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("tray".into())
        .spawn(move || {
            // ayatana-appindicator is loaded at run time; tray-icon panics when it is
            // missing.
            icon_files::remove_stale();
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // The tray's windows say "certray" (class `Certray`) whichever executable
                // shows them: `certray run` becomes `certray-desktop`.
                glib::set_prgname(Some("certray"));
                gtk::init().map_err(|e| format!("GTK cannot start: {e}"))?;
                Local::new(&view, rx)
            }))
            .unwrap_or_else(|p| Err(panic_text(&*p)));
            match built {
                Ok(local) => {
                    TRAY.with(|t| *t.borrow_mut() = Some(local));
                    let _ = ready_tx.send(Ok(()));
                    gtk::main();
                    tracing::debug!("tray stopped");
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| format!("cannot start the tray thread: {e}"))?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err("the tray thread ended".into()))?;
    Ok(Waker)
}

/// A caught panic's message.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the tray panicked".into())
}
