//! `certray inspect FILE…` (证书信息检测): certificate files (`.cer`, `.crt`, `.der`, `.pem`,
//! `.p7b`) shown as `certray show` shows a certificate on a token, with their issuers
//! checked against each other and the CA certificates of `[trust] ca_paths` and the system.

use time::OffsetDateTime;

use super::args::InspectArgs;
use super::{Ctx, Failure, print_json, render};
use crate::bridge::wire::CertificateDto;
use crate::core::Trust;
use crate::core::inspect::{InspectError, inspect as inspect_files};

impl From<InspectError> for Failure {
    fn from(e: InspectError) -> Self {
        Failure::new(e.code(), e.to_string())
    }
}

pub fn inspect(ctx: &Ctx, args: InspectArgs) -> Result<(), Failure> {
    let config = ctx.config()?;
    let trust = Trust::load(&config.trust);
    let now = OffsetDateTime::now_utc();
    let files = inspect_files(&args.files, &trust);
    let mut failures: Vec<Failure> = Vec::new();
    let mut dtos: Vec<CertificateDto> = Vec::new();
    for f in files {
        match f.certificates {
            Ok(certs) => dtos.extend(
                certs
                    .iter()
                    .map(|c| CertificateDto::new(c, now, config.alerts.expiry_warning_days)),
            ),
            Err(e) => failures.push(e.into()),
        }
    }
    if args.json {
        // A file that is not a certificate fails the whole command: the JSON is the error.
        if let Some(f) = failures.into_iter().next() {
            return Err(f);
        }
        print_json(&dtos);
        return Ok(());
    }
    for (i, dto) in dtos.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}: {}", ctx.lang.pick("文件", "File"), dto.label);
        print!("{}", render::certificate(dto, None, ctx.lang));
    }
    // Every bad file is reported; the last one as the command's failure (its exit code).
    let last = failures.pop();
    for f in &failures {
        eprintln!("{}", render::failure(f, ctx.lang));
    }
    last.map_or(Ok(()), Err)
}
