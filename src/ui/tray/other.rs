//! Neither Linux, Windows nor macOS: no tray.

use std::sync::mpsc;

use super::Command;
use crate::ui::view::TrayView;

pub struct Waker;

impl Waker {
    pub fn wake(&self) {}
}

pub fn spawn(_view: TrayView, _rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
    Err("the tray is not supported on this platform".into())
}
