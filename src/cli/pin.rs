//! `certray pin status|change|unlock`: the token's PIN, through the inventory.

use super::args::PinCommand;
use super::pin_entry::PinSource;
use super::{Ctx, Failure, print_json};
use crate::bridge::wire::PinDto;

pub fn pin(ctx: &Ctx, cmd: PinCommand) -> Result<(), Failure> {
    let inv = ctx.inventory(&ctx.config()?)?;
    let lang = ctx.lang;
    match cmd {
        PinCommand::Status { token, json } => {
            let state = inv.pin_state(&token)?;
            if json {
                #[derive(serde::Serialize)]
                struct Status {
                    token_id: String,
                    pin: PinDto,
                }
                print_json(&Status {
                    token_id: token.to_string(),
                    pin: state.into(),
                });
            } else {
                println!("{}", state.describe(lang));
            }
            Ok(())
        }
        PinCommand::Change { token, pin } => {
            let state = inv.pin_state(&token)?;
            state.admit(pin.force)?;
            let mut pins = PinSource::new(pin, lang);
            if pins.interactive() {
                eprintln!("{}", state.describe(lang));
            }
            let old = pins.read("当前密码", "Current PIN")?;
            let new = pins.read_new(state)?;
            let after = inv.change_pin(&token, old, new, pin.force)?;
            println!("{}", lang.pick("密码已修改。", "The PIN has been changed."));
            println!("{}", after.describe(lang));
            Ok(())
        }
        PinCommand::Unlock { token, pin } => {
            let state = inv.pin_state(&token)?;
            let mut pins = PinSource::new(pin, lang);
            if pins.interactive() {
                eprintln!("{}", state.describe(lang));
            }
            let so = pins.read("管理员密码或解锁授权码", "Admin PIN or unlock code")?;
            let new = pins.read_new(state)?;
            let after = inv.unlock(&token, so, new, pin.force)?;
            println!(
                "{}",
                lang.pick(
                    "密钥已解锁，新密码已设置。",
                    "The token is unlocked and the new PIN is set."
                )
            );
            println!("{}", after.describe(lang));
            Ok(())
        }
    }
}
