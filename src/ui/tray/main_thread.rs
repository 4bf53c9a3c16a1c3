//! The main thread on macOS, where AppKit (and so the tray) must run: `main` calls [`run`]
//! with the whole program.

/// Run `body` and return its exit code. On macOS `body` runs on a thread of its own
/// while the main thread serves the tray; `certray dialog-host` keeps the main thread
/// (its windows need it) and has no tray. Elsewhere `body` simply runs here.
pub fn run(body: fn() -> i32) -> i32 {
    #[cfg(target_os = "macos")]
    if !std::env::args().any(|a| a == "dialog-host") {
        return super::platform::serve(body);
    }
    body()
}
