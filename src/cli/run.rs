//! `certray run`: the daemon ([`crate::daemon`]), with what it says on the terminal.

use super::{Ctx, Failure};
use crate::config::Config;
use crate::core::LoadFailure;
use crate::daemon::{self, DesktopUi, Ready};

/// Run the daemon on `config`, with the desktop when `desktop` and there is a display.
/// `on_ready` runs once it serves, after the lines every start prints (the demo adds its
/// own).
pub fn run(
    ctx: &Ctx,
    config: Config,
    desktop: bool,
    on_ready: impl FnOnce(&str),
) -> Result<(), Failure> {
    let mut hooks = Terminal {
        ctx,
        on_ready: Some(on_ready),
    };
    daemon::run(
        daemon::Options {
            config,
            config_path: ctx.config_path.clone(),
            lang: ctx.lang,
            desktop,
        },
        &mut hooks,
    )?;
    Ok(())
}

/// The daemon's start, told on the terminal.
struct Terminal<'a, F> {
    ctx: &'a Ctx,
    on_ready: Option<F>,
}

impl<F: FnOnce(&str)> daemon::Hooks for Terminal<'_, F> {
    fn loaded(&mut self, failures: &[LoadFailure]) {
        self.ctx.warn_failures(failures);
    }

    fn ready(&mut self, ready: &Ready<'_>) {
        let lang = self.ctx.lang;
        println!(
            "{}{}",
            lang.pick("证书助手已启动：", "certray is running: "),
            ready.url
        );
        println!(
            "{}",
            match ready.desktop {
                DesktopUi::On => lang.pick(
                    "桌面界面：已开启（托盘图标、对话框和通知）",
                    "Desktop UI: on (tray icon, dialogs, notifications)"
                ),
                DesktopUi::Headless => lang.pick(
                    "桌面界面：未开启（--headless）",
                    "Desktop UI: off (--headless)"
                ),
                DesktopUi::NoDisplay => lang.pick(
                    "桌面界面：未开启（没有图形显示）",
                    "Desktop UI: off (no display)"
                ),
            }
        );
        if !ready.xtx.is_empty() {
            println!(
                "{}{}",
                lang.pick("BJCA 兼容接口：", "BJCA-compatible endpoint: "),
                ready.xtx.join(" ")
            );
        }
        if let Some(f) = self.on_ready.take() {
            f(ready.url);
        }
    }
}
