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
use super::output;
use std::os::unix::fs::PermissionsExt;

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
    /// Who the app runs as.
    pub user: AppUser,
    /// How much of the end of the logs is kept.
    pub log_tail_bytes: usize,
    /// Enforce the output cap in the kernel (a size-limited tmpfs as `/iexec_out`, copied to
    /// disk after the run). Needs root; without it the cap is enforced by watching the folder.
    pub kernel_output_cap: bool,
    /// The executor's identity on its containers (its absolute work folder).
    pub owner: String,
}

impl Limits {
    /// Limits from configuration.
    pub fn from_settings(settings: &crate::config::ExecutorSettings) -> Self {
        let user = AppUser::parse(&settings.user);
        Self {
            memory_bytes: (settings.memory_mb * 1024 * 1024) as i64,
            cpus: settings.cpus,
            pids: settings.pids,
            tmpfs_bytes: settings.tmpfs_mb * 1024 * 1024,
            output_cap_bytes: settings.output_cap_mb * 1024 * 1024,
            allow_network: settings.allow_network,
            user,
            log_tail_bytes: (settings.log_tail_kib * 1024) as usize,
            kernel_output_cap: output::kernel_cap_available(&settings.work_dir),
            owner: std::path::absolute(&settings.work_dir)
                .unwrap_or_else(|_| settings.work_dir.clone())
                .display()
                .to_string(),
        }
    }
}

/// Whether pew runs as root (it can then mount the size-limited output and own every file).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid:gid apps run as when nothing better is known: `nobody`, which owns nothing.
pub const UNPRIVILEGED_USER: &str = "65534:65534";

/// Who an app runs as (`executor.user`). Never root unless the operator says so: a root
/// process in a container is one kernel bug away from root on the Pi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppUser {
    /// `""`: the image's own `USER` when it is a numeric uid other than 0, else
    /// [`UNPRIVILEGED_USER`]; when pew
    /// itself is not root, pew's own uid:gid (an unprivileged user, and the one that can clean
    /// the output up).
    Auto,
    /// `"root"` (or `"0"`, `"0:0"`): the operator's explicit choice, warned about at start.
    Root,
    /// `"uid:gid"` (or a user name the image knows).
    Fixed(String),
}

impl AppUser {
    /// Reads `executor.user`.
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "" => AppUser::Auto,
            user if is_root_user(user) => AppUser::Root,
            user => AppUser::Fixed(user.to_string()),
        }
    }

    /// The user handed to Docker for an image whose own `USER` is `image_user` (`None`: the
    /// image's own, which is then known not to be root).
    pub fn for_image(&self, image_user: Option<&str>) -> Option<String> {
        match self {
            AppUser::Root => Some("0:0".into()),
            AppUser::Fixed(user) => Some(user.clone()),
            AppUser::Auto if !running_as_root() => {
                // SAFETY: getuid/getgid cannot fail.
                let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
                Some(format!("{uid}:{gid}"))
            }
            // The image's own USER only when it is a number that is not 0: a name is looked
            // up in the image's own /etc/passwd, which the image's author writes (and can map
            // to uid 0), and "00" is 0 too.
            AppUser::Auto => Some(
                image_user
                    .and_then(numeric_unprivileged)
                    .unwrap_or_else(|| UNPRIVILEGED_USER.into()),
            ),
        }
    }
}

/// A Docker `USER` value as an explicit `uid:gid` when it is numeric and neither part is 0
/// (a missing or 0 group becomes the uid's own number).
fn numeric_unprivileged(user: &str) -> Option<String> {
    let (uid, gid) = match user.trim().split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user.trim(), None),
    };
    let uid: u32 = uid.parse().ok().filter(|&u| u != 0)?;
    let gid = gid
        .and_then(|g| g.parse::<u32>().ok())
        .filter(|&g| g != 0)
        .unwrap_or(uid);
    Some(format!("{uid}:{gid}"))
}

/// Whether a Docker `USER` value names root (`root`, `0`, with any group).
fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty() || name == "root" || name.parse::<u32>() == Ok(0)
}

/// Files an app may hold open at once.
pub const APP_OPEN_FILES: i64 = 4096;
/// Processes of the app's user (the pids limit bounds each container; this bounds the user).
pub const APP_PROCESSES: i64 = 4096;

