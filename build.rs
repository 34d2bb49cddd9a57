//! Exports the target triple for `mysqlchk --version`.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=MYSQLCHK_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
