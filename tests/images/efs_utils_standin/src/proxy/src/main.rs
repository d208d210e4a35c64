//! Stand-in for efs-proxy, the TLS proxy efs-utils starts for every mount: like the real one it
//! prints its usage for --help (it has no --version), and otherwise refuses to run (there is
//! nothing to proxy without a real mount).
fn main() {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!("Usage: efs-proxy [OPTIONS] <PROXY_CONFIG_PATH> (stand-in {})",
                 env!("CARGO_PKG_VERSION"));
        return;
    }
    eprintln!("efs-proxy (stand-in): no real proxy in CI images");
    std::process::exit(1);
}
