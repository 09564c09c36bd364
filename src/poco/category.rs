//! Work categories: how long a task may run, which sets its deadlines (PROTOCOL.md §5.1).

use std::str::FromStr;

/// The categories every PoCo deployment creates, in id order: (name, reference time in s).
pub const STANDARD_CATEGORIES: [(&str, u64); 5] = [
    ("XS", 300),
    ("S", 1200),
    ("M", 3600),
    ("L", 10800),
    ("XL", 36000),
];

/// `contributionDeadline = startTime + 7 · timeref`.
pub const CONTRIBUTION_DEADLINE_RATIO: u64 = 7;
/// `revealDeadline = consensus time + 2 · timeref`.
pub const REVEAL_DEADLINE_RATIO: u64 = 2;
/// `finalDeadline = startTime + 10 · timeref`.
pub const FINAL_DEADLINE_RATIO: u64 = 10;

/// A category id with its reference time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    /// On-chain id.
    pub id: u64,
    /// Reference time (`workClockTimeRef`) in seconds: also the app's maximum run time.
    pub time_ref_s: u64,
}

impl Category {
    /// A standard category by id.
    pub fn standard(id: u64) -> Option<Self> {
        let index = usize::try_from(id).ok()?;
        STANDARD_CATEGORIES.get(index).map(|(_, time)| Self {
            id,
            time_ref_s: *time,
        })
    }

    /// The standard name ("XS"…"XL"), if it is a standard category.
    pub fn name(&self) -> Option<&'static str> {
        STANDARD_CATEGORIES
            .get(self.id as usize)
            .map(|(name, _)| *name)
    }

    /// Seconds after the deal's start by which contributions must be in.
    pub fn contribution_window_s(&self) -> u64 {
        CONTRIBUTION_DEADLINE_RATIO * self.time_ref_s
    }

    /// Seconds after the deal's start by which the task must be final, or it can be claimed.
    pub fn final_window_s(&self) -> u64 {
        FINAL_DEADLINE_RATIO * self.time_ref_s
    }
}

/// A category argument that is neither a standard name nor an id 0–4.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a category: use XS, S, M, L, XL or 0-4")]
pub struct CategoryParseError(String);

impl FromStr for Category {
    type Err = CategoryParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let id = match text.parse::<u64>() {
            Ok(id) => id,
            Err(_) => STANDARD_CATEGORIES
                .iter()
                .position(|(name, _)| name.eq_ignore_ascii_case(text))
                .ok_or_else(|| CategoryParseError(s.into()))? as u64,
        };
        Category::standard(id).ok_or_else(|| CategoryParseError(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_parse_to_the_same_category() {
        assert_eq!("XL".parse::<Category>().unwrap(), "4".parse().unwrap());
        assert_eq!("xs".parse::<Category>().unwrap().time_ref_s, 300);
        assert!("XXL".parse::<Category>().is_err());
        assert!("5".parse::<Category>().is_err());
    }

    #[test]
    fn deadlines_follow_the_ratios() {
        let xs = Category::standard(0).unwrap();
        assert_eq!(xs.contribution_window_s(), 2100);
        assert_eq!(xs.final_window_s(), 3000);
        assert_eq!(xs.name(), Some("XS"));
    }
}
