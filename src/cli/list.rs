//! `certray list`: every token and every certificate on it; with `--uscc CODE`, only the
//! certificates of that company and the keys holding them.

use time::OffsetDateTime;

use super::{Ctx, Failure, print_json, render};
use crate::bridge::wire::ListDto;
use crate::core;

pub fn list(ctx: &Ctx, json: bool, uscc: Option<&str>) -> Result<(), Failure> {
    // A mistyped code is refused before any token is read.
    let uscc = uscc.map(core::uscc_query).transpose()?;
    let config = ctx.config()?;
    let inv = ctx.inventory(&config)?;
    let mut snapshot = inv.snapshot();
    if let Some(code) = &uscc {
        let s = std::sync::Arc::make_mut(&mut snapshot);
        s.certificates.retain(|c| core::holds_uscc(c, code));
        let holders: Vec<_> = s.certificates.iter().map(|c| c.token_id.clone()).collect();
        s.tokens.retain(|t| holders.contains(&t.id));
    }
    let list = ListDto::new(
        &snapshot,
        OffsetDateTime::now_utc(),
        config.alerts.expiry_warning_days,
    );
    if json {
        print_json(&list);
    } else {
        print!("{}", render::list(&list, ctx.lang));
    }
    Ok(())
}
