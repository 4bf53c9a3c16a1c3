//! What the benches share: whether this is a full run, medians, the verdict printed after a
//! target, and a client of the bridge ([`bridge`]). (A directory module: cargo takes
//! `benches/*.rs` for benches of their own.)

use std::time::Duration;

#[allow(dead_code)] // for the benches that drive the bridge
pub mod bridge;

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

/// `--seconds S --rounds N` of a full run (defaults 2 s and 6 rounds), for the benches that
/// count signatures for a while each way; a smoke run's are 0.2 s, once.
#[allow(dead_code)] // for the benches that count
pub fn seconds_and_rounds(full: bool) -> (f64, usize) {
    if !full {
        return (0.2, 1);
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: f64| -> f64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    (arg("--seconds", 2.0), arg("--rounds", 6.0) as usize)
}
