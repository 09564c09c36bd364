//! Inputs from the real IPFS node, datasets checked against their checksum, and the clean-up
//! of pulled images on the real Docker Engine.

mod common;

use std::time::Duration;

use alloy::primitives::{Address, B256};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, TagImageOptionsBuilder,
};
use pew::config::Settings;
use pew::executor::cache::ImageCache;
use pew::executor::env::{TaskContext, input_file_name};
use pew::executor::{AppRun, DatasetInput, Executor};
use pew::storage::ipfs::IpfsClient;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn inputs_come_from_ipfs_and_a_dataset_must_match_its_checksum() {
    let t = common::devnet(true).await;
    common::docker().await;
    let ipfs = IpfsClient::new(t.ipfs_api(), Duration::from_secs(30));
    let input = ipfs.add(b"input from ipfs\n").await.unwrap();
    let dataset_bytes = b"secret,data\n";
    let dataset = ipfs.add(dataset_bytes).await.unwrap();
    let work = t.dir.path().join("work");
    let mut settings = Settings::load_from(None, &[]).unwrap().executor;
    settings.work_dir = work.clone();
    settings.engine_socket = common::engine_socket();
    let executor = Executor::new(&settings, Some(ipfs.clone())).await.unwrap();
    let image = common::app_image(executor.docker(), "env").await;

    let url = format!("ipfs://{}", input.cid);
    let dataset_address = Address::repeat_byte(0xda);
    let mut context = TaskContext::offline(vec![url.clone()]);
    context.dataset = dataset_address;
    let checksum = B256::from_slice(&Sha256::digest(dataset_bytes));
    let mut task = AppRun {
        image,
        checksum: B256::ZERO,
        iexec_args: None,
        context,
        local_inputs: vec![],
        dataset: Some(DatasetInput {
            source: format!("/ipfs/{}", dataset.cid),
            checksum,
        }),
        timeout: Duration::from_secs(60),
        has_callback: false,
        task_dir: work.join("task"),
    };
    let result = executor.execute(&task).await.unwrap();
    assert!(result.is_valid(), "{result:?}");
    let listing = std::fs::read_to_string(result.output_dir.join("inputs.txt")).unwrap();
    assert!(listing.contains(&input_file_name(&url)), "{listing}");
    assert!(listing.contains(&dataset_address.to_string()), "{listing}");
    let env = std::fs::read_to_string(result.output_dir.join("env.txt")).unwrap();
    assert!(
        env.contains(&format!("IEXEC_DATASET_FILENAME={dataset_address}")),
        "{env}"
    );
    let contents = std::fs::read_to_string(result.output_dir.join("inputs-content.txt")).unwrap();
    assert!(
        contents.contains("input from ipfs") && contents.contains("secret,data"),
        "{contents}"
    );

    // A dataset whose content differs from its on-chain checksum never reaches the app.
    task.dataset.as_mut().unwrap().checksum = B256::repeat_byte(1);
    let refused = executor.execute(&task).await.unwrap();
    let error = refused.error.unwrap();
    assert!(
        error.contains(&dataset.cid) && error.contains("not the on-chain checksum"),
        "{error}"
    );
    assert_eq!(refused.digest, None);

    // An input that does not exist names itself.
    task.dataset = None;
    task.context.input_files = vec!["http://127.0.0.1:9/missing.csv".into()];
    let missing = executor.execute(&task).await.unwrap();
    assert!(
        missing
            .error
            .unwrap()
            .contains("http://127.0.0.1:9/missing.csv")
    );
}

#[tokio::test]
async fn pruning_removes_pulled_images_least_recently_used_first_but_never_pinned_or_in_use() {
    let docker = common::docker().await;
    let base = common::busybox_image(&docker).await;
    let suffix = std::process::id();
    let names: Vec<String> = ["old", "new", "pinned", "busy"]
        .iter()
        .map(|n| format!("pew-prune-{n}-{suffix}"))
        .collect();
    for name in &names {
        let options = TagImageOptionsBuilder::new().repo(name).tag("1").build();
        docker.tag_image(&base, Some(options)).await.unwrap();
    }
    let image = |i: usize| format!("{}:1", names[i]);
    let busy_container = format!("pew-prune-busy-{suffix}");
    docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::new()
                    .name(&busy_container)
                    .build(),
            ),
            ContainerCreateBody {
                image: Some(image(3)),
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut cache = ImageCache::load(&dir.path().join("images.json"));
    cache.record_pull(&image(0), Some(100));
    cache.record_pull(&image(1), Some(300));
    cache.record_pull(&image(2), Some(50));
    cache.record_pull(&image(3), Some(10));
    assert_eq!(
        cache.prune_order(
            &[image(2)],
            &pew::executor::cache::images_in_use(&docker).await
        ),
        [image(0), image(1)]
    );
    // Free space stays "too low" until two images are gone.
    let removed_count = std::sync::atomic::AtomicUsize::new(0);
    let removed = cache
        .prune(&docker, &[image(2)], 10, || {
            if removed_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                0
            } else {
                100
            }
        })
        .await;
    assert_eq!(
        removed,
        [image(0)],
        "least recently used first, and only as much as needed"
    );
    assert!(docker.inspect_image(&image(0)).await.is_err());
    for kept in [1, 2, 3] {
        assert!(
            docker.inspect_image(&image(kept)).await.is_ok(),
            "{} kept",
            image(kept)
        );
    }

    docker
        .remove_container(
            &busy_container,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    for i in [1, 2, 3] {
        let _ = docker
            .remove_image(
                &image(i),
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}
