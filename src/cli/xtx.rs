//! `certray xtx on|off|status` and `certray xtx trust install|remove|status [--system]`.
//! The listeners themselves are the daemon's ([`crate::daemon`]).

use clap::Subcommand;

use super::{Ctx, Failure};
use crate::bridge::xtx::trust::{self, InstallOptions, RemoveOptions, Trust};
use crate::config;
use crate::error::Code;
use crate::i18n::Lang;

#[derive(Debug, Subcommand)]
pub enum XtxCommand {
    /// Turn the BJCA-compatible endpoint on (`[xtx] enabled = true`); `certray run` starts it.
    On,
    /// Turn it off.
    Off,
    /// Whether it is on, where it listens, whether its TLS certificate is trusted.
    Status,
    /// The local CA that lets browsers trust wss://127.0.0.1:21061.
    #[command(subcommand)]
    Trust(TrustCommand),
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Make the per-install CA and server certificate (when needed) and install the CA into
    /// the user's NSS databases (Chromium, Firefox).
    Install {
        /// Also into the system store (root only).
        #[arg(long)]
        system: bool,
        /// Make a new CA even when the current one is still good.
        #[arg(long)]
        renew: bool,
    },
    /// Remove certray's CAs from the stores and delete the identity.
    Remove {
        /// Also from the system store (root only).
        #[arg(long)]
        system: bool,
    },
    /// What is installed where.
    Status,
}

fn trust_failure(e: trust::Error) -> Failure {
    Failure::new(e.code(), e.to_string())
}

pub fn command(ctx: &Ctx, cmd: XtxCommand) -> Result<(), Failure> {
    let lang = ctx.lang;
    match cmd {
        XtxCommand::On | XtxCommand::Off => {
            let on = matches!(cmd, XtxCommand::On);
            let path = ctx
                .config_path
                .clone()
                .or_else(config::default_path)
                .ok_or_else(|| Failure::new(Code::Io, "no home directory"))?;
            config::set_xtx_enabled(&path, on).map_err(|e| {
                Failure::new(Code::ConfigInvalid, format!("{}: {e}", path.display()))
            })?;
            println!(
                "{} ({})",
                if on {
                    lang.pick(
                        "已开启 BJCA 兼容接口；重新启动证书助手后生效",
                        "The BJCA-compatible endpoint is on; it starts when certray starts again",
                    )
                } else {
                    lang.pick(
                        "已关闭 BJCA 兼容接口；重新启动证书助手后生效",
                        "The BJCA-compatible endpoint is off once certray starts again",
                    )
                },
                path.display()
            );
            Ok(())
        }
        XtxCommand::Status => {
            let config = ctx.config()?;
            let x = &config.xtx;
            println!(
                "{}\t{}",
                lang.pick("BJCA 兼容接口", "BJCA-compatible endpoint"),
                if x.enabled {
                    lang.pick("已开启", "on")
                } else {
                    lang.pick("未开启", "off")
                }
            );
            println!("ws\tws://{}/xtxapp/  http://{}/synctl", x.listen, x.listen);
            println!(
                "wss\twss://{}/xtxapp/  https://{}/synctl",
                x.tls_listen, x.tls_listen
            );
            let trust = Trust::for_current_user().map_err(trust_failure)?;
            print_trust(&trust.status(), lang);
            Ok(())
        }
        XtxCommand::Trust(t) => {
            let trust = Trust::for_current_user().map_err(trust_failure)?;
            match t {
                TrustCommand::Install { system, renew } => {
                    let report = trust
                        .install(InstallOptions { system, renew })
                        .map_err(trust_failure)?;
                    if let Some(why) = &report.renewed {
                        println!(
                            "{}{} ({why})",
                            lang.pick("已生成本机证书：", "Made the local CA: "),
                            report.identity.nickname
                        );
                    }
                    for (kind, path) in &report.stores {
                        println!("{}\t{}", kind.as_str(), path.display());
                    }
                    for (kind, path, why) in &report.failed {
                        eprintln!("{}\t{}\t{why}", kind.as_str(), path.display());
                    }
                    if let Some(p) = &report.system {
                        println!("system\t{}", p.display());
                    }
                    println!(
                        "{}",
                        lang.pick(
                            "浏览器重新启动后信任 https://127.0.0.1:21061",
                            "Browsers trust https://127.0.0.1:21061 once restarted"
                        )
                    );
                    Ok(())
                }
                TrustCommand::Remove { system } => {
                    let report = trust
                        .remove(RemoveOptions { system })
                        .map_err(trust_failure)?;
                    for (kind, path, nicks) in &report.stores {
                        for n in nicks {
                            println!("{}\t{}\t{n}", kind.as_str(), path.display());
                        }
                    }
                    for p in &report.system_removed {
                        println!("system\t{}", p.display());
                    }
                    for p in &report.system_left {
                        eprintln!(
                            "{} {} (--system)",
                            lang.pick("系统证书库中仍有：", "Still in the system store:"),
                            p.display()
                        );
                    }
                    Ok(())
                }
                TrustCommand::Status => {
                    print_trust(&trust.status(), lang);
                    Ok(())
                }
            }
        }
    }
}

fn print_trust(status: &trust::Status, lang: Lang) {
    match &status.identity {
        Some(i) => println!(
            "{}\t{} (SHA-256 {})",
            lang.pick("本机证书", "Local CA"),
            i.nickname,
            i.ca_sha256
        ),
        None => println!(
            "{}\t{}",
            lang.pick("本机证书", "Local CA"),
            lang.pick("未安装", "not installed")
        ),
    }
    for s in status.stores.iter().chain(std::iter::once(&status.system)) {
        let state = if s.trusts_current() {
            lang.pick("已信任", "trusted").to_string()
        } else if let Some(e) = &s.error {
            e.clone()
        } else {
            lang.pick("未信任", "not trusted").to_string()
        };
        println!("{}\t{}\t{state}", s.kind.as_str(), s.path.display());
    }
}
