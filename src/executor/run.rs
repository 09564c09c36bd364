//! One app container, hardened by default: no network, memory/CPU/pids limits, every
//! capability dropped, no new privileges, a read-only root with a small `/tmp`, a log size
//! bound, a per-file size limit, and an output cap watched while the app runs. The container
//! is always removed, whatever happens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::env::{CONTAINER_IN, CONTAINER_OUT};

/// The label every app container carries, so containers a crash left behind can be found.
pub const CONTAINER_LABEL: &str = "pew.app";
/// Label naming the executor (its work folder) that started a container, so one node's pause
/// never touches another's apps.
pub const OWNER_LABEL: &str = "pew.work";

/// Removes app containers `owner` left behind in an earlier run (a power cut during a task
/// leaves its container running); other nodes' containers on the same engine are not touched.
/// Returns how many were removed.
pub async fn remove_orphans(docker: &Docker, owner: &str) -> usize {
    let labels = [
        CONTAINER_LABEL.to_string(),
        format!("{OWNER_LABEL}={owner}"),
    ];
    let mut removed = 0;
    for id in app_containers(docker, &labels, None).await {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        if docker.remove_container(&id, Some(options)).await.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// How long this executor's apps have been frozen in all, so a pause does not eat into an
/// app's time limit.
#[derive(Debug, Default)]
pub struct PauseClock {
    state: std::sync::Mutex<(Option<std::time::Instant>, Duration)>,
}

impl PauseClock {
    /// Records that apps are frozen (or thawed) from now on.
    pub fn set(&self, paused: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match (paused, state.0) {
            (true, None) => state.0 = Some(std::time::Instant::now()),
            (false, Some(since)) => {
                state.1 += since.elapsed();
                state.0 = None;
            }
            _ => {}
        }
    }

    /// Frozen time so far, the current pause included.
    pub fn total(&self) -> Duration {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 + state.0.map(|since| since.elapsed()).unwrap_or_default()
    }
}

/// Ids of the containers carrying every one of `labels` (and in `status`, when given); an
/// engine that does not answer has none.
async fn app_containers(docker: &Docker, labels: &[String], status: Option<&str>) -> Vec<String> {
    let mut filters = HashMap::from([("label".to_string(), labels.to_vec())]);
    if let Some(status) = status {
        filters.insert("status".to_string(), vec![status.to_string()]);
    }
    let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Freezes (`docker pause`) or thaws the running app containers `owner` started; returns how many
/// changed. The energy gate asks for this while the battery is under its reserve and PV cannot
/// carry the work: a frozen app draws nothing and resumes where it stopped.
pub async fn set_paused(docker: &Docker, owner: &str, paused: bool) -> usize {
    let labels = [
        CONTAINER_LABEL.to_string(),
        format!("{OWNER_LABEL}={owner}"),
    ];
    let status = if paused { "running" } else { "paused" };
    let mut changed = 0;
    for id in app_containers(docker, &labels, Some(status)).await {
        let done = if paused {
            docker.pause_container(&id).await
        } else {
            docker.unpause_container(&id).await
        };
        match done {
            Ok(()) => changed += 1,
            Err(error) => {
                tracing::warn!(container = %id, %error, paused, "app container not (un)paused")
            }
        }
    }
    changed
}

/// Limits applied to every app container.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Memory (and memory + swap) in bytes.
    pub memory_bytes: i64,
    /// CPUs (fractions allowed).
    pub cpus: f64,
    /// Processes and threads.
    pub pids: i64,
    /// Size of `/tmp` in bytes.
    pub tmpfs_bytes: u64,
    /// Largest total output in `/iexec_out`, in bytes.
    pub output_cap_bytes: u64,
    /// Whether the app may use the network.
    pub allow_network: bool,
    /// `uid:gid` to run as; empty for the image's user.
    pub user: String,
    /// How much of the end of the logs is kept.
    pub log_tail_bytes: usize,
    /// Enforce the output cap in the kernel (a size-limited tmpfs as `/iexec_out`, copied to
    /// disk after the run). Needs root; without it the cap is enforced by watching the folder.
    pub kernel_output_cap: bool,
    /// The executor's identity on its containers (its absolute work folder).
    pub owner: String,
}

impl Limits {
    /// Limits from configuration; an empty user means pew's own uid:gid.
    pub fn from_settings(settings: &crate::config::ExecutorSettings) -> Self {
        let user = if settings.user.is_empty() {
            // SAFETY: getuid/getgid cannot fail.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            format!("{uid}:{gid}")
        } else {
            settings.user.clone()
        };
        Self {
            memory_bytes: (settings.memory_mb * 1024 * 1024) as i64,
            cpus: settings.cpus,
            pids: settings.pids,
            tmpfs_bytes: settings.tmpfs_mb * 1024 * 1024,
            output_cap_bytes: settings.output_cap_mb * 1024 * 1024,
            allow_network: settings.allow_network,
            user,
            log_tail_bytes: (settings.log_tail_kib * 1024) as usize,
            // SAFETY: geteuid cannot fail.
            kernel_output_cap: unsafe { libc::geteuid() } == 0,
            owner: std::path::absolute(&settings.work_dir)
                .unwrap_or_else(|_| settings.work_dir.clone())
                .display()
                .to_string(),
        }
    }
}

/// One container run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The image reference.
    pub image: String,
    /// Arguments (the image's entrypoint is kept).
    pub args: Vec<String>,
    /// `NAME=value` environment.
    pub env: Vec<String>,
    /// Host folder mounted read-only at `/iexec_in`.
    pub input_dir: PathBuf,
    /// Host folder mounted at `/iexec_out`.
    pub output_dir: PathBuf,
    /// The app is killed after this long.
    pub timeout: Duration,
    /// Container name (unique).
    pub name: String,
}

/// What happened to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit code, when the app exited by itself.
    pub exit_code: Option<i64>,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Killed for writing more than the output cap.
    pub output_exceeded: bool,
    /// Killed by the kernel for using more memory than allowed.
    pub oom_killed: bool,
    /// Why the output cannot be used (a link, or more than the cap), found while collecting it.
    pub output_error: Option<String>,
    /// Why the app's container could not start (a broken image or entrypoint).
    pub start_error: Option<String>,
    /// The end of stdout.
    pub stdout: String,
    /// The end of stderr.
    pub stderr: String,
    /// Wall time.
    pub duration: Duration,
}

