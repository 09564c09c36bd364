//! Typed identifiers. A deal id, a task id and an order hash are all 32 bytes; giving each its
//! own type means one can never be passed where another is expected.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub B256);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let hex = s.strip_prefix("0x").unwrap_or(s);
                if hex.len() != 64 {
                    return Err(IdParseError { kind: stringify!($name), input: s.to_string() });
                }
                B256::from_str(hex)
                    .map($name)
                    .map_err(|_| IdParseError { kind: stringify!($name), input: s.to_string() })
            }
        }

        impl From<B256> for $name {
            fn from(value: B256) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// A deal: `keccak256(requestOrderHash ‖ uint256 consumedBefore)`.
    DealId
);
id_type!(
    /// A task: `keccak256(dealId ‖ uint256 index)`.
    TaskId
);
id_type!(
    /// An order's full EIP-712 digest, the key of `viewPresigned`/`viewConsumed`.
    OrderHash
);

/// A string that is not a 32-byte 0x-hex id.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a {kind}: expected 0x followed by 64 hex digits")]
pub struct IdParseError {
    kind: &'static str,
    input: String,
}

/// The deal created when a request order with `consumed_before` tasks already matched is
/// matched again (PROTOCOL.md §4).
pub fn deal_id(request_hash: OrderHash, consumed_before: U256) -> DealId {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(request_hash.0.as_slice());
    preimage[32..].copy_from_slice(&consumed_before.to_be_bytes::<32>());
    DealId(keccak256(preimage))
}

/// The task at global index `index` of a deal.
pub fn task_id(deal: DealId, index: U256) -> TaskId {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(deal.0.as_slice());
    preimage[32..].copy_from_slice(&index.to_be_bytes::<32>());
    TaskId(keccak256(preimage))
}

/// Left-pads an address into a 32-byte log topic (for filtering indexed address arguments).
pub fn address_topic(address: Address) -> B256 {
    address.into_word()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::b256;

    #[test]
    fn task_id_matches_the_published_vector() {
        // PROTOCOL.md §15.5 (commons-poco ChainUtilsTests).
        let deal = DealId(b256!(
            "a0b0fd396b0f79f14e4d6b34af7180bd9e80e2d86afda91c6127c5c17a268e66"
        ));
        assert_eq!(
            task_id(deal, U256::ZERO).0,
            b256!("e06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28")
        );
    }

    #[test]
    fn deal_and_task_ids_of_the_published_request_order() {
        // PROTOCOL.md §15.3: order hash → deal (botFirst 0) → task 0.
        let order = OrderHash(b256!(
            "03f960f8c4153017ca091fe3eb5169a51af3b7b2eae9b85a72e1af9ed2493b45"
        ));
        let deal = deal_id(order, U256::ZERO);
        assert_eq!(
            deal.0,
            b256!("5b65bf881bf775a4c8ae44291e0f404f7ce2dc1a5021533a1635e3a5fe94a84b")
        );
        assert_eq!(
            task_id(deal, U256::ZERO).0,
            b256!("cd8e08dcfdc7c7ef80b668002098f200b0dd727da6d09a962447b59cce77747d")
        );
    }

    #[test]
    fn ids_parse_with_or_without_0x_and_refuse_other_lengths() {
        let text = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28";
        let id: TaskId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(text[2..].parse::<TaskId>().unwrap(), id);
        let err = "0x1234".parse::<DealId>().unwrap_err().to_string();
        assert!(
            err.contains("DealId") && err.contains("64 hex digits"),
            "{err}"
        );
        assert!(
            "0xzz6c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28"
                .parse::<TaskId>()
                .is_err()
        );
    }
}
