//! `cargo xtask ui`: builds the UI's wasm bundle into `<target>/site/pkg`, where
//! `hopline` serves it (`--ui-dir`, default `<target>/site` next to the binary).
//!
//! `cargo xtask layers`: checks that the collector's modules depend on each other
//! one way only (see [`LAYERS`] and ARCHITECTURE.md).
//!
//! Plain cargo plus the `wasm-bindgen-cli-support` library at the exact version of
//! the `wasm-bindgen` the bundle links (both pinned in Cargo.lock), so nothing is
//! downloaded but crates.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("ui") => build_ui(),
        Some("layers") => check_layers(),
        _ => {
            eprintln!("usage: cargo xtask ui        build the web UI's wasm bundle");
            eprintln!("       cargo xtask layers    check the collector's module layers");
            std::process::exit(2);
        }
    }
}

fn build_ui() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(output) = installed {
        if !String::from_utf8_lossy(&output.stdout).contains("wasm32-unknown-unknown") {
            eprintln!("xtask: adding the wasm32-unknown-unknown target");
            let status = Command::new("rustup")
                .args(["target", "add", "wasm32-unknown-unknown"])
                .status()?;
            if !status.success() {
                bail!("rustup target add wasm32-unknown-unknown failed");
            }
        }
    }

    eprintln!("xtask: building the UI's wasm (profile wasm-release)");
    let status = Command::new(&cargo)
        .current_dir(&root)
        .env_remove("LEPTOS_OUTPUT_NAME")
        .args([
            "build",
            "--locked",
            "-p",
            "hopline-ui-wasm",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the wasm bundle failed");
    }
    let wasm = target_dir.join("wasm32-unknown-unknown/wasm-release/hopline_ui_wasm.wasm");
    let pkg = target_dir.join("site/pkg");
    std::fs::create_dir_all(&pkg)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .out_name("hopline")
        .web(true)?
        .typescript(false)
        .remove_name_section(true)
        .generate(&pkg)
        .context("wasm-bindgen failed")?;
    // Content-hashed names: browsers may keep them for good, and every build that
    // changes a byte gets new names. `manifest.txt` tells `hopline` which they are.
    for entry in std::fs::read_dir(&pkg)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("hopline-") || name.ends_with(".gz") {
            std::fs::remove_file(&path)?;
        }
    }
    let js = std::fs::read(pkg.join("hopline.js"))?;
    let wasm = std::fs::read(pkg.join("hopline_bg.wasm"))?;
    let css =
        std::fs::read(root.join("ui/style/hopline.css")).context("cannot read the stylesheet")?;
    let bundle = format!("hopline-{:016x}", fnv1a(&[&js[..], &wasm[..]]));
    let stylesheet = format!("hopline-{:016x}.css", fnv1a(&[&css[..]]));
    std::fs::rename(pkg.join("hopline.js"), pkg.join(format!("{bundle}.js")))?;
    std::fs::rename(
        pkg.join("hopline_bg.wasm"),
        pkg.join(format!("{bundle}_bg.wasm")),
    )?;
    std::fs::write(pkg.join(&stylesheet), &css)?;
    let files = [
        format!("{bundle}.js"),
        format!("{bundle}_bg.wasm"),
        stylesheet.clone(),
    ];
    // Precompressed copies, served to browsers that accept gzip.
    for file in &files {
        let bytes = std::fs::read(pkg.join(file))?;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &bytes)?;
        std::fs::write(pkg.join(format!("{file}.gz")), encoder.finish()?)?;
    }
    std::fs::write(
        pkg.join("manifest.txt"),
        format!("bundle={bundle}\nstylesheet={stylesheet}\n"),
    )?;
    let kib = |name: &str| {
        std::fs::metadata(pkg.join(name))
            .map(|m| m.len() / 1024)
            .unwrap_or(0)
    };
    eprintln!(
        "xtask: UI bundle {bundle} in {} ({} KiB of wasm, {} KiB gzip'd)",
        pkg.display(),
        kib(&files[1]),
        kib(&format!("{}.gz", files[1]))
    );
    Ok(())
}

/// FNV-1a, 64 bits, over several byte strings in a row.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The collector's top-level modules, lowest first: each may use those before it,
/// never one after it (tests aside). `lib` wires them all.
const LAYERS: &[&str] = &[
    "model",
    "config",
    "health",
    "metrics",
    "access",
    "decode",
    "store",
    "wal",
    "ingest",
    "query",
    "cluster",
    "net",
    "otlp",
    "zipkin",
    "loki",
    "elasticsearch",
    "syslog",
    "api",
    "lib",
    "main",
];

/// Reads every `crate::MODULE` path in the collector's sources (outside
/// `#[cfg(test)]` modules) and fails on a use of a higher layer, or of a module
/// missing from [`LAYERS`].
fn check_layers() -> anyhow::Result<()> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../collector/src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let rank = |module: &str| LAYERS.iter().position(|layer| *layer == module);
    let mut problems = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src)?;
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|name| name.trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        let Some(own) = rank(&module) else {
            problems.push(format!(
                "{}: module `{module}` is not in LAYERS",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(path)?;
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let used: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == module || used.is_empty() {
                    continue;
                }
                match rank(&used) {
                    Some(other) if other < own => {}
                    Some(_) => problems.push(format!(
                        "{}:{}: `{module}` uses `crate::{used}`, a layer above it",
                        relative.display(),
                        n + 1
                    )),
                    None => problems.push(format!(
                        "{}:{}: `crate::{used}` is not in LAYERS",
                        relative.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        bail!("{} uses against the layer order", problems.len());
    }
    println!(
        "layers: {} files of collector/src use only the layers below them ({})",
        files.len(),
        LAYERS.join(" < ")
    );
    Ok(())
}