/// The Docker Engine failed (not the app).
#[derive(Debug, thiserror::Error)]
#[error("Docker: {action} failed: {reason}")]
pub struct DockerError {
    /// What pew asked Docker to do.
    pub action: String,
    /// What Docker said.
    pub reason: String,
}

fn docker_error(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let action = action.into();
    move |e| DockerError {
        action,
        reason: e.to_string(),
    }
}

/// Total size of the regular files under `dir`, without following links.
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

fn tail(text: &[u8], max: usize) -> String {
    let start = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[start..]).to_string()
}

/// Runs one container to completion (or to its limit) and removes it.
pub async fn run(
    docker: &Docker,
    limits: &Limits,
    spec: &RunSpec,
    pause: &PauseClock,
) -> Result<RunOutcome, DockerError> {
    let staging = if limits.kernel_output_cap {
        Some(
            OutputTmpfs::mount(&spec.output_dir, limits).map_err(|reason| DockerError {
                action: "preparing the size-limited /iexec_out".into(),
                reason,
            })?,
        )
    } else {
        None
    };
    let mount_dir = staging
        .as_ref()
        .map(|s| s.dir.clone())
        .unwrap_or_else(|| spec.output_dir.clone());
    let mut outcome = run_in(docker, limits, spec, &mount_dir, pause).await;
    if let (Some(staging), Ok(outcome)) = (&staging, &mut outcome) {
        if let Err(error) = copy_tree(&staging.dir, &spec.output_dir) {
            outcome.output_error = Some(error);
        }
        if outcome.output_error.is_none() && staging.full() {
            outcome.output_exceeded = true;
        }
    }
    drop(staging);
    outcome
}

