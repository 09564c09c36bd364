//! Embeds uPlot, the dashboard's plotting library, from its npm package (installed by
//! `scripts/setup` into `.tools/dashboard/` from `tools/dashboard/package-lock.json`) into the
//! binary: the dashboard then needs nothing from the network. Without the package the build
//! still succeeds, with a stand-in script that makes the dashboard say its plots are missing
//! and how to get them (`scripts/release` refuses such a binary).

use std::path::{Path, PathBuf};

const FILES: [&str; 2] = ["uPlot.iife.min.js", "uPlot.min.css"];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let dist = root.join(".tools/dashboard/node_modules/uplot/dist");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", dist.display());
    for name in FILES {
        let from = dist.join(name);
        println!("cargo:rerun-if-changed={}", from.display());
        let to = out.join(name);
        if let Err(error) = std::fs::copy(&from, &to) {
            println!(
                "cargo:warning=uPlot not embedded ({}: {error}): the dashboard will show no plots; run scripts/setup and build again",
                from.display()
            );
            std::fs::write(&to, stand_in(name)).expect("OUT_DIR is writable");
        }
    }
}

fn stand_in(name: &str) -> &'static str {
    if Path::new(name).extension().is_some_and(|e| e == "js") {
        "window.uPlotMissing = \"this pew was built without uPlot: run scripts/setup and build again\";\n"
    } else {
        "/* uPlot missing from this build */\n"
    }
}
