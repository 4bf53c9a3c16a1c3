//! `certray demo`: provision (once) the SoftHSM demo token, list it, and run the daemon on
//! it. The one command that reaches `token` itself: provisioning a SoftHSM token is not a
//! use case of the core.

use std::io::Write;

use time::OffsetDateTime;

use super::args::DemoArgs;
use super::{Ctx, Failure, render};
use crate::bridge::wire::ListDto;
use crate::config;
use crate::error::Code;

pub fn demo(ctx: &Ctx, args: DemoArgs) -> Result<(), Failure> {
    let DemoArgs {
        reset,
        no_run,
        no_browser,
    } = args;
    let mut config = ctx.config()?;
    let data = config::data_dir().ok_or_else(|| Failure::new(Code::Io, "no home directory"))?;
    let demo = crate::token::demo::ensure(&data.join("demo"), reset)?;
    // The demo token is served by SoftHSM, first in line.
    config.pkcs11.modules.retain(|m| m.path != demo.module);
    config
        .pkcs11
        .modules
        .insert(0, config::ModuleConfig::new(demo.module.clone()));
    let inv = ctx.inventory(&config)?;
    let lang = ctx.lang;
    println!(
        "{}",
        lang.pick(
            "证书助手演示密钥（SoftHSM）",
            "certray demo token (SoftHSM)"
        )
    );
    println!("  {}: {}", lang.pick("密钥名称", "Label"), demo.label);
    println!(
        "  {}: {}",
        lang.pick("用户密码（PIN）", "User PIN"),
        demo.pin
    );
    println!(
        "  {}: {}",
        lang.pick("管理员密码", "Admin (SO) PIN"),
        demo.so_pin
    );
    println!(
        "  {}: {}",
        lang.pick("令牌目录", "Token directory"),
        demo.dir.display()
    );
    println!("  SOFTHSM2_CONF={}", demo.conf.display());
    println!();
    print!(
        "{}",
        render::list(
            &ListDto::new(
                &inv.snapshot(),
                OffsetDateTime::now_utc(),
                config.alerts.expiry_warning_days
            ),
            lang
        )
    );
    let _ = std::io::stdout().flush();
    if no_run {
        return Ok(());
    }
    // The daemon loads the modules itself: the listing's workers finalize first.
    drop(inv);
    let pin = demo.pin;
    super::run::run(ctx, config, true, |url| {
        println!(
            "{}",
            lang.pick(
                &format!("证书检测页：{url}　演示密钥的 PIN：{pin}　按 Ctrl-C 退出"),
                &format!("Check page: {url}   demo PIN: {pin}   press Ctrl-C to stop"),
            )
        );
        if !no_browser {
            open_in_browser(url);
        }
    })
}

/// Open `url` in the desktop's browser when there is a desktop; say so when there is none.
fn open_in_browser(url: &str) {
    if !crate::ui::display_available() {
        tracing::info!("no desktop: open the check page yourself");
    } else if let Err(e) = crate::ui::open(url) {
        tracing::info!(error = %e, "no browser opened");
    }
}
