//! certray itself as the tests run it: the binary in a fixed environment, or the live
//! inventory in-process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};

/// An in-process live inventory over `module` alone (no PC/SC, no default modules), for
/// tests that drive the bridge or the UI without a daemon.
pub fn live_on(module: impl Into<PathBuf>) -> certray::core::Live {
    let mut config = certray::config::Config::default();
    config.pkcs11.modules = vec![certray::config::ModuleConfig::new(module)];
    config.pkcs11.use_defaults = false;
    certray::core::Live::start(
        &config,
        certray::core::LiveOptions {
            watch: true,
            pcsc: false,
        },
    )
    .expect("Live::start")
}

/// The certray binary built for these tests, in a fixed environment:
/// zh-CN messages unless the test asks otherwise, and no user config.
pub fn certray(env: &[(&str, OsString)]) -> Command {
    certray_at(env!("CARGO_BIN_EXE_certray").as_ref(), env)
}

/// [`certray`], run from `program` (a link to the binary somewhere else, say).
pub fn certray_at(program: &std::path::Path, env: &[(&str, OsString)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("RUST_LOG")
        .env("CERTRAY_LANG", "zh_CN.UTF-8")
        .envs(env.iter().map(|(k, v)| (*k, v)));
    cmd
}

/// Run certray with `stdin` fed in, whatever its exit status.
pub fn certray_with_input(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start certray");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for certray")
}
