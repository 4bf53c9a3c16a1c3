//! `certray origins list|revoke`: the websites allowed to use the certificates.

use super::args::OriginsCommand;
use super::{Ctx, Failure, state_dir};
use crate::core::approvals;
use crate::error::Code;

pub fn origins(ctx: &Ctx, cmd: OriginsCommand) -> Result<(), Failure> {
    let dir = state_dir()?;
    let lang = ctx.lang;
    match cmd {
        OriginsCommand::List => {
            let config = ctx.config()?;
            for o in approvals::remembered_origins(&dir) {
                println!(
                    "{o}\t{}",
                    lang.pick("已授权（对话框）", "approved (dialog)")
                );
            }
            for o in &config.bridge.allowed_origins {
                println!(
                    "{o}\t{}",
                    lang.pick("配置文件允许", "allowed in the config")
                );
            }
            for o in &config.bridge.page_pin_origins {
                println!(
                    "{o}\t{}",
                    lang.pick("可在网页提交密码（配置文件）", "may send the PIN (config)")
                );
            }
            for o in approvals::page_pin::remembered(&dir) {
                println!(
                    "{o}\t{}",
                    lang.pick(
                        "可在网页提交密码（对话框，BJCA 兼容接口）",
                        "may send the PIN (dialog, BJCA-compatible endpoint)"
                    )
                );
            }
            Ok(())
        }
        OriginsCommand::Revoke { origin } => {
            let io = |e: std::io::Error| Failure::new(Code::Io, e.to_string());
            let page_pin = approvals::page_pin::revoke(&dir, &origin).map_err(io)?;
            let was = approvals::revoke_origin(&dir, &origin).map_err(io)? || page_pin;
            if was {
                // A running certray reads origins.json again before its next decision.
                println!(
                    "{} {origin}",
                    lang.pick(
                        "已撤销授权（正在运行的证书助手立即生效）：",
                        "Approval withdrawn (a running certray stops serving it at once):"
                    )
                );
                Ok(())
            } else {
                Err(Failure::new(
                    Code::BadRequest,
                    format!(
                        "{origin} was not approved for good; an approval given \"this time\" only \
                         lasts until certray stops: withdraw it under 已授权网站 in the tray menu, \
                         or restart certray"
                    ),
                ))
            }
        }
    }
}
