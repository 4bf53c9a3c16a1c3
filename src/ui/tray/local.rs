//! The tray as it lives on its thread, whichever platform's loop runs it: the icon, its
//! tooltip and menu, brought up to date with the newest [`TrayView`] the controller sent.

use std::sync::mpsc;

use crate::ui::icons::{self, IconState};
use crate::ui::view::TrayView;

use super::{Command, icon_files, menu};

/// Windows copies at most 128 UTF-16 units, without room for the terminator.
const TOOLTIP_MAX: usize = 120;

/// The image for a state.
fn icon(state: IconState) -> Result<tray_icon::Icon, String> {
    icons::tray_icon(state).ok_or_else(|| format!("no tray image for {state:?}"))
}

/// The tray as it lives on its thread.
pub struct Local {
    rx: mpsc::Receiver<Command>,
    tray: tray_icon::TrayIcon,
    state: IconState,
}

impl Local {
    pub fn new(view: &TrayView, rx: mpsc::Receiver<Command>) -> Result<Local, String> {
        let mut builder = tray_icon::TrayIconBuilder::new()
            .with_id("certray")
            .with_icon(icon(view.state)?)
            .with_tooltip(clip(&view.tooltip))
            .with_menu(Box::new(menu::build(view)?));
        // Icons are written to files on Linux: one directory per process, so that two
        // certray processes (tests) never remove each other's icons.
        if cfg!(target_os = "linux") {
            builder = builder.with_temp_dir_path(icon_files::icon_dir());
        }
        let tray = builder.build().map_err(|e| e.to_string())?;
        Ok(Local {
            rx,
            tray,
            state: view.state,
        })
    }

    fn apply(&mut self, view: &TrayView) {
        if view.state != self.state {
            match icon(view.state)
                .and_then(|i| self.tray.set_icon(Some(i)).map_err(|e| e.to_string()))
            {
                Ok(()) => self.state = view.state,
                Err(e) => tracing::warn!(error = %e, "cannot change the tray icon"),
            }
        }
        if let Err(e) = self.tray.set_tooltip(Some(clip(&view.tooltip))) {
            tracing::debug!(error = %e, "cannot set the tray tooltip");
        }
        match menu::build(view) {
            Ok(m) => self.tray.set_menu(Some(Box::new(m))),
            Err(e) => tracing::warn!(error = %e, "cannot rebuild the tray menu"),
        }
    }

    /// Apply what has arrived; false once the tray is to stop.
    pub fn drain(&mut self) -> bool {
        let mut latest = None;
        loop {
            match self.rx.try_recv() {
                // Only the newest view matters.
                Ok(Command::Show(v)) => latest = Some(v),
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if let Some(v) = latest {
            self.apply(&v);
        }
        true
    }
}

fn clip(s: &str) -> String {
    let mut units = 0;
    let mut out = String::new();
    for c in s.chars() {
        units += c.len_utf16();
        if units > TOOLTIP_MAX - 1 {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tooltips_are_clipped_for_windows() {
        let long = "北京云杉测试科技有限公司".repeat(20);
        let c = clip(&long);
        assert!(c.encode_utf16().count() <= TOOLTIP_MAX, "{c}");
        assert!(c.ends_with('…'));
        assert_eq!(clip("未插入密钥"), "未插入密钥");
    }

    #[test]
    fn every_state_has_an_image() {
        for s in [
            IconState::NoKey,
            IconState::Ok,
            IconState::Expiring,
            IconState::Alert,
        ] {
            icon(s).unwrap();
        }
    }
}
