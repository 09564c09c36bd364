//! Running test apps through pew's executor directly (no chain): an executor on the shared
//! Docker Engine with the default limits (or tweaked ones), and one run of a test app.

use std::path::Path;
use std::time::Duration;

use alloy::primitives::B256;
use pew::config::{ExecutorSettings, Settings};
use pew::executor::env::TaskContext;
use pew::executor::{AppResult, AppRun, Executor};

/// The default executor settings, working in `work`.
pub fn settings(work: &Path) -> ExecutorSettings {
    let mut settings = Settings::load_from(None, &[]).unwrap().executor;
    settings.work_dir = work.to_path_buf();
    settings.engine_socket = super::engine_socket();
    settings
}

/// An executor on the shared engine, with `tweak` applied to the default settings.
pub async fn executor(work: &Path, tweak: impl FnOnce(&mut ExecutorSettings)) -> Executor {
    super::docker().await;
    let mut settings = settings(work);
    tweak(&mut settings);
    Executor::new(&settings, None)
        .await
        .expect("Docker answers")
}

/// Runs the test app `tests/apps/<app>` once, in `work/<app>`.
pub async fn run(
    executor: &Executor,
    work: &Path,
    app: &str,
    args: Option<&str>,
    timeout_s: u64,
) -> AppResult {
    let image = super::app_image(executor.docker(), app).await;
    let task = AppRun {
        image,
        checksum: B256::ZERO,
        iexec_args: args.map(str::to_string),
        context: TaskContext::offline(vec![]),
        local_inputs: vec![],
        dataset: None,
        timeout: Duration::from_secs(timeout_s),
        has_callback: false,
        task_dir: work.join(app),
    };
    executor
        .execute(&task)
        .await
        .expect("the node can run apps")
}
