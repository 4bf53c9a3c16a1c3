fn main() {
    std::process::exit(certray::cli::main());
}
