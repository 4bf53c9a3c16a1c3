//! What the benches share: whether this is a full run, medians, and the verdict printed
//! after a target. (A directory module: cargo takes `benches/*.rs` for benches of their own.)

use std::time::Duration;

/// `cargo bench` passes `--bench`: a full run. `cargo test --all-targets` runs each bench
/// without it, as a smoke run that only shows the bench still works.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

#[allow(dead_code)] // not every bench takes medians (module_ceiling counts)
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// What a result line says after its target: "met" or "MISSED" in a full run; in a smoke
/// run (`ran`: how little it did) that the numbers measure nothing.
pub fn verdict(full: bool, met: bool, ran: &str) -> String {
    if !full {
        format!("(smoke run: {ran}, not a measurement; `cargo bench` measures)")
    } else if met {
        "met".into()
    } else {
        "MISSED".into()
    }
}
