//! Turns revert data into a sentence a person can act on.
//!
//! PoCo reverts in three ways: a `require` with a message ("iExecV5-matchOrders-0x21"), a
//! custom error, or (for every Poco2 precondition) no data at all. The last one says nothing
//! by itself, so the message points at what to check.

use alloy::sol_types::{SolError, SolInterface};

use crate::abi::IexecInterfaceToken;

/// Explains what known `iExecV5-matchOrders-0xNN` codes mean (PROTOCOL.md §4).
fn explain_match_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "0x00" => "categories of the workerpool and request orders differ",
        "0x01" => "the category does not exist",
        "0x02" => "the request asks for more trust than the workerpool order offers",
        "0x03" => "the app price is above the request's app max price",
        "0x04" => "the dataset price is above the request's dataset max price",
        "0x05" => "the workerpool price is above the request's workerpool max price",
        "0x06" => "the workerpool order's tag does not cover the requested tag",
        "0x07" => "the TEE bit of the deal tag differs from the app's",
        "0x10" => "the request is for another app",
        "0x11" => "the request is for another dataset",
        "0x20" | "0x30" | "0x40" => "an asset is not registered",
        "0x21" => "the app order is not signed or presigned by the app owner",
        "0x31" => "the dataset order is not signed or presigned by the dataset owner",
        "0x41" => "the workerpool order is not signed or presigned by the workerpool owner",
        "0x50" => "the request order is not signed or presigned by the requester",
        "0x60" => "nothing left to match: an order's volume is used up or closed",
        c if ("0x12".."0x1c").contains(&c) => "an order's restriction excludes a party of the deal",
        _ => return None,
    })
}

/// A readable reason for revert data (`None` data means the node gave none).
pub fn describe_revert(data: Option<&[u8]>) -> String {
    let Some(data) = data.filter(|d| !d.is_empty()) else {
        return "reverted without a reason (PoCo's task functions check status, deadlines, \
                stake and signatures silently: check them with `pew task show`)"
            .to_string();
    };
    if let Some(reason) = alloy::sol_types::decode_revert_reason(data) {
        let reason = reason.trim_start_matches("revert: ").to_string();
        if let Some(code) = reason.strip_prefix("iExecV5-matchOrders-")
            && let Some(meaning) = explain_match_code(code)
        {
            return format!("reverted: {reason} ({meaning})");
        }
        return format!("reverted: {reason}");
    }
    if let Ok(error) = IexecInterfaceToken::IexecInterfaceTokenErrors::abi_decode(data) {
        return match error {
            IexecInterfaceToken::IexecInterfaceTokenErrors::IncompatibleDatasetOrder(e) => {
                format!(
                    "reverted: {}({})",
                    IexecInterfaceToken::IncompatibleDatasetOrder::SIGNATURE,
                    e.reason
                )
            }
        };
    }
    let selector = alloy::hex::encode(&data[..data.len().min(4)]);
    format!("reverted with custom error 0x{selector}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::{Revert, SolError};

    #[test]
    fn a_require_message_is_shown_with_its_meaning() {
        let data = Revert::from("iExecV5-matchOrders-0x21").abi_encode();
        let text = describe_revert(Some(&data));
        assert!(text.contains("iExecV5-matchOrders-0x21"), "{text}");
        assert!(text.contains("app owner"), "{text}");
    }

    #[test]
    fn empty_revert_data_points_at_the_silent_checks() {
        assert!(describe_revert(Some(&[])).contains("without a reason"));
        assert!(describe_revert(None).contains("pew task show"));
    }

    #[test]
    fn custom_errors_are_named() {
        let error = IexecInterfaceToken::IncompatibleDatasetOrder {
            reason: "tag".into(),
        };
        let text = describe_revert(Some(&error.abi_encode()));
        assert!(
            text.contains("IncompatibleDatasetOrder") && text.contains("tag"),
            "{text}"
        );
        let unknown = describe_revert(Some(&[0xde, 0xad, 0xbe, 0xef, 1, 2]));
        assert!(unknown.contains("0xdeadbeef"), "{unknown}");
    }
}
