//! Embeds the default intent and reply packs (`intents/*.toml`,
//! `replies/*.toml`) into the binary, so `kefu` runs from any directory
//! without a pack folder next to it.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut code = String::new();
    for (constant, folder) in [("INTENTS", "intents"), ("REPLIES", "replies")] {
        let dir = Path::new(&root).join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        writeln!(code, "pub const {constant}: &[(&str, &str)] = &[").unwrap();
        for path in files {
            println!("cargo:rerun-if-changed={}", path.display());
            let name = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            writeln!(code, "    ({name:?}, include_str!({:?})),", path.display()).unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    std::fs::write(Path::new(&out_dir).join("builtin_packs.rs"), code)
        .expect("write builtin_packs.rs");
}
