//! Apps run on the real Docker Engine through pew's executor: digests checked against an
//! independent computation, the iExec environment, time limits, output caps, links, fork
//! bombs and the network, all contained and reported.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, keccak256};
use pew::executor::AppRun;
use pew::executor::env::TaskContext;
use sha2::{Digest, Sha256};

use common::apps::{executor, run, settings};

fn sha256(bytes: &[u8]) -> B256 {
    B256::from_slice(&Sha256::digest(bytes))
}

#[tokio::test]
async fn a_file_result_has_the_sha256_digest_and_args_are_split_like_a_shell() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let result = run(
        &executor,
        work.path(),
        "writer",
        Some(r#"hello "big world" 'a  b'"#),
        60,
    )
    .await;
    assert!(result.is_valid(), "{result:?}");
    assert_eq!(result.exit_code, Some(0));
    let written = std::fs::read(result.output_dir.join("result.txt")).unwrap();
    assert_eq!(written, b"hello big world a  b\n");
    assert_eq!(result.digest, Some(sha256(&written)));
    assert!(
        result.logs.contains("wrote: hello big world a  b"),
        "{}",
        result.logs
    );
}

#[tokio::test]
async fn a_folder_result_follows_the_sorted_children_rule() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let result = run(&executor, work.path(), "folder", None, 60).await;
    assert!(result.is_valid(), "{result:?}");
    // keccak256(sha256("A") ‖ sha256("B")); the sub-folder adds nothing (PROTOCOL.md §15.5).
    let expected = keccak256([sha256(b"A").as_slice(), sha256(b"B").as_slice()].concat());
    assert_eq!(result.digest, Some(expected));
    assert_eq!(
        expected.to_string(),
        "0x3e414b345ce4e8d016eff459b112b41de5bc488237863d83187f93ba096a9666"
    );
}

#[tokio::test]
async fn an_app_past_its_time_limit_is_stopped_and_reported() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let started = Instant::now();
    let result = run(&executor, work.path(), "sleeper", None, 2).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(result.timed_out);
    assert_eq!(result.exit_code, None);
    assert_eq!(result.digest, None);
    assert!(
        result.error.as_deref().unwrap().contains("within 2 s"),
        "{result:?}"
    );
    assert!(result.logs.contains("going to sleep"));
}

#[tokio::test]
async fn a_symlink_out_of_iexec_out_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let result = run(&executor, work.path(), "symlinker", None, 60).await;
    assert!(!result.is_valid());
    assert_eq!(result.digest, None);
    let error = result.error.unwrap();
    assert!(
        error.contains("symbolic link") && error.contains("result.txt"),
        "{error}"
    );
}

#[tokio::test]
async fn an_app_filling_the_disk_is_stopped_at_the_output_cap() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |s| s.output_cap_mb = 20).await;
    let result = run(&executor, work.path(), "filler", None, 120).await;
    assert!(!result.is_valid());
    let error = result.error.unwrap();
    assert!(
        error.contains("more than") && error.contains("/iexec_out"),
        "{error}"
    );
    let written = pew::executor::output::apparent_size(&result.output_dir, u64::MAX);
    assert!(
        written <= 20 * 1024 * 1024,
        "the kernel held the cap: {written} bytes written"
    );
}

#[tokio::test]
async fn without_root_the_output_cap_is_watched_and_still_stops_the_app() {
    let work = tempfile::tempdir().unwrap();
    let mut capped = settings(work.path());
    capped.output_cap_mb = 20;
    let mut limits = pew::executor::run::Limits::from_settings(&capped);
    limits.kernel_output_cap = false;
    let executor = executor(work.path(), |s| s.output_cap_mb = 20)
        .await
        .with_limits(limits);
    let result = run(&executor, work.path(), "filler", None, 120).await;
    assert!(!result.is_valid());
    assert!(result.error.unwrap().contains("more than"));
}

#[tokio::test]
async fn a_fork_bomb_is_contained_by_the_pids_limit() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |s| s.pids = 32).await;
    let started = Instant::now();
    let result = run(&executor, work.path(), "forkbomb", None, 5).await;
    // Either the bomb's own shell runs out of processes and fails, or it
    // waits and is stopped at its time limit: both are contained, neither is
    // a valid result, and the limit is what the app ran into.
    assert!(!result.is_valid(), "{result:?}");
    assert!(
        result.timed_out || result.logs.contains("can't fork"),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // The host is unharmed: another app still runs right after.
    let after = run(&executor, work.path(), "writer", Some("still alive"), 60).await;
    assert!(after.is_valid(), "{after:?}");
}

#[tokio::test]
async fn apps_have_no_network_by_default() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let result = run(&executor, work.path(), "network", None, 60).await;
    assert!(result.is_valid(), "{result:?}");
    let seen = std::fs::read_to_string(result.output_dir.join("result.txt")).unwrap();
    assert_eq!(
        seen.trim(),
        "offline: lo",
        "only the loopback interface exists"
    );
}

