//! The environment an iExec app sees (PROTOCOL.md §8): ids, folders, the dataset and input
//! file names. Apps written for the official worker find the same variables under pew.

use alloy::primitives::{Address, U256};
use sha2::{Digest, Sha256};

use crate::poco::{DealId, TaskId};

/// Where inputs are mounted inside the container.
pub const CONTAINER_IN: &str = "/iexec_in";
/// Where the app writes its output inside the container.
pub const CONTAINER_OUT: &str = crate::results::digest::CONTAINER_OUT;

/// What the environment describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContext {
    /// The deal.
    pub deal: DealId,
    /// The task.
    pub task: TaskId,
    /// The task's index.
    pub index: U256,
    /// The deal's first task index.
    pub bot_first: U256,
    /// The deal's task count.
    pub bot_size: U256,
    /// The dataset, or zero.
    pub dataset: Address,
    /// The input file URLs, in order.
    pub input_files: Vec<String>,
    /// Names of local input files placed after the URLs (`pew app test` only).
    pub local_input_names: Vec<String>,
}

impl TaskContext {
    /// A context for running an app without any chain (`pew app test`): zero ids, one task.
    pub fn offline(input_files: Vec<String>) -> Self {
        Self {
            deal: DealId(Default::default()),
            task: TaskId(Default::default()),
            index: U256::ZERO,
            bot_first: U256::ZERO,
            bot_size: U256::from(1),
            dataset: Address::ZERO,
            input_files,
            local_input_names: Vec::new(),
        }
    }
}

/// The name an input file gets in `/iexec_in`: `0x` + hex SHA-256 of its URL.
pub fn input_file_name(url: &str) -> String {
    alloy::hex::encode_prefixed(Sha256::digest(url.as_bytes()))
}

/// The dataset's file name in `/iexec_in`: its address.
pub fn dataset_file_name(dataset: Address) -> String {
    dataset.to_string()
}

/// The `IEXEC_*` variables, as `NAME=value` strings.
pub fn iexec_env(context: &TaskContext) -> Vec<String> {
    let dataset = dataset_file_name(context.dataset);
    let mut env = vec![
        format!("IEXEC_DEAL_ID={}", context.deal),
        format!("IEXEC_TASK_ID={}", context.task),
        format!("IEXEC_TASK_INDEX={}", context.index),
        format!("IEXEC_IN={CONTAINER_IN}"),
        format!("IEXEC_OUT={CONTAINER_OUT}"),
        format!("IEXEC_BOT_SIZE={}", context.bot_size),
        format!("IEXEC_BOT_FIRST_INDEX={}", context.bot_first),
        format!("IEXEC_BOT_TASK_INDEX={}", context.index),
        format!("IEXEC_DATASET_ADDRESS={dataset}"),
        format!("IEXEC_DATASET_FILENAME={dataset}"),
    ];
    let names: Vec<String> = context
        .input_files
        .iter()
        .map(|url| input_file_name(url))
        .chain(context.local_input_names.iter().cloned())
        .collect();
    env.push(format!("IEXEC_INPUT_FILES_NUMBER={}", names.len()));
    if !names.is_empty() {
        env.push(format!("IEXEC_INPUT_FILES_FOLDER={CONTAINER_IN}"));
        for (i, name) in names.iter().enumerate() {
            env.push(format!("IEXEC_INPUT_FILE_NAME_{}={name}", i + 1));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_has_every_documented_variable() {
        let mut context =
            TaskContext::offline(vec!["https://a.example/x.csv".into(), "ipfs://QmY".into()]);
        context.index = U256::from(2);
        context.bot_first = U256::from(1);
        context.bot_size = U256::from(3);
        let env = iexec_env(&context);
        let get = |name: &str| {
            env.iter()
                .find_map(|e| e.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} missing"))
                .to_string()
        };
        assert_eq!(get("IEXEC_IN"), "/iexec_in");
        assert_eq!(get("IEXEC_OUT"), "/iexec_out");
        assert_eq!(get("IEXEC_TASK_INDEX"), "2");
        assert_eq!(get("IEXEC_BOT_TASK_INDEX"), "2");
        assert_eq!(get("IEXEC_BOT_FIRST_INDEX"), "1");
        assert_eq!(get("IEXEC_BOT_SIZE"), "3");
        assert_eq!(get("IEXEC_DATASET_ADDRESS"), Address::ZERO.to_string());
        assert_eq!(get("IEXEC_INPUT_FILES_NUMBER"), "2");
        assert_eq!(get("IEXEC_INPUT_FILES_FOLDER"), "/iexec_in");
        assert_eq!(
            get("IEXEC_INPUT_FILE_NAME_1"),
            input_file_name("https://a.example/x.csv")
        );
        assert!(get("IEXEC_INPUT_FILE_NAME_2").starts_with("0x"));
        assert_eq!(get("IEXEC_INPUT_FILE_NAME_2").len(), 66);
        assert!(!env.iter().any(|e| e.starts_with("IEXEC_NB_INPUT_FILES")));
    }

    #[test]
    fn without_inputs_there_is_no_folder_variable() {
        let env = iexec_env(&TaskContext::offline(vec![]));
        assert!(env.contains(&"IEXEC_INPUT_FILES_NUMBER=0".to_string()));
        assert!(
            !env.iter()
                .any(|e| e.starts_with("IEXEC_INPUT_FILES_FOLDER"))
        );
    }
}
