//! Release builds use `-Zfmt-debug=none` (cross/release.toml): every `{:?}` prints nothing there.
//! Product code must therefore format with `Display` only, or error messages and logs lose the
//! very value they are about (`invalid --listen : ...`). Test code keeps `{:?}`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn product_code_never_formats_with_debug() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests sit at the end of each file, after `#[cfg(test)]`.
        let product = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in product.lines().enumerate() {
            if line.contains(":?}") || line.contains("{:?") || line.contains(":#?}") {
                offenders.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "Debug formatting prints nothing in release builds:\n{}", offenders.join("\n"));
}