#[tokio::test]
async fn apps_see_the_iexec_environment_and_read_only_inputs() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |_| {}).await;
    let image = common::app_image(executor.docker(), "env").await;
    let input = work.path().join("numbers.csv");
    std::fs::write(&input, "1,2,3\n").unwrap();
    let mut context = TaskContext::offline(vec![]);
    context.local_input_names = vec!["numbers.csv".into()];
    let task = AppRun {
        image,
        checksum: B256::ZERO,
        iexec_args: None,
        context,
        local_inputs: vec![input],
        dataset: None,
        timeout: Duration::from_secs(60),
        has_callback: false,
        task_dir: work.path().join("env-task"),
    };
    let result = executor.execute(&task).await.unwrap();
    assert!(result.is_valid(), "{result:?}");
    let out = &result.output_dir;
    let env = std::fs::read_to_string(out.join("env.txt")).unwrap();
    for line in [
        "IEXEC_IN=/iexec_in",
        "IEXEC_OUT=/iexec_out",
        "IEXEC_INPUT_FILES_NUMBER=1",
        "IEXEC_INPUT_FILE_NAME_1=numbers.csv",
        "IEXEC_BOT_SIZE=1",
        "IEXEC_TASK_INDEX=0",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("inputs-content.txt")).unwrap(),
        "1,2,3\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("iexec_in.txt"))
            .unwrap()
            .trim(),
        "read-only"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("root.txt"))
            .unwrap()
            .trim(),
        "read-only"
    );
    // The folder digest covers the direct files, computed.json included.
    let mut names: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let concatenated: Vec<u8> = names
        .iter()
        .flat_map(|n| sha256(&std::fs::read(out.join(n)).unwrap()).to_vec())
        .collect();
    assert_eq!(result.digest, Some(keccak256(concatenated)));
}

#[tokio::test]
async fn a_checksum_mismatch_or_missing_image_is_refused_before_running() {
    let work = tempfile::tempdir().unwrap();
    let executor = executor(work.path(), |s| s.pull_timeout_s = 20).await;
    let image = common::app_image(executor.docker(), "writer").await;
    let err = executor
        .prepare_image(&image, B256::repeat_byte(0x11))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not match") && err.contains(&image),
        "{err}"
    );
    let id = executor
        .docker()
        .inspect_image(&image)
        .await
        .unwrap()
        .id
        .unwrap();
    let good = pew::executor::image::parse_sha256_digest(&id).unwrap();
    assert!(executor.prepare_image(&image, good).await.is_ok());
    // No registry is reachable: a pull fails with the image named, and does not hang.
    let started = Instant::now();
    let err = executor
        .prepare_image("registry.invalid/nothing:1", B256::ZERO)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry.invalid/nothing:1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(40));
}

#[tokio::test]
async fn pew_app_test_prints_the_documented_json_and_exit_status() {
    let docker = common::docker().await;
    let work = tempfile::tempdir().unwrap();
    let good = common::app_image(&docker, "writer").await;
    let bad = common::app_image(&docker, "symlinker").await;
    let pew = |image: &str| {
        std::process::Command::new(common::pew_bin())
            .envs(common::engine_env())
            .args([
                "app",
                "test",
                "--image",
                image,
                "--args",
                "from the cli",
                "--json",
            ])
            .env("PEW_EXECUTOR__WORK_DIR", work.path())
            .env("HOME", work.path())
            .env_remove("PEW_CONFIG")
            .output()
            .unwrap()
    };
    let ok = pew(&good);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    for key in [
        "exit_code",
        "timed_out",
        "digest",
        "output_dir",
        "error",
        "logs",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let written =
        std::fs::read(Path::new(json["output_dir"].as_str().unwrap()).join("result.txt")).unwrap();
    assert_eq!(
        json["digest"].as_str().unwrap(),
        sha256(&written).to_string()
    );
    assert_eq!(json["error"], serde_json::Value::Null);

    let refused = pew(&bad);
    assert!(!refused.status.success());
    let json: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(json["digest"], serde_json::Value::Null);
    assert!(json["error"].as_str().unwrap().contains("symbolic link"));
}

#[tokio::test]
async fn a_running_app_can_be_frozen_and_thawed_and_the_frozen_time_does_not_count_against_its_limit()
 {
    let work = tempfile::tempdir().unwrap();
    let executor = std::sync::Arc::new(executor(work.path(), |_| {}).await);
    common::app_image(executor.docker(), "napper").await; // built before the clock matters
    let running = {
        let executor = executor.clone();
        let work = work.path().to_path_buf();
        // A 6 s limit: 3 s of work plus 4 s frozen only fit because frozen time is given back
        // (3 s are left for a slow machine to start, pause and resume the container).
        tokio::spawn(async move { run(&executor, &work, "napper", Some("3"), 6).await })
    };
    // Wait for the container to run, then freeze it.
    let mut frozen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        frozen = executor.set_paused(true).await;
        if frozen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(frozen, 1, "the napper was found running and paused");
    let frozen_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!running.is_finished(), "a frozen app does not finish");
    assert_eq!(executor.set_paused(false).await, 1);
    let result = running.await.unwrap();
    assert!(result.is_valid(), "{result:?}");
    // It ran 3 s, was frozen 4 s, and still met its 6 s limit: the frozen time was given back.
    assert!(!result.timed_out, "{result:?}");
    assert!(frozen_at.elapsed() >= Duration::from_secs(4));
}
