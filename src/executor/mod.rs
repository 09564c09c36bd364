//! Running iExec apps in Docker, as the official worker does and more safely: image resolution
//! and verification, inputs, a hardened container, and the result digest.
//!
//! [`Executor::execute`] is the whole step from "the task's app and params" to "an output
//! folder with its digest"; app failures come back inside [`AppResult`], while an
//! [`ExecError`] means the node itself could not do its part (no Docker, image refused).

pub mod args;
pub mod cache;
pub mod env;
pub mod image;
pub mod inputs;
pub mod output;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::B256;
use bollard::Docker;
use serde::Serialize;

use crate::config::ExecutorSettings;
use crate::results::digest;
use crate::storage::ipfs::IpfsClient;
use env::TaskContext;
use inputs::Fetcher;
use run::{Limits, RunSpec};

/// The node could not run the app at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The image is missing, unpullable, for another platform, or not the registered one.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The Docker Engine failed.
    #[error(transparent)]
    Docker(#[from] run::DockerError),
    /// The task folder could not be prepared.
    #[error("task folder {path}: {reason}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

/// A dataset to put in `/iexec_in`.
#[derive(Debug, Clone)]
pub struct DatasetInput {
    /// Where to download it.
    pub source: String,
    /// Its on-chain SHA-256.
    pub checksum: B256,
}

/// Everything needed to run one task's app.
#[derive(Debug, Clone)]
pub struct AppRun {
    /// The image reference (the app's multiaddr).
    pub image: String,
    /// The app's on-chain checksum (zero: not set).
    pub checksum: B256,
    /// The request's `iexec_args`.
    pub iexec_args: Option<String>,
    /// Ids and input URLs for the environment.
    pub context: TaskContext,
    /// Local files to put in `/iexec_in` (for `pew app test`).
    pub local_inputs: Vec<PathBuf>,
    /// The dataset, if the deal has one.
    pub dataset: Option<DatasetInput>,
    /// The category's maximum run time.
    pub timeout: Duration,
    /// Whether the deal has a callback (the digest is then the callback data's).
    pub has_callback: bool,
    /// The task's folder: `input/` and `output/iexec_out/` are made inside.
    pub task_dir: PathBuf,
}

/// What running an app gave.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppResult {
    /// The app's exit code (null when it was killed or never started).
    pub exit_code: Option<i64>,
    /// Whether it was killed at its time limit.
    pub timed_out: bool,
    /// The result digest (0x-hex), null when none could be computed.
    pub digest: Option<B256>,
    /// The host folder the app wrote as `/iexec_out`.
    pub output_dir: PathBuf,
    /// Why the run cannot give a valid result, or null.
    pub error: Option<String>,
    /// The end of the app's stdout and stderr.
    pub logs: String,
    /// Wall time of the container, in seconds.
    pub duration_s: f64,
}

impl AppResult {
    /// Whether the run produced a result that can be contributed.
    pub fn is_valid(&self) -> bool {
        self.error.is_none() && self.digest.is_some()
    }
}

