//! The one harness every integration test uses: its own devnet (real anvil + real PoCo, free
//! ports, own temp folder), the real Docker Engine (started with `--bridge=none
//! --iptables=false` when none answers), the IPFS API, and test images built locally.
//!
//! Tests never share a chain, so they run in parallel; they do share the Docker Engine.

#![allow(dead_code)]

pub mod apps;
pub mod contracts;
pub mod deals;
pub mod mqtt;
pub mod node;
pub mod public_rpc;
pub mod relay;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use bollard::Docker;
use pew::devnet::{self, DevnetInfo, DevnetOptions, RunningDevnet};
use pew::tools::Tools;
use tempfile::TempDir;

/// A devnet owned by one test; stopped and deleted when dropped.
pub struct TestDevnet {
    pub devnet: RunningDevnet,
    pub dir: TempDir,
}

impl TestDevnet {
    pub fn info(&self) -> &DevnetInfo {
        self.devnet.info()
    }

    /// A provider that signs with dev account `index`.
    pub fn wallet(&self, index: usize) -> DynProvider {
        let signer = self.info().signer(index).expect("dev account exists");
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(self.info().rpc_url.parse().expect("rpc url"))
            .erased()
    }

    /// A read-only provider.
    pub fn reader(&self) -> DynProvider {
        ProviderBuilder::new()
            .connect_http(self.info().rpc_url.parse().expect("rpc url"))
            .erased()
    }

    /// The IPFS API base URL (the devnet was started with IPFS).
    pub fn ipfs_api(&self) -> &str {
        self.info()
            .ipfs_api
            .as_deref()
            .expect("devnet started with IPFS")
    }
}

/// The tools installed by scripts/setup.
pub fn tools() -> Tools {
    Tools::locate(Path::new(""))
        .expect("the .tools folder exists: run scripts/setup (scripts/test does)")
}

/// The `pew` binary built for this test run.
pub fn pew_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pew"))
}

/// Starts a fresh devnet on free ports in its own temp folder.
pub async fn devnet(with_ipfs: bool) -> TestDevnet {
    let dir = tempfile::Builder::new()
        .prefix("pew-devnet-")
        .tempdir()
        .expect("temp dir");
    let options = DevnetOptions {
        state_dir: dir.path().to_path_buf(),
        port: 0,
        ipfs: with_ipfs,
        ipfs_api_port: 0,
        ipfs_gateway_port: 0,
        ipfs_start_timeout: Duration::from_secs(120),
        tools: tools(),
        detach: false,
    };
    let devnet = devnet::up(options).await.expect("devnet starts");
    TestDevnet { devnet, dir }
}

/// The engine socket the tests run apps on: `PEW_TEST_ENGINE_SOCKET` (Podman's, set by
/// scripts/test for its second pass over the executor tests), or empty for the Docker Engine.
pub fn engine_socket() -> String {
    std::env::var("PEW_TEST_ENGINE_SOCKET").unwrap_or_default()
}

/// The environment that points a `pew` process at the tests' engine.
pub fn engine_env() -> Vec<(String, String)> {
    match engine_socket() {
        socket if socket.is_empty() => vec![],
        socket => vec![("PEW_EXECUTOR__ENGINE_SOCKET".into(), socket)],
    }
}

