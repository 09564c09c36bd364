//! Where `scripts/setup` put the external tools (anvil, js-ipfs, the PoCo artifacts).
//!
//! The devnet and the tests need these; a clear "run scripts/setup" beats a cryptic
//! "No such file or directory" from deep inside a spawn.

use std::path::{Path, PathBuf};

/// Environment variable that points at the tools folder explicitly.
pub const TOOLS_ENV: &str = "PEW_TOOLS_DIR";

/// The installed tools, with the paths pew uses.
#[derive(Debug, Clone)]
pub struct Tools {
    root: PathBuf,
}

/// A tool that should be there is not.
#[derive(Debug, thiserror::Error)]
#[error("{what} not found at {path}: run scripts/setup (from the pew checkout) to install it")]
pub struct MissingTool {
    /// What is missing, in words.
    pub what: String,
    /// Where it was expected.
    pub path: PathBuf,
}

impl Tools {
    /// Finds the tools folder: `configured` if non-empty, else `$PEW_TOOLS_DIR`, else the first
    /// `.tools` folder from the current directory upwards, else the one of the checkout this
    /// binary was built in.
    pub fn locate(configured: &Path) -> Result<Self, MissingTool> {
        if !configured.as_os_str().is_empty() {
            return Self::at(configured.to_path_buf());
        }
        if let Some(dir) = std::env::var_os(TOOLS_ENV) {
            return Self::at(PathBuf::from(dir));
        }
        if let Ok(cwd) = std::env::current_dir() {
            for dir in cwd.ancestors() {
                let candidate = dir.join(".tools");
                if candidate.is_dir() {
                    return Self::at(candidate);
                }
            }
        }
        Self::at(Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"))
    }

    fn at(root: PathBuf) -> Result<Self, MissingTool> {
        if root.is_dir() {
            Ok(Self { root })
        } else {
            Err(MissingTool {
                what: "the tools folder (.tools)".into(),
                path: root,
            })
        }
    }

    /// The tools folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The anvil binary shipped inside the npm package for this machine's architecture
    /// (`@foundry-rs/anvil-linux-amd64`, or `-arm64` on a Pi).
    pub fn anvil(&self) -> Result<PathBuf, MissingTool> {
        let package = if cfg!(target_arch = "aarch64") {
            "anvil-linux-arm64"
        } else {
            "anvil-linux-amd64"
        };
        self.existing(
            "anvil",
            self.root
                .join("chain/node_modules/@foundry-rs")
                .join(package)
                .join("bin/anvil"),
        )
    }

    /// The js-ipfs command line (`jsipfs`).
    pub fn jsipfs(&self) -> Result<PathBuf, MissingTool> {
        self.existing(
            "js-ipfs (jsipfs)",
            self.root.join("ipfs/node_modules/.bin/jsipfs"),
        )
    }

    /// The unpacked `@iexec/poco` npm package.
    pub fn poco_package(&self) -> Result<PathBuf, MissingTool> {
        self.existing("the @iexec/poco package", self.root.join("poco/package"))
    }

    /// The RLC token's truffle artifact from `rlc-faucet-contract`.
    pub fn rlc_artifact(&self) -> Result<PathBuf, MissingTool> {
        self.existing(
            "the RLC token artifact",
            self.root.join("rlc/package/build/contracts/RLC.json"),
        )
    }

    fn existing(&self, what: &str, path: PathBuf) -> Result<PathBuf, MissingTool> {
        if path.exists() {
            Ok(path)
        } else {
            Err(MissingTool {
                what: what.into(),
                path,
            })
        }
    }
}
