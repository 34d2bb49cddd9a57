//! Exports the target triple for `mysqlchk --version`, and links release builds of the TLS
//! flavour for musl (the static builds of cross/ and scripts/release.sh) with
//! cross/hot-text.ld, which puts the code a running daemon executes first and together: fewer
//! 64 KiB fault-around windows of the binary become resident (cross/hot-text.sh made the list).
//! The plain build is left as it is: it is small enough to be resident whole, and its size
//! budget has no room for what the split costs (identical functions folded only within one
//! output section).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=MYSQLCHK_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
    let tls = std::env::var_os("CARGO_FEATURE_TLS").is_some();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "musl");
    if tls && release && musl {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cross/hot-text.ld");
        println!("cargo:rustc-link-arg-bin=mysqlchk=-T{}", script.display());
        println!("cargo:rerun-if-changed=cross/hot-text.ld");
    }
}
