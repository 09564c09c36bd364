//! The crate's floors: every top-level module of `src/` may use the modules on the floors
//! below it and never one above, so there is no cycle and the lower floors know nothing of
//! `pew run` (docs/architecture.md, "Floors"). This test reads the sources and fails on an
//! import that points up, naming the file and the line. Unit-test modules (`#[cfg(test)]`) are
//! left out: a test may build its inputs with a higher floor's helpers.

use std::path::{Path, PathBuf};

/// From the ground up. A module may use those before it in this list.
const FLOORS: &[&str] = &[
    "text",
    "clock",
    "failpoint",
    "files",
    "tools",
    "config",
    "abi",
    "poco",
    "admission",
    "chain",
    "results",
    "storage",
    "wallet",
    "executor",
    "energy",
    "sdk",
    "devnet",
    "node",
    "cli",
];

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|m| *m == module)
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The source without its `#[cfg(test)]` modules (by convention each sits at the end of its
/// file) and without comments.
fn code_of(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut all = text.lines().enumerate().peekable();
    while let Some((number, line)) = all.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && all
                .peek()
                .is_some_and(|(_, next)| next.contains("mod ") && next.trim_end().ends_with('{'))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        lines.push((number + 1, line));
    }
    lines
}

/// The top-level modules a line names through `crate::`.
fn named_modules(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `pew_crate::` and the like
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// Every upward import in `src/`, as "file:line: a -> b".
fn upward_imports(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let relative = path.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let floor = floor_of(&top)
            .unwrap_or_else(|| panic!("src/{top} is on no floor: add it to FLOORS and the map"));
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in code_of(&text) {
            for used in named_modules(line) {
                if used == top {
                    continue;
                }
                match floor_of(&used) {
                    Some(theirs) if theirs > floor => found.push(format!(
                        "src/{}:{number}: {top} uses {used}, a floor above it",
                        relative.display()
                    )),
                    _ => {}
                }
            }
        }
    }
    found
}

#[test]
fn every_import_points_down_the_floors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let upward = upward_imports(&src);
    assert!(
        upward.is_empty(),
        "imports that point up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn every_top_level_module_is_on_a_floor() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(floor_of(name).is_some(), "`{name}` is on no floor");
        }
    }
}

#[test]
fn the_check_sees_an_upward_import_and_a_grouped_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("chain")).unwrap();
    std::fs::write(
        dir.path().join("chain/watcher.rs"),
        "use crate::poco::DealId;\nuse crate::{text, node::journal::Journal};\n// crate::cli in a comment\n#[cfg(test)]\nmod tests {\n    use crate::sdk::Sdk;\n}\n",
    )
    .unwrap();
    let found = upward_imports(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("chain/watcher.rs:2: chain uses node"),
        "{found:?}"
    );
}