async fn run_in(
    docker: &Docker,
    limits: &Limits,
    spec: &RunSpec,
    output_dir: &Path,
    pause: &PauseClock,
) -> Result<RunOutcome, DockerError> {
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/tmp".to_string(),
        format!("rw,nosuid,nodev,noexec,size={}", limits.tmpfs_bytes),
    );
    let mut log_options = HashMap::new();
    log_options.insert("max-size".to_string(), "1m".to_string());
    log_options.insert("max-file".to_string(), "1".to_string());
    let host_config = HostConfig {
        binds: Some(vec![
            format!("{}:{CONTAINER_IN}:ro", spec.input_dir.display()),
            format!("{}:{CONTAINER_OUT}:rw", output_dir.display()),
        ]),
        network_mode: Some(if limits.allow_network {
            "default".into()
        } else {
            "none".into()
        }),
        memory: Some(limits.memory_bytes),
        memory_swap: Some(limits.memory_bytes),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        pids_limit: Some(limits.pids),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        // No single file may outgrow the output cap, even between two size checks.
        ulimits: Some(vec![ResourcesUlimits {
            name: Some("fsize".into()),
            soft: Some(limits.output_cap_bytes as i64),
            hard: Some(limits.output_cap_bytes as i64),
        }]),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(log_options),
        }),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: if spec.args.is_empty() {
            None
        } else {
            Some(spec.args.clone())
        },
        env: Some(spec.env.clone()),
        user: (!limits.user.is_empty()).then(|| limits.user.clone()),
        labels: Some(HashMap::from([
            (CONTAINER_LABEL.to_string(), "app".to_string()),
            (OWNER_LABEL.to_string(), limits.owner.clone()),
        ])),
        network_disabled: Some(!limits.allow_network),
        host_config: Some(host_config),
        ..Default::default()
    };
    docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::new()
                    .name(&spec.name)
                    .build(),
            ),
            body,
        )
        .await
        .map_err(docker_error(format!(
            "creating container {} from {}",
            spec.name, spec.image
        )))?;
    let outcome = supervise(docker, limits, spec, output_dir, pause).await;
    let _ = docker
        .remove_container(
            &spec.name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    outcome
}

async fn supervise(
    docker: &Docker,
    limits: &Limits,
    spec: &RunSpec,
    output_dir: &Path,
    pause: &PauseClock,
) -> Result<RunOutcome, DockerError> {
    let started = Instant::now();
    if let Err(error) = docker.start_container(&spec.name, None).await {
        // The engine answered: the image itself cannot start (missing entrypoint, bad binary).
        return Ok(RunOutcome {
            exit_code: None,
            timed_out: false,
            output_exceeded: false,
            oom_killed: false,
            output_error: None,
            start_error: Some(error.to_string()),
            stdout: String::new(),
            stderr: String::new(),
            duration: started.elapsed(),
        });
    }
    let mut timed_out = false;
    let mut output_exceeded = false;
    let mut wait = docker.wait_container(&spec.name, None);
    let mut check = tokio::time::interval(Duration::from_millis(200));
    // The time limit counts running time only: time frozen by `set_paused` is given back.
    let paused_before = pause.total();
    let run_started = std::time::Instant::now();
    loop {
        tokio::select! {
            // Any answer (exit code or error for a non-zero code) means the app has stopped.
            _ = wait.next() => break,
            _ = check.tick(), if !timed_out && !output_exceeded => {
                let frozen = pause.total().saturating_sub(paused_before);
                if run_started.elapsed().saturating_sub(frozen) >= spec.timeout {
                    timed_out = true;
                    kill(docker, &spec.name).await;
                } else if tree_size(output_dir) > limits.output_cap_bytes {
                    output_exceeded = true;
                    kill(docker, &spec.name).await;
                }
            }
        }
    }
    let duration = started.elapsed();
    let state = docker
        .inspect_container(&spec.name, None)
        .await
        .map_err(docker_error(format!("inspecting {}", spec.name)))?
        .state
        .unwrap_or_default();
    let (stdout, stderr) = logs(docker, &spec.name, limits.log_tail_bytes).await;
    let killed = timed_out || output_exceeded;
    Ok(RunOutcome {
        exit_code: if killed { None } else { state.exit_code },
        timed_out,
        output_exceeded,
        oom_killed: state.oom_killed.unwrap_or(false),
        output_error: None,
        start_error: None,
        stdout,
        stderr,
        duration,
    })
}

