//! The harness's Docker side: the engine answers, and a locally built image runs with no
//! network, as every task container in the tests will.

mod common;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

#[tokio::test]
async fn a_locally_built_image_runs_without_network() {
    let docker = common::docker().await;
    let image = common::busybox_image(&docker).await;
    let name = format!("pew-harness-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo hello from busybox; ls /sys/class/net".into(),
        ]),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .unwrap();
    docker.start_container(&name, None).await.unwrap();
    let mut wait = docker.wait_container(&name, None);
    let exit = wait.next().await.unwrap().unwrap();
    assert_eq!(exit.status_code, 0);
    let mut logs = docker.logs(
        &name,
        Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
    );
    let mut output = String::new();
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.unwrap().to_string());
    }
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    assert!(output.contains("hello from busybox"), "{output}");
    // With --network none the container sees only the loopback interface.
    let interfaces: Vec<&str> = output.lines().skip(1).collect();
    assert_eq!(interfaces, ["lo"], "{output}");
}
