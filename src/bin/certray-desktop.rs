//! The `certray-desktop` binary: `certray` with the tray linked in (see src/main.rs). It
//! takes the same commands; `certray run` on a Linux desktop becomes this program.

fn main() {
    // The tray is GTK, which opens the OpenGL driver at start-up to pick visuals even though
    // it never draws with it; on Mesa's software renderer that is 50 MiB (libLLVM) for
    // nothing. The dialogs' OpenGL (glutin) does not read this variable. Set here, before
    // any thread exists, and only when the user has not chosen otherwise.
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none() {
        // SAFETY: no other thread runs yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("GDK_GL", "disable") };
    }
    certray::ui::tray::link();
    // On macOS the tray must own the main thread; elsewhere this just calls `cli::main`.
    std::process::exit(certray::ui::tray::main_thread::run(certray::cli::main));
}
