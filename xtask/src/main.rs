//! `cargo xtask ui`: builds the UI's wasm bundle into `<target>/site/pkg`, where
//! `hopline` serves it (`--ui-dir`, default `<target>/site` next to the binary).
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
        _ => {
            eprintln!("usage: cargo xtask ui    build the web UI's wasm bundle");
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