/// A client for the tests' engine: the Docker Engine (started as `dockerd` when none answers),
/// or the one `PEW_TEST_ENGINE_SOCKET` names.
pub async fn docker() -> Docker {
    let socket = engine_socket();
    if !socket.is_empty() {
        return pew::executor::image::connect(&socket)
            .await
            .unwrap_or_else(|e| panic!("the engine at {socket} answers: {e}"));
    }
    if let Some(docker) = connect_docker().await {
        return docker;
    }
    // One test process starts the daemon; the others wait for it under the same lock.
    let _lock = exclusive("pew-dockerd");
    if let Some(docker) = connect_docker().await {
        return docker;
    }
    let log = std::fs::File::create(std::env::temp_dir().join("pew-dockerd.log")).expect("log");
    let mut command = Command::new("dockerd");
    command
        .args(["--bridge=none", "--iptables=false"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon must outlive this test process.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    // The daemon is shared by every test process and outlives this one: never waited for here.
    #[allow(clippy::zombie_processes)]
    let _daemon = command
        .spawn()
        .expect("dockerd starts (scripts/setup installs docker.io)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(docker) = connect_docker().await {
            return docker;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "dockerd did not answer within 60 s; see {}/pew-dockerd.log",
        std::env::temp_dir().display()
    );
}

/// An exclusive lock shared by every test thread and process on this machine, held until the
/// returned file is dropped (flock locks each open file description on its own, so two threads
/// of one process exclude each other too).
fn exclusive(name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join(format!("{name}.lock"));
    let lock = std::fs::File::create(&path).expect("lock file");
    // SAFETY: flock on a file we own; released when `lock` is dropped.
    let taken = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(taken, 0, "flock {}", path.display());
    lock
}

async fn connect_docker() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    docker.ping().await.ok()?;
    docker.negotiate_version().await.ok()
}

/// The name of the locally built busybox test image.
pub const BUSYBOX_IMAGE: &str = "pew-test/busybox:1";

/// Builds (once per engine) a minimal image holding a static busybox with its applets,
/// by `docker import` of a root filesystem made here: no registry is involved.
pub async fn busybox_image(docker: &Docker) -> String {
    if docker.inspect_image(BUSYBOX_IMAGE).await.is_ok() {
        return BUSYBOX_IMAGE.to_string();
    }
    // Two tests importing the same image at once would give it two ids one after the other,
    // and an app registered with the first id would no longer match its checksum.
    let _lock = exclusive("pew-test-images");
    if docker.inspect_image(BUSYBOX_IMAGE).await.is_ok() {
        return BUSYBOX_IMAGE.to_string();
    }
    let root = busybox_rootfs();
    import_rootfs(docker, root.path(), "pew-test/busybox", "1", &[]).await;
    BUSYBOX_IMAGE.to_string()
}

/// Builds (once per engine and content) the test app `tests/apps/<name>` as
/// `pew-test/<name>:<content hash>`: busybox plus the app's files under /app, with
/// `ENTRYPOINT ["/bin/sh", "/app/run.sh"]`.
pub async fn app_image(docker: &Docker, name: &str) -> String {
    let (script, tag) = app_script(name);
    let tag = tag.as_str();
    let reference = format!("pew-test/{name}:{tag}");
    if docker.inspect_image(&reference).await.is_ok() {
        return reference;
    }
    let _lock = exclusive("pew-test-images"); // see busybox_image
    if docker.inspect_image(&reference).await.is_ok() {
        return reference;
    }
    let root = busybox_rootfs();
    let app = root.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("run.sh"), &script).unwrap();
    import_rootfs(
        docker,
        root.path(),
        &format!("pew-test/{name}"),
        tag,
        &[r#"ENTRYPOINT ["/bin/sh", "/app/run.sh"]"#],
    )
    .await;
    reference
}

/// The test app's script and the tag its content gives.
fn app_script(name: &str) -> (Vec<u8>, String) {
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name);
    let script = std::fs::read(app_dir.join("run.sh")).expect("the test app has a run.sh");
    let tag = alloy::hex::encode(alloy::primitives::keccak256(&script))[..12].to_string();
    (script, tag)
}

/// Like [`app_image`], but built anew: for a test that moves the tag elsewhere.
pub async fn fresh_app_image(docker: &Docker, name: &str) -> String {
    let (_, tag) = app_script(name);
    let reference = format!("pew-test/{name}:{tag}");
    let _ = docker
        .remove_image(
            &reference,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    app_image(docker, name).await
}

/// A root filesystem with a static busybox and its applets.
fn busybox_rootfs() -> TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for dir in ["tmp", "etc", "iexec_in", "iexec_out", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("dir");
    }
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    let busybox =
        which("busybox").expect("busybox is installed (scripts/setup installs busybox-static)");
    std::fs::copy(&busybox, bin.join("busybox")).expect("copy busybox");
    let applets = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    root
}

