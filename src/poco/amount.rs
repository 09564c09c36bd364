//! RLC amounts. On chain everything is nRLC (10^-9 RLC); people type RLC with decimals. The
//! type carries the unit so the two can never be mixed up.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::U256;

/// nRLC per RLC.
pub const NRLC_PER_RLC: u64 = 1_000_000_000;

/// An amount in nRLC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nrlc(pub U256);

impl Nrlc {
    /// Zero.
    pub const ZERO: Nrlc = Nrlc(U256::ZERO);

    /// From a whole number of nRLC.
    pub fn from_nrlc(value: u64) -> Self {
        Nrlc(U256::from(value))
    }
}

impl fmt::Display for Nrlc {
    /// Formats as RLC with up to 9 decimals, trailing zeros trimmed: `1.5 RLC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = U256::from(NRLC_PER_RLC);
        let whole = self.0 / per;
        let fraction = (self.0 % per).to::<u64>();
        if fraction == 0 {
            write!(f, "{whole} RLC")
        } else {
            let digits = format!("{fraction:09}");
            write!(f, "{whole}.{} RLC", digits.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Nrlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}nRLC", self.0)
    }
}

/// An amount that cannot be understood.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not an amount: {reason} (examples: 1.5, 0.000000001, 1500000000nRLC)")]
pub struct AmountParseError {
    input: String,
    reason: &'static str,
}

impl FromStr for Nrlc {
    type Err = AmountParseError;

    /// Parses RLC with up to 9 decimals (`1.5`, `2 RLC`) or whole nRLC with the suffix
    /// (`1500000000nRLC`). Negative, empty and over-precise amounts are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason| AmountParseError {
            input: s.to_string(),
            reason,
        };
        let text = s.trim();
        if text.starts_with('-') {
            return Err(error("an amount cannot be negative"));
        }
        let lower = text.to_ascii_lowercase();
        if let Some(number) = lower.strip_suffix("nrlc") {
            let number = number.trim();
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error("nRLC must be a whole number"));
            }
            return U256::from_str_radix(number, 10)
                .map(Nrlc)
                .map_err(|_| error("too large"));
        }
        let number = lower.strip_suffix("rlc").unwrap_or(&lower).trim();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(error("expected digits with an optional decimal point"));
        }
        if fraction.len() > 9 {
            return Err(error("RLC has at most 9 decimals"));
        }
        let whole = if whole.is_empty() {
            U256::ZERO
        } else {
            U256::from_str_radix(whole, 10).map_err(|_| error("too large"))?
        };
        let fraction = format!("{fraction:0<9}");
        let fraction = U256::from_str_radix(&fraction, 10).map_err(|_| error("too large"))?;
        whole
            .checked_mul(U256::from(NRLC_PER_RLC))
            .and_then(|w| w.checked_add(fraction))
            .map(Nrlc)
            .ok_or_else(|| error("too large"))
    }
}

/// Serializes a `U256` as a decimal string (serde's default for it is 0x-hex), for JSON that
/// people and scripts read: `#[serde(serialize_with = "decimal")]`.
pub fn decimal<S: serde::Serializer>(value: &U256, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_string())
}

/// Like [`decimal`], for a tuple of (address, address, amount) as in deal views.
pub fn decimal_resource<S: serde::Serializer>(
    value: &(alloy::primitives::Address, alloy::primitives::Address, U256),
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut s = serializer.serialize_struct("Resource", 3)?;
    s.serialize_field("address", &value.0)?;
    s.serialize_field("owner", &value.1)?;
    s.serialize_field("price_nrlc", &value.2.to_string())?;
    s.end()
}

/// Like [`decimal`], for an optional value (null when absent).
pub fn decimal_option<S: serde::Serializer>(
    value: &Option<U256>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serializer.serialize_str(&v.to_string()),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlc_and_nrlc_parse_to_the_same_amount() {
        let a: Nrlc = "1.5".parse().unwrap();
        assert_eq!(a, Nrlc::from_nrlc(1_500_000_000));
        assert_eq!("1500000000nRLC".parse::<Nrlc>().unwrap(), a);
        assert_eq!("1.5 RLC".parse::<Nrlc>().unwrap(), a);
        assert_eq!("0.000000001".parse::<Nrlc>().unwrap(), Nrlc::from_nrlc(1));
        assert_eq!(".5".parse::<Nrlc>().unwrap(), Nrlc::from_nrlc(500_000_000));
        assert_eq!("3".parse::<Nrlc>().unwrap(), Nrlc::from_nrlc(3_000_000_000));
    }

    #[test]
    fn malformed_and_negative_amounts_are_refused() {
        for bad in [
            "-1",
            "",
            "1.0000000001",
            "1,5",
            "abc",
            "1.5nRLC",
            "nRLC",
            "1e9",
        ] {
            assert!(bad.parse::<Nrlc>().is_err(), "{bad:?} must be refused");
        }
        let err = "-2".parse::<Nrlc>().unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
    }

    #[test]
    fn display_is_rlc_with_trimmed_decimals() {
        assert_eq!(Nrlc::from_nrlc(1_500_000_000).to_string(), "1.5 RLC");
        assert_eq!(Nrlc::from_nrlc(2_000_000_000).to_string(), "2 RLC");
        assert_eq!(Nrlc::from_nrlc(1).to_string(), "0.000000001 RLC");
    }
}
