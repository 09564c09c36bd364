//! The command line given hostile or mistaken input: devices and FIFOs where files belong,
//! settings and server replies of megabytes, addresses with a broken checksum, a key file
//! others can read, and a task that never appears. Each ends quickly, in one short line, with
//! what to do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn pew_offline(home: &Path) -> Command {
    let mut command = Command::new(common::pew_bin());
    command
        .env("HOME", home)
        .env("PEW_PASSWORD", common::TEST_PASSWORD)
        .env_remove("PEW_CONFIG")
        .stdin(Stdio::null());
    command
}

/// Runs `command`, killing it (and failing the test) if it is not done within `limit`.
fn run_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output().unwrap();
        let _ = done_tx.send(());
        output
    });
    if done_rx.recv_timeout(limit).is_err() {
        // SAFETY: kill(2) of our own child.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        let output = waiter.join().unwrap();
        panic!(
            "{command:?} did not end within {limit:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    waiter.join().unwrap()
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

#[test]
fn devices_and_fifos_where_files_belong_are_refused_at_once() {
    let home = tempfile::tempdir().unwrap();
    let fifo = home.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let new_key = home.path().join("new.json");
    let new_key = new_key.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["wallet", "show", "--keystore", "/dev/zero"],
        vec!["wallet", "show", "--keystore", fifo],
        vec!["--config", "/dev/zero", "wallet", "show"],
        vec!["--config", fifo, "wallet", "show"],
        vec![
            "wallet",
            "create",
            "--keystore",
            new_key,
            "--password-file",
            "/dev/zero",
        ],
        vec![
            "wallet",
            "import",
            "--keystore",
            new_key,
            "--private-key-file",
            "/dev/zero",
        ],
        vec![
            "wallet",
            "import",
            "--keystore",
            new_key,
            "--mnemonic-file",
            fifo,
        ],
    ];
    for args in cases {
        let mut command = pew_offline(home.path());
        command.args(&args);
        let output = run_within(command, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains("not a regular file"), "{args:?}: {stderr}");
        assert!(stderr.len() < 1000, "{args:?}: {} bytes", stderr.len());
    }
    assert!(!Path::new(new_key).exists(), "nothing was written");
}

#[test]
fn a_setting_of_megabytes_is_quoted_in_a_few_hundred_bytes() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("big.toml");
    std::fs::write(
        &config,
        format!("[node]\npool = \"{}\"\n", "z".repeat(10_000_000)),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // A 10 MB file is over the config limit: refused whole, never echoed.
    for args in [
        vec!["--config", config, "run"],
        vec!["--config", config, "doctor"],
    ] {
        let mut command = pew_offline(home.path());
        command.args(&args);
        let output = run_within(command, Duration::from_secs(30));
        assert!(!output.status.success());
        let said = output.stdout.len() + output.stderr.len();
        assert!(said < 5000, "{args:?}: {said} bytes");
    }
    // Under the limit, a bad value is quoted, not echoed.
    let config = home.path().join("pool.toml");
    std::fs::write(
        &config,
        format!("[node]\npool = \"{}\"\n", "z".repeat(500_000)),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for args in [
        vec!["--config", config, "run"],
        vec!["--config", config, "doctor"],
    ] {
        let mut command = pew_offline(home.path());
        command.args(&args);
        let output = run_within(command, Duration::from_secs(30));
        assert!(!output.status.success());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.len() < 5000, "{args:?}: {} bytes", text.len());
        if args.contains(&"run") {
            assert!(text.contains("node.pool"), "{args:?}: {text}");
        }
    }
}

/// A server that answers every request with a 500 and a 5 MB HTML page.
fn html_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let body = format!("<html>{}</html>", "<p>error</p>\n".repeat(400_000));
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_server_that_is_no_json_rpc_node_is_quoted_not_echoed() {
    let home = tempfile::tempdir().unwrap();
    let port = html_server();
    let mut command = pew_offline(home.path());
    command.args([
        "account",
        "show",
        "--address",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "--rpc-url",
        &format!("http://127.0.0.1:{port}"),
        "--hub",
        "0x098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0",
    ]);
    let output = run_within(command, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.len() < 3000,
        "{} bytes: {}",
        stderr.len(),
        &stderr[..500]
    );
    assert!(stderr.contains("bytes in all"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_mixed_case_address_with_a_broken_checksum_is_refused() {
    let home = tempfile::tempdir().unwrap();
    for (address, ok) in [
        ("0x098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0", true),
        ("0x098bfcb1e50ebca0baa92c12ea0c3f045a1ad9f0", true),
        ("0x098bFcb1E50ebcA0BaA92C12eA0c3F045A1aD9f0", false),
    ] {
        let mut command = pew_offline(home.path());
        command.args(["app", "show", address, "--rpc-url", "http://127.0.0.1:1"]);
        command.args(["--hub", "0x098bfcb1e50ebca0baa92c12ea0c3f045a1ad9f0"]);
        let output = run_within(command, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Good addresses get as far as the (absent) chain; the bad one never does.
        assert!(!output.status.success());
        assert_eq!(!stderr.contains("checksum"), ok, "{address}: {stderr}");
        assert_eq!(
            stderr.contains("does not answer"),
            ok,
            "{address}: {stderr}"
        );
    }
}

#[test]
fn a_key_file_others_can_read_is_warned_about_and_fails_pew_doctor() {
    let home = tempfile::tempdir().unwrap();
    let keystore = home.path().join("w.json");
    let keystore_arg = keystore.to_str().unwrap();
    let mut create = pew_offline(home.path());
    create.args(["wallet", "create", "--keystore", keystore_arg]);
    assert!(run_within(create, Duration::from_secs(60)).status.success());
    std::fs::set_permissions(&keystore, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut show = pew_offline(home.path());
    show.args(["wallet", "show", "--keystore", keystore_arg]);
    let output = run_within(show, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "still usable: {stderr}");
    assert!(
        stderr.contains("readable by other users") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let mut doctor = pew_offline(home.path());
    doctor.args(["doctor", "--json", "--keystore", keystore_arg]);
    let output = run_within(doctor, Duration::from_secs(120));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "wallet permissions")
        .unwrap_or_else(|| panic!("no permissions check: {report}"));
    assert_eq!(check["outcome"], "fail", "{check}");
}

#[tokio::test]
async fn watching_a_task_that_never_appears_ends_with_a_clear_message() {
    let t = common::devnet(false).await;
    let started = Instant::now();
    let output = t
        .pew()
        .args(["task", "watch", &format!("0x{}", "00".repeat(31) + "01")])
        .args(["--appear-timeout", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    assert!(!output.status.success());
    assert!(
        stderr.contains("does not exist on chain after 3 s"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_with_its_usual_status() {
    // `pew … | true`: the reader is gone before pew prints its answer.
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("out");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("result.txt"), b"sunny").unwrap();
    std::fs::write(
        folder.join("computed.json"),
        br#"{"deterministic-output-path": "/iexec_out/result.txt"}"#,
    )
    .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = pew_offline(home.path())
        .args(["result", "digest", folder.to_str().unwrap()])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
