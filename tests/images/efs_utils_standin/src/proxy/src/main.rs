//! Stand-in for efs-proxy, the TLS proxy efs-utils starts for every mount: it prints its
//! version and otherwise refuses to run (there is nothing to proxy without a real mount).
fn main() {
    if std::env::args().any(|arg| arg == "--version") {
        println!("efs-proxy {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    eprintln!("efs-proxy (stand-in): no real proxy in CI images");
    std::process::exit(1);
}
