// softskf starts a watcher thread (inotify on SOFTSKF_DIR/presence) that runs as long as the
// process does. Mark the library NODELETE so a dlclose (libloading's Drop) can never unmap
// the code under that thread.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
}
