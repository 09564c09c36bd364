//! Apps that attack the host through their output, run on the real Docker Engine: a setuid
//! copy of a shell, sparse files far past the output cap, names that are not text, a FIFO as
//! computed.json, and a run stopped by Ctrl-C. Each must be contained: nothing the app wrote
//! reaches the host with privileges or beyond the cap, and nothing is left running.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::apps::{executor, run, settings};
use pew::executor::output::{DIR_MODE, FILE_MODE};

fn running_as_root() -> bool {
    pew::executor::run::running_as_root()
}

/// Whether a user other than pew's (uid 12345) can read `path`.
fn another_user_reads(path: &Path) -> bool {
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("cat '{}' > /dev/null", path.display()))
        .uid(12345)
        .gid(12345)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh runs")
        .success()
}

fn assert_plain_and_private(out: &Path) {
    for (path, expected) in [
        (out.join("x"), FILE_MODE),
        (out.join("d"), DIR_MODE),
        (out.join("d/w"), FILE_MODE),
    ] {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        assert_eq!(mode, expected, "{} has mode {mode:04o}", path.display());
        // SAFETY: geteuid cannot fail.
        assert_eq!(meta.uid(), unsafe { libc::geteuid() }, "{}", path.display());
    }
    // The task's folder is what keeps others out: the work folder above it is left open
    // by the tests (see `open_work_folder`).
    let task_dir = out.parent().unwrap().parent().unwrap();
    assert_eq!(
        std::fs::metadata(task_dir).unwrap().permissions().mode() & 0o777,
        0o700,
        "{}",
        task_dir.display()
    );
    if running_as_root() {
        assert!(std::fs::metadata(out.join("x")).is_ok(), "root reads it");
        assert!(
            !another_user_reads(&out.join("x")),
            "another local user must not reach the task's output"
        );
    }
}

/// A work folder others may traverse, as a careless operator's could be: the test then shows
/// that pew's own task folder keeps them out (a temp folder alone would already).
fn open_work_folder() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    work
}

#[tokio::test]
async fn a_setuid_copy_of_a_shell_reaches_the_host_as_a_plain_file_no_one_else_can_reach() {
    let work = open_work_folder();
    let executor = executor(work.path(), |_| {}).await;
    // pew makes its work folder private; open it again, as if an operator had.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let result = run(&executor, work.path(), "setuid", None, 60).await;
    assert!(result.is_valid(), "{result:?}");
    assert_plain_and_private(&result.output_dir);
    let uid = std::fs::read_to_string(result.output_dir.join("uid.txt")).unwrap();
    if running_as_root() {
        assert_eq!(uid.trim(), "65534", "an image without USER runs as nobody");
    } else {
        // SAFETY: getuid cannot fail.
        assert_eq!(uid.trim(), unsafe { libc::getuid() }.to_string());
    }
}

#[tokio::test]
async fn without_the_kernel_cap_the_output_is_made_plain_in_place() {
    let work = open_work_folder();
    let mut limits = pew::executor::run::Limits::from_settings(&settings(work.path()));
    limits.kernel_output_cap = false;
    let executor = executor(work.path(), |_| {}).await.with_limits(limits);
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let result = run(&executor, work.path(), "setuid", None, 60).await;
    assert!(result.is_valid(), "{result:?}");
    assert_plain_and_private(&result.output_dir);
}

#[tokio::test]
async fn sparse_files_past_the_cap_are_refused_before_any_copy_and_removed_at_once() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await; // the default 100 MB cap
    let result = run(&executor, work.path(), "sparse", None, 60).await;
    assert!(!result.is_valid(), "{result:?}");
    let error = result.error.clone().unwrap();
    assert!(
        error.contains("more than") && error.contains("/iexec_out"),
        "{error}"
    );
    let left = pew::executor::output::apparent_size(&result.output_dir, u64::MAX);
    assert_eq!(
        left, 0,
        "a refused output is removed at once, not kept on disk"
    );
    // The same in the watched (no root) mode.
    let mut limits = pew::executor::run::Limits::from_settings(&settings(work.path()));
    limits.kernel_output_cap = false;
    let executor = executor.with_limits(limits);
    let result = run(&executor, work.path(), "sparse", None, 60).await;
    assert!(!result.is_valid(), "{result:?}");
    assert_eq!(
        pew::executor::output::apparent_size(&result.output_dir, u64::MAX),
        0
    );
}

