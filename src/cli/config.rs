//! `certray config path|show|check`: the configuration file.

use super::args::ConfigCommand;
use super::{Ctx, Failure};
use crate::config::{self, Config};
use crate::core::Live;
use crate::error::Code;

pub fn config(ctx: &Ctx, cmd: ConfigCommand) -> Result<(), Failure> {
    let lang = ctx.lang;
    let path = ctx.config_path.clone().or_else(config::default_path);
    match cmd {
        ConfigCommand::Path => {
            let path = path.ok_or_else(|| Failure::new(Code::Io, "no home directory"))?;
            println!("{}", path.display());
        }
        ConfigCommand::Show => {
            let config = ctx.config()?;
            let text = toml::to_string_pretty(&config)
                .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
            print!("{text}");
        }
        ConfigCommand::Check => {
            let (config, loaded) = Config::load(ctx.config_path.as_deref())?;
            // The check the inventory makes when it starts.
            Live::check_config(&config)?;
            crate::bridge::check_listen(config.bridge.listen)
                .map_err(|e| Failure::new(Code::ConfigInvalid, e))?;
            for m in config.pkcs11.modules.iter().filter(|m| !m.path.exists()) {
                eprintln!(
                    "{}: {} {}",
                    lang.pick("警告", "warning"),
                    lang.pick("模块文件不存在：", "module file not found:"),
                    m.path.display()
                );
            }
            match loaded {
                Some(p) => println!(
                    "{}{}",
                    lang.pick("配置有效：", "The configuration is valid: "),
                    p.display()
                ),
                None => println!(
                    "{}",
                    lang.pick(
                        "没有配置文件，使用默认配置",
                        "No configuration file: the defaults apply"
                    )
                ),
            }
        }
    }
    Ok(())
}
