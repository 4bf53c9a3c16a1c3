//! The `certray` binary: see the library crate.
//!
//! On Linux this executable has no tray: GTK, which the tray needs, would be loaded into
//! every `certray` process, headless daemons and one-shot commands alike. `certray run` on
//! a desktop hands its process to `certray-desktop` (src/bin/certray-desktop.rs), the same
//! program with the tray linked in (`certray::ui::tray::link`). Elsewhere the tray needs no
//! extra libraries, so this executable has it.

fn main() {
    #[cfg(not(target_os = "linux"))]
    certray::ui::tray::link();
    // On macOS the tray must own the main thread; elsewhere this just calls `cli::main`.
    std::process::exit(certray::ui::tray::main_thread::run(certray::cli::main));
}
