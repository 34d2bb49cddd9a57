//! Exports the target triple for `mysqlchk --version`, and links release builds for musl (the
//! static builds of cross/ and scripts/release.sh), plain and TLS, with cross/hot-text.ld, which
//! puts the code a running daemon executes first and together: the binary's cold code then lies
//! in pages the daemon never touches, and the kernel, which maps a binary's pages a window of
//! 64 or 128 KiB at a time around each fault, leaves those windows out of its RSS
//! (cross/hot-text.sh made the list; cross/README.md has the figures).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=MYSQLCHK_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "musl");
    if release && musl {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cross/hot-text.ld");
        println!("cargo:rustc-link-arg-bin=mysqlchk=-T{}", script.display());
        // Segments aligned to 64 KiB (lld's default on ARM; x86_64's is 4 KiB), so the kernel
        // loads the binary at a 64 KiB boundary: the fault-around windows then cover the same
        // pages at every start, and the resident set no longer varies with where ASLR put it.
        // It moves only addresses: the file is the same size.
        println!("cargo:rustc-link-arg-bin=mysqlchk=-zmax-page-size=65536");
        println!("cargo:rerun-if-changed=cross/hot-text.ld");
    }
}