/// `docker import` of a root folder as `repo:tag`, with Dockerfile-style `changes`.
async fn import_rootfs(docker: &Docker, root: &Path, repo: &str, tag: &str, changes: &[&str]) {
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(tar.status.success(), "tar failed");
    use futures_util::StreamExt;
    let mut options = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .build();
    options.changes = changes.iter().map(|c| c.to_string()).collect();
    let mut stream = docker.create_image(
        Some(options),
        Some(bollard::body_full(tar.stdout.into())),
        None,
    );
    let mut imported = None;
    while let Some(step) = stream.next().await {
        let info = step.expect("docker import of a test root filesystem");
        imported = info.status.or(imported);
    }
    // Podman's Docker-compatible import ignores the tag (the image comes out as `latest`):
    // give it the tag asked for.
    let reference = format!("{repo}:{tag}");
    if docker.inspect_image(&reference).await.is_err() {
        let source = imported
            .map(|status| status.trim().to_string())
            .filter(|id| docker_id_like(id))
            .unwrap_or_else(|| format!("{repo}:latest"));
        docker
            .tag_image(
                &source,
                Some(
                    bollard::query_parameters::TagImageOptionsBuilder::new()
                        .repo(repo)
                        .tag(tag)
                        .build(),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("tagging the imported {source} as {reference}: {e}"));
    }
}

/// Whether an import's last status line is an image id (`sha256:…` or bare hex).
fn docker_id_like(text: &str) -> bool {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// Whether a live (non-zombie) process with this pid exists.
pub fn process_alive(pid: u32) -> bool {
    pew::devnet::process::is_alive(pid)
}

/// The password of every key file the tests create.
pub const TEST_PASSWORD: &str = "pew-test-password";

impl TestDevnet {
    /// The devnet description file.
    pub fn devnet_file(&self) -> PathBuf {
        self.devnet.state_dir().join("devnet.json")
    }

    /// `pew` pointed at this devnet, with the test password and no user config.
    pub fn pew(&self) -> Command {
        let mut command = Command::new(pew_bin());
        command
            .env("PEW_CHAIN__PRESET", "devnet")
            .env("PEW_CHAIN__DEVNET_FILE", self.devnet_file())
            .env("PEW_PASSWORD", TEST_PASSWORD)
            .env("HOME", self.dir.path())
            // Node locks about keys and workerpools live here: parallel tests use the same dev
            // keys on their own chains.
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("PEW_TOOLS_DIR", tools().root())
            .env_remove("PEW_CONFIG")
            .env_remove("RUST_LOG");
        command
    }

    /// Runs `pew ARGS --json` and returns its JSON output, failing the test on an error.
    pub fn pew_json(&self, args: &[&str]) -> serde_json::Value {
        let output = self
            .pew()
            .args(args)
            .arg("--json")
            .output()
            .expect("pew runs");
        assert!(
            output.status.success(),
            "pew {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("pew {} printed no JSON ({e}): {stdout}", args.join(" ")))
    }

    /// Runs `pew result download TASK --to <test dir>/downloads`; returns the task's folder
    /// there and the command's JSON output.
    pub fn download_result(&self, task: &str) -> (PathBuf, serde_json::Value) {
        let downloads = self.dir.path().join("downloads");
        let output = self.pew_json(&[
            "result",
            "download",
            task,
            "--to",
            downloads.to_str().unwrap(),
        ]);
        (downloads.join(task), output)
    }

    /// A key file for dev account `index`, imported through `pew wallet import` on first use.
    pub fn keystore(&self, index: usize) -> PathBuf {
        let path = self.dir.path().join("keys").join(format!("{index}.json"));
        if !path.exists() {
            let key_file = self.dir.path().join(format!("key-{index}.txt"));
            std::fs::write(&key_file, &self.info().accounts[index].private_key).unwrap();
            let out = self.pew_json(&[
                "wallet",
                "import",
                "--keystore",
                path.to_str().unwrap(),
                "--private-key-file",
                key_file.to_str().unwrap(),
            ]);
            std::fs::remove_file(&key_file).unwrap();
            assert_eq!(
                out["address"].as_str().unwrap().to_lowercase(),
                self.info().accounts[index]
                    .address
                    .to_string()
                    .to_lowercase()
            );
        }
        path
    }

    /// Runs `pew ARGS --json` signing as dev account `index`.
    pub fn pew_as(&self, index: usize, args: &[&str]) -> serde_json::Value {
        let keystore = self.keystore(index);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--keystore", keystore.to_str().unwrap()]);
        self.pew_json(&all)
    }

    /// pew's SDK signing as dev account `index`.
    pub async fn sdk(&self, index: usize) -> pew::sdk::Sdk {
        let target = self.info().target();
        let chain = pew::chain::client::connect(target)
            .await
            .expect("devnet answers");
        let signer = self.info().signer(index).expect("dev account");
        let sender = chain.sender(signer, pew::chain::sender::SendPolicy::default());
        pew::sdk::Sdk::new(chain, Some(sender))
    }
}
