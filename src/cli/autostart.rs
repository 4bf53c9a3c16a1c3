//! `certray autostart on|off|status`: start certray at login (the tray's 开机自动启动).

use super::{Ctx, Failure};
use crate::error::Code;
use crate::platform::autostart;

pub fn autostart(ctx: &Ctx, state: &str) -> Result<(), Failure> {
    let lang = ctx.lang;
    if state != "status" {
        let path =
            autostart::set(state == "on").map_err(|e| Failure::new(Code::Io, e.to_string()))?;
        tracing::info!(path = %path.display(), "autostart entry written");
    }
    println!(
        "{}",
        if autostart::is_enabled() {
            lang.pick("开机自动启动：已开启", "Start at login: on")
        } else {
            lang.pick("开机自动启动：已关闭", "Start at login: off")
        }
    );
    Ok(())
}
