//! `certray show`: one certificate in full, as text, JSON, PEM or a DER file.

use time::OffsetDateTime;

use super::args::ShowArgs;
use super::{Ctx, Failure, print_json, render, write_file};
use crate::bridge::wire::{CertificateDto, TokenDto};

pub fn show(ctx: &Ctx, args: ShowArgs) -> Result<(), Failure> {
    let ShowArgs {
        cert,
        json,
        pem,
        der,
    } = args;
    let config = ctx.config()?;
    let inv = ctx.inventory(&config)?;
    let entry = inv.find_certificate(&cert)?;
    if let Some(path) = der {
        write_file(&path, &entry.der)?;
    } else if pem {
        print!("{}", crate::cert::to_pem(&entry.der));
    } else {
        let dto = CertificateDto::new(
            &entry,
            OffsetDateTime::now_utc(),
            config.alerts.expiry_warning_days,
        );
        if json {
            print_json(&dto);
        } else {
            let token = inv.token(&entry.token_id).ok().as_ref().map(TokenDto::from);
            print!("{}", render::certificate(&dto, token.as_ref(), ctx.lang));
        }
    }
    Ok(())
}
