//! `certray sign`: sign a file (or a digest) with a certificate's private key, through the
//! core's signing use case as a local requester.

use std::sync::Arc;

use super::args::SignArgs;
use super::pin_entry::PinSource;
use super::{Ctx, Failure, write_file};
use crate::core::{Approvals, Audit, Credentials, Format, Headless, Requester, SignJob, Signing};
use crate::error::Code;
use crate::model::SignInput;

pub fn sign(ctx: &Ctx, args: SignArgs) -> Result<(), Failure> {
    let config = ctx.config()?;
    let live = Arc::new(ctx.inventory(&config)?);
    let bytes = std::fs::read(&args.input)
        .map_err(|e| Failure::new(Code::Io, format!("{}: {e}", args.input.display())))?;
    let input = if args.digest {
        SignInput::Digest(bytes)
    } else {
        SignInput::Data(bytes)
    };
    let job = SignJob {
        certificate: args.cert.clone(),
        hash: args.hash,
        input,
        format: Format::Raw,
    };
    let dir = crate::config::state_dir();
    let signing = Signing::new(
        live.clone(),
        Arc::new(Approvals::new(&config.bridge, dir.as_deref())),
        Arc::new(Audit::open(dir.as_deref())),
        Arc::new(Headless),
    );
    // What cannot be signed is refused before a PIN is typed, and so is a PIN that could
    // lock the key.
    let (entry, _) = signing.check(&job)?;
    let state = live.pin_state(&entry.token_id)?;
    state.admit(args.pin.force)?;
    let mut pins = PinSource::new(args.pin, ctx.lang);
    if pins.interactive() {
        eprintln!("{}", state.describe(ctx.lang));
    }
    let pin = pins.read("请输入密钥的用户密码（PIN）", "Enter the token's user PIN")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
    let sig = runtime.block_on(signing.sign(
        &Requester::Local,
        job,
        Credentials {
            pin: Some(pin),
            force: args.pin.force,
        },
    ))?;
    write_file(&args.output, &sig.bytes)?;
    eprintln!(
        "{}{} ({}, {} {}) → {}",
        ctx.lang.pick("已签名：", "Signed: "),
        entry.id,
        sig.algorithm,
        sig.bytes.len(),
        ctx.lang.pick("字节", "bytes"),
        args.output.display()
    );
    Ok(())
}
