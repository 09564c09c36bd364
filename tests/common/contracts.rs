//! The project's own Solidity (`contracts/`): compiled by the pinned solcjs that
//! `scripts/setup` installs, and deployed on a test devnet.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;

use super::TestDevnet;

/// The creation bytecode of contract `name`, from `contracts/<name>.sol`.
pub fn compile(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contracts")
        .join(format!("{name}.sol"));
    let source = std::fs::read_to_string(&path).expect("the contract source exists");
    let file = format!("{name}.sol");
    let input = serde_json::json!({
        "language": "Solidity",
        "sources": { &file: { "content": source } },
        "settings": {
            "optimizer": { "enabled": true, "runs": 200 },
            "outputSelection": { "*": { "*": ["evm.bytecode.object"] } }
        }
    });
    let solc = super::tools()
        .root()
        .join("chain/node_modules/solc/solc.js");
    let mut child = Command::new("node")
        .arg(&solc)
        .arg("--standard-json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs solcjs (scripts/setup installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // solcjs may print `>>>` notes before the JSON.
    let json_start = stdout.find('{').expect("solcjs printed JSON");
    let result: serde_json::Value = serde_json::from_str(&stdout[json_start..]).unwrap();
    let errors: Vec<&serde_json::Value> = result["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{name} does not compile: {errors:?}");
    let hex = result["contracts"][&file][name]["evm"]["bytecode"]["object"]
        .as_str()
        .expect("bytecode in the compiler output");
    alloy::hex::decode(hex).unwrap()
}

/// Deploys contract `name` from dev account `from` with ABI-encoded `constructor_args`.
pub async fn deploy(t: &TestDevnet, from: usize, name: &str, constructor_args: &[u8]) -> Address {
    let mut code = compile(name);
    code.extend_from_slice(constructor_args);
    let request = TransactionRequest::default().with_deploy_code(Bytes::from(code));
    let receipt = t
        .wallet(from)
        .send_transaction(request)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status(), "{name} deployed");
    receipt.contract_address.expect("a contract address")
}
