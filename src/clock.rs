//! The wall clock, read in one place. Chain timestamps, energy samples, journal records and
//! image-cache ages all count Unix seconds; a clock set before 1970 (a Pi without its RTC at
//! first boot) reads as 0 rather than failing.

/// Unix time now, fractional seconds (energy samples and forecasts).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Unix time now, whole seconds (journal records, deadlines, caches).
pub fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_readings_agree_and_are_after_2020() {
        let (whole, fractional) = (unix_now_s(), unix_now());
        assert!(whole > 1_577_836_800, "{whole}");
        assert!(
            (fractional - whole as f64).abs() < 2.0,
            "{fractional} vs {whole}"
        );
    }
}