/// A tmpfs of exactly the output cap, mounted next to the output folder for one run: the
/// kernel refuses every byte past the cap, so a full disk is impossible.
struct OutputTmpfs {
    dir: PathBuf,
    cap: u64,
}

impl OutputTmpfs {
    fn mount(output_dir: &Path, limits: &Limits) -> Result<Self, String> {
        let dir = output_dir.with_extension("tmpfs");
        unmount(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (uid, gid) = limits.user.split_once(':').unwrap_or(("0", "0"));
        let options = format!(
            "size={},mode=0755,uid={uid},gid={gid}",
            limits.output_cap_bytes
        );
        let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        let c_options = std::ffi::CString::new(options).map_err(|e| e.to_string())?;
        // SAFETY: mount(2) with valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c_dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c_options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mount tmpfs on {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self {
            dir,
            cap: limits.output_cap_bytes,
        })
    }

    /// Whether the app filled the whole cap (its writes then failed).
    fn full(&self) -> bool {
        crate::executor::cache::free_bytes(&self.dir) < 64 * 1024
            || tree_size(&self.dir) >= self.cap
    }
}

impl Drop for OutputTmpfs {
    fn drop(&mut self) {
        unmount(&self.dir);
    }
}

fn unmount(dir: &Path) {
    if let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2(2) on a path we own; failure (not mounted) is fine.
        unsafe {
            libc::umount2(c_dir.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Copies an app's output to disk, refusing symlinks and hard links (a link could make pew
/// read or upload something from outside `/iexec_out`).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = source
            .symlink_metadata()
            .map_err(|e| format!("{}: {e}", source.display()))?;
        let shown = entry.file_name().to_string_lossy().to_string();
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{shown} in /iexec_out is a symbolic link: results may only hold regular files and folders"
            ));
        } else if meta.is_dir() {
            copy_tree(&source, &target)?;
        } else if meta.nlink() > 1 {
            return Err(format!(
                "{shown} in /iexec_out is a hard link: results may only hold files of their own"
            ));
        } else if meta.is_file() {
            std::fs::copy(&source, &target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

async fn kill(docker: &Docker, name: &str) {
    let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    if let Err(error) = docker.kill_container(name, Some(options)).await {
        tracing::warn!(container = name, %error, "could not kill the container");
    }
}

async fn logs(docker: &Docker, name: &str, max: usize) -> (String, String) {
    use bollard::container::LogOutput;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail("all")
        .build();
    let mut stream = docker.logs(name, Some(options));
    while let Some(Ok(chunk)) = stream.next().await {
        match chunk {
            LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            _ => {}
        }
        // Keep memory bounded for chatty apps.
        if stdout.len() > 4 * max {
            stdout.drain(..stdout.len() - max);
        }
        if stderr.len() > 4 * max {
            stderr.drain(..stderr.len() - max);
        }
    }
    (tail(&stdout, max), tail(&stderr, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_size_counts_files_but_not_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 50]).unwrap();
        std::os::unix::fs::symlink("/usr/bin", dir.path().join("link")).unwrap();
        let size = tree_size(dir.path());
        assert!((150..200).contains(&size), "{size}");
    }

    #[test]
    fn tails_keep_the_end() {
        assert_eq!(tail(b"0123456789", 4), "6789");
        assert_eq!(tail(b"ab", 4), "ab");
    }
}
