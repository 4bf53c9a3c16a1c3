//! Running commands: stdin closed (so a PIN prompt can never hang a test), output captured,
//! and the exit status checked unless the caller says otherwise.

use std::process::{Command, Output, Stdio};

/// Run `cmd` with stdin closed and output captured; panic with the command line, stdout and
/// stderr unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Output {
    let out = run_unchecked(cmd);
    if !out.status.success() {
        panic!(
            "command failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Run `cmd` with stdin closed and output captured, whatever its exit status (for commands
/// that are expected to fail, like a login with a wrong PIN). Panics only if it cannot start.
pub fn run_unchecked(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// stdout and stderr of an [`Output`], as one lossy string (for assertions and messages).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The first line a child prints (a daemon's "running at URL" line) arrives on the channel;
/// the rest is drained so the child never blocks on a full pipe.
pub fn first_stdout_line(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    rx
}