fn ulimit(name: &str, value: i64) -> ResourcesUlimits {
    ResourcesUlimits {
        name: Some(name.into()),
        soft: Some(value),
        hard: Some(value),
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
    /// The image's own `USER`, if it names one.
    pub image_user: Option<String>,
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

fn tail(text: &[u8], max: usize) -> String {
    let start = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[start..]).to_string()
}

/// Runs one container to completion (or to its limit) and removes it, then brings its output
/// onto the host under the rules of [`super::output`]: a run whose output breaks them, or
/// outgrows the cap (apparent sizes counted), has its output removed at once.
pub async fn run(
    docker: &Docker,
    limits: &Limits,
    spec: &RunSpec,
    pause: &PauseClock,
) -> Result<RunOutcome, DockerError> {
    let cap = limits.output_cap_bytes;
    let staging = if limits.kernel_output_cap {
        Some(
            output::OutputTmpfs::mount(&spec.output_dir, cap).map_err(|reason| DockerError {
                action: "preparing the size-limited /iexec_out".into(),
                reason,
            })?,
        )
    } else {
        // The app writes in the host folder itself: it must be writable by the app's user,
        // which is pew's own unless configured otherwise (the folder above is private).
        std::fs::set_permissions(&spec.output_dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| DockerError {
                action: "preparing /iexec_out".into(),
                reason: format!("{}: {e}", spec.output_dir.display()),
            })?;
        None
    };
    let mount_dir = staging
        .as_ref()
        .map(|s| s.dir.clone())
        .unwrap_or_else(|| spec.output_dir.clone());
    let mut outcome = run_in(docker, limits, spec, &mount_dir, pause).await;
    if let Ok(outcome) = &mut outcome {
        // Apparent sizes: sparse files take no room in the tmpfs but expand when read.
        if output::apparent_size(&mount_dir, cap) > cap
            || staging.as_ref().is_some_and(|s| s.full())
        {
            outcome.output_exceeded = true;
        } else {
            let taken = match &staging {
                Some(staging) => output::copy_tree(&staging.dir, &spec.output_dir, cap),
                None => output::sanitize_in_place(&spec.output_dir).and_then(|()| {
                    std::fs::set_permissions(
                        &spec.output_dir,
                        std::fs::Permissions::from_mode(output::DIR_MODE),
                    )
                    .map_err(|e| format!("{}: {e}", spec.output_dir.display()))
                }),
            };
            if let Err(error) = taken {
                outcome.output_error = Some(error);
            }
        }
        if outcome.output_exceeded || outcome.output_error.is_some() {
            output::discard(&spec.output_dir);
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
        // No single file may outgrow the output cap, even between two size checks. Open files
        // and processes are bounded too: an engine would otherwise hand the app its own limits
        // (Podman asks the kernel for more than a sandbox or a small system allows, and the
        // container does not start).
        ulimits: Some(vec![
            ulimit("fsize", limits.output_cap_bytes as i64),
            ulimit("nofile", APP_OPEN_FILES),
            ulimit("nproc", APP_PROCESSES),
        ]),
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
        user: limits.user.for_image(spec.image_user.as_deref()),
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
    remove(docker, &spec.name).await;
    outcome
}

/// Stops and removes a container by name; true when it was there to remove.
pub async fn remove(docker: &Docker, name: &str) -> bool {
    docker
        .remove_container(
            name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .is_ok()
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
            // An answer (exit code or error for a non-zero code) usually means the app has
            // stopped; but a wait cut short by the client's request timeout (a long app, an
            // engine that sends nothing until the end) says nothing: look before leaving.
            _ = wait.next() => {
                if still_running(docker, &spec.name).await? {
                    // Not in a tight loop if the engine keeps answering at once.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    wait = docker.wait_container(&spec.name, None);
                    continue;
                }
                break;
            }
            _ = check.tick(), if !timed_out && !output_exceeded => {
                let frozen = pause.total().saturating_sub(paused_before);
                if run_started.elapsed().saturating_sub(frozen) >= spec.timeout {
                    timed_out = true;
                    kill(docker, &spec.name).await;
                } else if output::apparent_size(output_dir, limits.output_cap_bytes)
                    > limits.output_cap_bytes
                {
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
    if state.running == Some(true) || state.paused == Some(true) {
        // Its output must not be taken while it can still write.
        kill(docker, &spec.name).await;
        return Err(DockerError {
            action: format!("waiting for {}", spec.name),
            reason: "the engine ended the wait while the app still runs".into(),
        });
    }
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

/// Whether the container is still running (or frozen). An engine that does not answer is
/// asked again; one that keeps not answering is an engine failure, never "the app is done".
async fn still_running(docker: &Docker, name: &str) -> Result<bool, DockerError> {
    let mut last = None;
    for attempt in 0..5u64 {
        match docker.inspect_container(name, None).await {
            Ok(info) => {
                return Ok(info
                    .state
                    .is_some_and(|s| s.running == Some(true) || s.paused == Some(true)));
            }
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
    }
    Err(DockerError {
        action: format!("inspecting {name}"),
        reason: last.map(|e| e.to_string()).unwrap_or_default(),
    })
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
    fn apps_never_run_as_root_unless_asked() {
        assert_eq!(AppUser::parse(""), AppUser::Auto);
        assert_eq!(AppUser::parse("root"), AppUser::Root);
        assert_eq!(AppUser::parse("0:0"), AppUser::Root);
        assert_eq!(
            AppUser::parse("1000:1000"),
            AppUser::Fixed("1000:1000".into())
        );
        assert_eq!(AppUser::Root.for_image(None), Some("0:0".into()));
        if running_as_root() {
            // Root in any spelling, and names (the image's passwd could map them to 0).
            for image_user in [
                None,
                Some(""),
                Some("root"),
                Some("0"),
                Some("0:0"),
                Some("00"),
                Some("0000:1000"),
                Some("node"),
                Some("app:app"),
            ] {
                assert_eq!(
                    AppUser::Auto.for_image(image_user),
                    Some(UNPRIVILEGED_USER.into()),
                    "{image_user:?}"
                );
            }
            assert_eq!(
                AppUser::Auto.for_image(Some("1000")),
                Some("1000:1000".into())
            );
            assert_eq!(
                AppUser::Auto.for_image(Some("1000:0")),
                Some("1000:1000".into())
            );
            assert_eq!(
                AppUser::Auto.for_image(Some("1000:50")),
                Some("1000:50".into())
            );
        } else {
            // SAFETY: getuid cannot fail.
            let uid = unsafe { libc::getuid() };
            let user = AppUser::Auto.for_image(Some("root")).unwrap();
            assert!(user.starts_with(&format!("{uid}:")), "{user}");
        }
    }

    #[test]
    fn tails_keep_the_end() {
        assert_eq!(tail(b"0123456789", 4), "6789");
        assert_eq!(tail(b"ab", 4), "ab");
    }
}