#[tokio::test]
async fn file_names_that_are_not_text_are_an_app_error_not_a_retry() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let result = run(&executor, work.path(), "badnames", None, 60).await;
    assert!(!result.is_valid(), "{result:?}");
    assert_eq!(result.digest, None);
    let error = result.error.unwrap();
    assert!(error.contains("not UTF-8"), "{error}");
}

#[tokio::test]
async fn a_fifo_as_computed_json_is_refused_not_replaced_by_a_default() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let started = Instant::now();
    let result = run(&executor, work.path(), "fifo", None, 60).await;
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    assert!(!result.is_valid(), "{result:?}");
    let error = result.error.unwrap();
    assert!(error.contains("FIFO"), "{error}");
}

/// Names of this engine's containers started by pew for the work folder `owner`.
async fn app_containers(docker: &bollard::Docker, owner: &Path) -> Vec<String> {
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("pew.work={}", owner.display())],
    )]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn ctrl_c_on_pew_app_test_removes_the_container_and_its_output_mount() {
    let docker = common::docker().await;
    let work = tempfile::tempdir().unwrap();
    let image = common::app_image(&docker, "sleeper").await;
    let mut child = std::process::Command::new(common::pew_bin())
        .envs(common::engine_env())
        .args(["app", "test", "--image", &image, "--timeout", "300"])
        .env("PEW_EXECUTOR__WORK_DIR", work.path())
        .env("HOME", work.path())
        .env_remove("PEW_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while app_containers(&docker, work.path()).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the app's container never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "pew app test did not stop on SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
    assert!(
        app_containers(&docker, work.path()).await.is_empty(),
        "the app's container is gone"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&work.path().display().to_string()),
        "no output tmpfs is left mounted under the work folder"
    );
}

#[tokio::test]
async fn thousands_of_empty_folders_count_against_the_cap() {
    let work = tempfile::tempdir().unwrap();
    // 10 MB is room for 2 560 entries at a block each: 5 000 folders are over.
    let executor = executor(work.path(), |s| s.output_cap_mb = 10).await;
    let result = run(&executor, work.path(), "dirs", None, 120).await;
    assert!(!result.is_valid(), "{result:?}");
    assert_eq!(
        pew::executor::output::apparent_size(&result.output_dir, u64::MAX),
        0,
        "removed at once"
    );
    let mut limits = pew::executor::run::Limits::from_settings(&settings(work.path()));
    limits.kernel_output_cap = false;
    limits.output_cap_bytes = 10 * 1024 * 1024;
    let executor = executor.with_limits(limits);
    let result = run(&executor, work.path(), "dirs", None, 120).await;
    assert!(!result.is_valid(), "{result:?}");
}

#[tokio::test]
async fn a_node_that_is_not_root_stops_an_app_that_hides_its_output_and_removes_it() {
    if !running_as_root() || !common::engine_socket().is_empty() {
        return; // needs root to become another user, and the Docker socket's group
    }
    let docker = common::docker().await;
    let image = common::app_image(&docker, "hider").await;
    let work = open_work_folder();
    let uid = 23456;
    std::os::unix::fs::chown(work.path(), Some(uid), Some(uid)).unwrap();
    let socket_group = std::fs::metadata("/var/run/docker.sock").unwrap().gid();
    // `pew app test` as an unprivileged user in the socket's group: the packaged service's case.
    let output = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &format!("--groups={socket_group}"),
        ])
        .arg(common::pew_bin())
        .args([
            "app",
            "test",
            "--image",
            &image,
            "--json",
            "--timeout",
            "120",
        ])
        .env("PEW_EXECUTOR__WORK_DIR", work.path())
        .env("PEW_EXECUTOR__OUTPUT_CAP_MB", "20")
        .env("HOME", work.path())
        .env_remove("PEW_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {stderr}"));
    let error = result["error"].as_str().unwrap_or_default();
    assert!(error.contains("more than"), "{result}");
    // What the app wrote is gone, closed folder included.
    let left = pew::executor::output::apparent_size(work.path(), u64::MAX);
    assert!(
        left < 5 * 1024 * 1024,
        "{left} bytes left in the work folder"
    );
}