/// Runs apps on the local Docker Engine.
pub struct Executor {
    docker: Docker,
    limits: Limits,
    pause: run::PauseClock,
    fetcher: Fetcher,
    pull_timeout: Duration,
    input_max_bytes: u64,
    cache: tokio::sync::Mutex<cache::ImageCache>,
    /// Containers started and not yet known removed: a run cut short (Ctrl-C on `pew app
    /// test`) leaves its name here for [`Executor::remove_started`].
    started: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Executor {
    /// An executor with the configured limits; `ipfs` serves IPFS inputs.
    pub async fn new(
        settings: &ExecutorSettings,
        ipfs: Option<IpfsClient>,
    ) -> Result<Self, image::ImageError> {
        let docker = image::connect(&settings.engine_socket).await?;
        if let Err(error) = crate::files::private_dir(&settings.work_dir) {
            tracing::warn!(folder = %settings.work_dir.display(), %error, "the work folder cannot be made private (0700)");
        }
        let input_max_bytes = settings.input_max_mb * 1024 * 1024;
        Ok(Self {
            docker,
            limits: Limits::from_settings(settings),
            pause: run::PauseClock::default(),
            fetcher: Fetcher::new(
                ipfs,
                input_max_bytes,
                Duration::from_secs(settings.input_timeout_s),
            ),
            pull_timeout: Duration::from_secs(settings.pull_timeout_s),
            input_max_bytes,
            cache: tokio::sync::Mutex::new(cache::ImageCache::load(
                &settings.work_dir.join("images.json"),
            )),
            started: Default::default(),
        })
    }

    /// Removes the containers of runs that were cut short (their future dropped), with their
    /// output tmpfs already unmounted by then. For a command stopped by Ctrl-C.
    pub async fn remove_started(&self) -> usize {
        let names: Vec<String> = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut removed = 0;
        for name in names {
            if run::remove(&self.docker, &name).await {
                removed += 1;
            }
        }
        removed
    }

    /// Removes the containers this executor left behind (see [`run::remove_orphans`]).
    pub async fn remove_orphans(&self) -> usize {
        run::remove_orphans(&self.docker, &self.limits.owner).await
    }

    /// Freezes or thaws this executor's running apps (see [`run::set_paused`]).
    pub async fn set_paused(&self, paused: bool) -> usize {
        self.pause.set(paused);
        run::set_paused(&self.docker, &self.limits.owner, paused).await
    }

    /// Replaces the limits (tests use small caps).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The Docker client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Makes the image available and checks it may run here; call before accepting work.
    pub async fn prepare_image(
        &self,
        reference: &str,
        checksum: B256,
    ) -> Result<image::ReadyImage, ExecError> {
        let ready = image::prepare(&self.docker, reference, checksum, self.pull_timeout).await?;
        let mut cache = self.cache.lock().await;
        if ready.pulled {
            cache.record_pull(reference, None);
        } else {
            cache.record_use(reference, None);
        }
        if let Err(error) = cache.save() {
            tracing::warn!(%error, "could not save the image record");
        }
        Ok(ready)
    }

    /// Frees disk by removing pulled images when free space is under `min_free` bytes.
    pub async fn prune_images(
        &self,
        pinned: &[String],
        min_free: u64,
        docker_root: &Path,
    ) -> Vec<String> {
        let root = docker_root.to_path_buf();
        self.cache
            .lock()
            .await
            .prune(&self.docker, pinned, min_free, || cache::free_bytes(&root))
            .await
    }

    /// Runs the app of one task and computes its digest.
    pub async fn execute(&self, task: &AppRun) -> Result<AppResult, ExecError> {
        let ready = self.prepare_image(&task.image, task.checksum).await?;
        // The task folder is pew's alone: no other local user reaches its inputs or outputs.
        crate::files::private_dir(&task.task_dir).map_err(|e| folder_error(&task.task_dir, e))?;
        let input_dir = task.task_dir.join("input");
        let output_dir = task.task_dir.join("output").join("iexec_out");
        for dir in [&input_dir, &output_dir] {
            if dir.exists() {
                // An earlier attempt's app may have closed its folders.
                output::reopen_folders(dir);
                std::fs::remove_dir_all(dir).map_err(|e| folder_error(dir, e))?;
            }
            std::fs::create_dir_all(dir).map_err(|e| folder_error(dir, e))?;
        }
        let failed = |error: String| AppResult {
            exit_code: None,
            timed_out: false,
            digest: None,
            output_dir: output_dir.clone(),
            error: Some(error),
            logs: String::new(),
            duration_s: 0.0,
        };

        if let Err(error) = self.fetch_inputs(task, &input_dir).await {
            return Ok(failed(error.to_string()));
        }
        // Readable by the app's user, whoever it is (pew's umask may be strict).
        if let Err(error) = readable_inputs(&input_dir) {
            return Err(folder_error(&input_dir, error));
        }
        let args = match task.iexec_args.as_deref().map(args::split_args).transpose() {
            Ok(args) => args.unwrap_or_default(),
            Err(error) => return Ok(failed(error.to_string())),
        };
        let spec = RunSpec {
            // The image checked above, by id: a tag moved meanwhile is not what runs.
            image: if ready.id.is_empty() {
                task.image.clone()
            } else {
                ready.id.clone()
            },
            image_user: ready.user.clone(),
            args,
            env: env::iexec_env(&task.context),
            input_dir,
            output_dir: output_dir.clone(),
            timeout: task.timeout,
            name: format!(
                "pew-{}-{}",
                &task.context.task.to_string()[2..14],
                &alloy::hex::encode(B256::random().as_slice())[..8]
            ),
        };
        tracing::info!(task = %task.context.task, image = %task.image, "running the app");
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.name.clone());
        let outcome = run::run(&self.docker, &self.limits, &spec, &self.pause).await;
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&spec.name);
        let outcome = outcome?;
        let logs = join_logs(&outcome.stdout, &outcome.stderr);
        let mut result = AppResult {
            exit_code: outcome.exit_code,
            timed_out: outcome.timed_out,
            digest: None,
            output_dir: output_dir.clone(),
            error: None,
            logs,
            duration_s: outcome.duration.as_secs_f64(),
        };
        if let Some(error) = outcome.start_error {
            result.error = Some(format!("the app's container could not start: {error}"));
            return Ok(result);
        }
        if outcome.timed_out {
            result.error = Some(format!(
                "the app did not finish within {} s and was stopped",
                task.timeout.as_secs()
            ));
            return Ok(result);
        }
        if outcome.output_exceeded {
            result.error = Some(format!(
                "the app wrote more than {} bytes to /iexec_out and was stopped",
                self.limits.output_cap_bytes
            ));
            return Ok(result);
        }
        if let Some(error) = outcome.output_error {
            result.error = Some(error);
            return Ok(result);
        }
        if outcome.oom_killed {
            result.error = Some(format!(
                "the app used more than {} bytes of memory and was stopped",
                self.limits.memory_bytes
            ));
            return Ok(result);
        }
        let succeeded = outcome.exit_code == Some(0);
        if succeeded {
            // As the official worker does: the logs are part of the output.
            write_if_not_empty(&output_dir.join("stdout.txt"), &outcome.stdout);
            write_if_not_empty(&output_dir.join("stderr.txt"), &outcome.stderr);
            if !output_dir.join("computed.json").exists() {
                let computed = digest::ComputedFile {
                    deterministic_output_path: Some(digest::CONTAINER_OUT.into()),
                    ..Default::default()
                };
                let _ = std::fs::write(
                    output_dir.join("computed.json"),
                    serde_json::to_string(&computed).expect("serializes"),
                );
            }
        } else {
            result.error = Some(format!(
                "the app exited with code {}",
                outcome
                    .exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
        match output::check_tree(&output_dir).and_then(|()| {
            digest::result_digest(&output_dir, task.has_callback).map_err(|e| e.to_string())
        }) {
            Ok(digest) => result.digest = Some(digest),
            Err(error) => {
                if result.error.is_none() {
                    result.error = Some(error);
                }
            }
        }
        Ok(result)
    }

    async fn fetch_inputs(
        &self,
        task: &AppRun,
        input_dir: &Path,
    ) -> Result<(), inputs::InputError> {
        if let Some(dataset) = &task.dataset {
            self.fetcher
                .fetch_dataset(
                    &dataset.source,
                    input_dir,
                    &env::dataset_file_name(task.context.dataset),
                    dataset.checksum,
                )
                .await?;
        }
        for url in &task.context.input_files {
            self.fetcher
                .fetch(url, input_dir, &env::input_file_name(url))
                .await?;
        }
        for path in &task.local_inputs {
            inputs::copy_local(path, input_dir, self.input_max_bytes)?;
        }
        Ok(())
    }
}

fn folder_error(path: &Path, error: std::io::Error) -> ExecError {
    ExecError::Folder {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn write_if_not_empty(path: &Path, text: &str) {
    if !text.is_empty() && !path.exists() {
        let _ = std::fs::write(path, text);
    }
}

fn join_logs(stdout: &str, stderr: &str) -> String {
    match (stdout.is_empty(), stderr.is_empty()) {
        (_, true) => stdout.to_string(),
        (true, false) => stderr.to_string(),
        (false, false) => format!("{stdout}\n--- stderr ---\n{stderr}"),
    }
}

/// Makes the input folder and its files readable (not writable) by any user: the app's user
/// may be the image's own, and the folder above is private to pew anyway.
fn readable_inputs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}
