//! Deal tags: a 256-bit set of requirements (PROTOCOL.md §4). pew runs standard tasks only,
//! so the TEE bits matter most: a tag with any of them is work pew must refuse.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{B256, U256};

/// A tag, as stored in orders and deals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tag(pub B256);

/// Named tag bits, as the iExec SDK names them.
pub const TAG_BITS: [(&str, usize); 5] = [
    ("tee", 0),
    ("scone", 1),
    ("gramine", 2),
    ("tdx", 3),
    ("gpu", 8),
];

/// Bits 0–3: TEE and the TEE frameworks.
const TEE_MASK: u8 = 0x0f;

impl Tag {
    /// No requirement: a standard task.
    pub const STANDARD: Tag = Tag(B256::ZERO);

    /// Whether any TEE bit (0–3) is set: pew must not bid for, match or accept such work.
    pub fn requires_tee(&self) -> bool {
        self.0[31] & TEE_MASK != 0
    }

    /// Whether bit `bit` is set.
    pub fn has_bit(&self, bit: usize) -> bool {
        U256::from_be_bytes(self.0.0).bit(bit)
    }

    /// Whether every bit of `required` is also set here (the workerpool side of match check
    /// 0x06).
    pub fn covers(&self, required: Tag) -> bool {
        let mine = U256::from_be_bytes(self.0.0);
        let theirs = U256::from_be_bytes(required.0.0);
        mine & theirs == theirs
    }

    /// The union of two tags (how `matchOrders` combines app, dataset and request tags).
    pub fn union(self, other: Tag) -> Tag {
        let value = U256::from_be_bytes(self.0.0) | U256::from_be_bytes(other.0.0);
        Tag(B256::from(value.to_be_bytes::<32>()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = TAG_BITS
            .iter()
            .filter(|(_, bit)| self.has_bit(*bit))
            .map(|(name, _)| *name)
            .collect();
        write!(f, "Tag({} [{}])", self.0, names.join(","))
    }
}

/// A tag that is neither hex nor a list of known names.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a tag: give 0x-hex (up to 32 bytes) or names from tee, scone, gramine, tdx, gpu separated by commas"
)]
pub struct TagParseError(String);

impl FromStr for Tag {
    type Err = TagParseError;

    /// Parses `0x…` hex (left-padded to 32 bytes) or comma-separated names (`gpu`, `tee,tdx`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(hex) = text.strip_prefix("0x") {
            if hex.is_empty() || hex.len() > 64 {
                return Err(TagParseError(s.into()));
            }
            let value = U256::from_str_radix(hex, 16).map_err(|_| TagParseError(s.into()))?;
            return Ok(Tag(B256::from(value.to_be_bytes::<32>())));
        }
        if text.is_empty() {
            return Ok(Tag::STANDARD);
        }
        let mut value = U256::ZERO;
        for name in text.split(',').map(str::trim) {
            let bit = TAG_BITS
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .map(|(_, bit)| *bit)
                .ok_or_else(|| TagParseError(s.into()))?;
            value |= U256::from(1) << bit;
        }
        Ok(Tag(B256::from(value.to_be_bytes::<32>())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tee_bits_are_detected() {
        assert!(!Tag::STANDARD.requires_tee());
        assert!(
            "0x09".parse::<Tag>().unwrap().requires_tee(),
            "the SDK's TDX tag"
        );
        assert!("0x03".parse::<Tag>().unwrap().requires_tee(), "Scone");
        assert!("tee".parse::<Tag>().unwrap().requires_tee());
        assert!(!"gpu".parse::<Tag>().unwrap().requires_tee());
        assert!("tdx".parse::<Tag>().unwrap().requires_tee());
    }

    #[test]
    fn names_and_hex_agree() {
        assert_eq!(
            "gpu".parse::<Tag>().unwrap(),
            "0x100".parse::<Tag>().unwrap()
        );
        assert_eq!(
            "tee,tdx".parse::<Tag>().unwrap(),
            "0x9".parse::<Tag>().unwrap()
        );
        assert!("sgx".parse::<Tag>().is_err());
        assert!("0x".parse::<Tag>().is_err());
    }

    #[test]
    fn covers_and_union_follow_the_match_rules() {
        let gpu: Tag = "gpu".parse().unwrap();
        let pool: Tag = "gpu,tee".parse().unwrap();
        assert!(pool.covers(gpu));
        assert!(!gpu.covers(pool));
        assert_eq!(gpu.union("tee".parse().unwrap()), pool);
        assert!(Tag::STANDARD.covers(Tag::STANDARD));
    }
}
