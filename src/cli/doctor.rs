//! `certray doctor` (环境检测): the environment report.

use std::io::Write;

use super::{Ctx, Failure, print_json};

/// Print the environment report; exit with [`crate::doctor::EXIT_ERRORS`] (after
/// flushing) when a check found an error.
pub fn doctor(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let report = crate::doctor::run_with_config_file(ctx.config_path.as_deref(), ctx.lang);
    if json {
        print_json(&report);
    } else {
        print!("{}", crate::doctor::render(&report, ctx.lang));
    }
    let code = report.exit_code();
    if code != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}
