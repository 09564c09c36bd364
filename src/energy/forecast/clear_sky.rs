//! The offline fallback forecast: where the sun is and what a clear sky gives the panel.
//! Formulas from ANCHORS §4.3: the simple declination and hour-angle sun position, Haurwitz
//! clear-sky GHI, an isotropic plane-of-array sum and PVWatts-style DC power with the default
//! system losses.

use super::Site;

/// Ground reflectance used for the plane-of-array sum.
const ALBEDO: f64 = 0.2;
/// Share of clear-sky GHI that is diffuse (a typical clear-sky value).
const CLEAR_DIFFUSE_FRACTION: f64 = 0.15;

/// The sun seen from a site at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SunPosition {
    /// Cosine of the zenith angle (≤ 0: below the horizon).
    pub cos_zenith: f64,
    /// Azimuth in degrees from south, positive towards west (Open-Meteo's convention).
    pub azimuth_deg: f64,
}

/// The sun's position at `unix_s` seen from `latitude`/`longitude` (degrees, east positive).
pub fn sun_position(unix_s: f64, latitude: f64, longitude: f64) -> SunPosition {
    let days = unix_s / 86_400.0;
    // Day of the year (1-based) and UTC hour, from the unix epoch without a calendar: a year of
    // 365.2425 days from 1970-01-01 is accurate enough for declination.
    let day_of_year = (days.rem_euclid(365.2425)).floor() + 1.0;
    let utc_hours = (unix_s.rem_euclid(86_400.0)) / 3600.0;
    let b = (360.0 / 365.0 * (day_of_year - 81.0)).to_radians();
    let equation_of_time_min = 9.87 * (2.0 * b).sin() - 7.53 * b.cos() - 1.5 * b.sin();
    // Wrapped to one day, so the hour angle's sign (east or west) is right at any longitude.
    let solar_hours = (utc_hours + longitude / 15.0 + equation_of_time_min / 60.0).rem_euclid(24.0);
    let hour_angle = (15.0 * (solar_hours - 12.0)).to_radians();
    let declination =
        (23.45 * (360.0 / 365.0 * (284.0 + day_of_year)).to_radians().sin()).to_radians();
    let phi = latitude.to_radians();
    let cos_zenith =
        phi.sin() * declination.sin() + phi.cos() * declination.cos() * hour_angle.cos();
    let elevation = cos_zenith.clamp(-1.0, 1.0).asin();
    let denominator = elevation.cos() * phi.cos();
    let azimuth_deg = if denominator.abs() < 1e-9 {
        0.0
    } else {
        let cos_az =
            ((elevation.sin() * phi.sin() - declination.sin()) / denominator).clamp(-1.0, 1.0);
        cos_az.acos().to_degrees() * hour_angle.signum()
    };
    SunPosition {
        cos_zenith,
        azimuth_deg,
    }
}

/// Clear-sky global horizontal irradiance (W/m²), Haurwitz.
pub fn clear_sky_ghi(cos_zenith: f64) -> f64 {
    if cos_zenith <= 0.01 {
        return 0.0;
    }
    1098.0 * cos_zenith * (-0.059 / cos_zenith).exp()
}

/// Irradiance on the panel's plane (W/m²) for a given GHI under the clear-sky split.
pub fn plane_of_array(site: &Site, sun: SunPosition, ghi: f64) -> f64 {
    if sun.cos_zenith <= 0.01 || ghi <= 0.0 {
        return 0.0;
    }
    let diffuse = ghi * CLEAR_DIFFUSE_FRACTION;
    let direct_normal = ((ghi - diffuse) / sun.cos_zenith).min(1100.0);
    let tilt = site.tilt_deg.to_radians();
    let sin_zenith = (1.0 - sun.cos_zenith * sun.cos_zenith).max(0.0).sqrt();
    let cos_incidence = tilt.cos() * sun.cos_zenith
        + tilt.sin() * sin_zenith * (sun.azimuth_deg - site.azimuth_deg).to_radians().cos();
    direct_normal * cos_incidence.max(0.0)
        + diffuse * (1.0 + tilt.cos()) / 2.0
        + ghi * ALBEDO * (1.0 - tilt.cos()) / 2.0
}

/// DC power of the site's array (W) for a plane-of-array irradiance.
pub fn pv_power_w(site: &Site, poa: f64) -> f64 {
    (site.kwp * poa * (1.0 - site.losses)).max(0.0)
}

/// What the array gives under a clear sky at `unix_s`.
pub fn clear_sky_pv_w(site: &Site, unix_s: f64) -> f64 {
    let sun = sun_position(unix_s, site.latitude, site.longitude);
    pv_power_w(
        site,
        plane_of_array(site, sun, clear_sky_ghi(sun.cos_zenith)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(latitude: f64) -> Site {
        Site {
            latitude,
            longitude: 0.0,
            tilt_deg: 30.0,
            azimuth_deg: 0.0,
            kwp: 0.1,
            losses: 0.14,
        }
    }

    // 2026-06-21 and 2026-12-21, 00:00 UTC.
    const JUNE_21: f64 = 1_782_000_000.0;
    const DEC_21: f64 = 1_797_811_200.0;

    #[test]
    fn the_sun_is_highest_near_solar_noon_and_below_the_horizon_at_midnight() {
        let noon = sun_position(JUNE_21 + 12.0 * 3600.0, 48.0, 0.0);
        // Zenith at noon on the June solstice at 48° N is about 48 − 23.45 = 24.6°.
        let zenith = noon.cos_zenith.acos().to_degrees();
        assert!((zenith - 24.6).abs() < 1.5, "{zenith}");
        assert!(
            noon.azimuth_deg.abs() < 10.0,
            "south at noon: {}",
            noon.azimuth_deg
        );
        assert!(sun_position(JUNE_21, 48.0, 0.0).cos_zenith < 0.0);
        let afternoon = sun_position(JUNE_21 + 16.0 * 3600.0, 48.0, 0.0);
        assert!(afternoon.azimuth_deg > 45.0, "west in the afternoon");
        // Longitude shifts solar noon: at 90° E it comes 6 h earlier in UTC.
        let east = sun_position(JUNE_21 + 6.0 * 3600.0, 48.0, 90.0);
        assert!((east.cos_zenith - noon.cos_zenith).abs() < 0.02);
        // Far west, late afternoon local time (00:30 UTC the next day at 122° W is about
        // 16:20 solar time): the sun is in the west whatever the day boundary in UTC.
        let west = sun_position(JUNE_21 + 86_400.0 + 1800.0, 37.8, -122.4);
        assert!(west.cos_zenith > 0.0 && west.azimuth_deg > 45.0, "{west:?}");
    }

    #[test]
    fn clear_sky_yield_matches_published_orders_of_magnitude() {
        // A 100 Wp panel at 48° N gives roughly 0.5-0.8 kWh on a clear June day and
        // 0.15-0.35 kWh in December (PVGIS-like figures for a 30° south-facing panel).
        let daily = |start: f64, s: &Site| -> f64 {
            (0..288)
                .map(|i| clear_sky_pv_w(s, start + i as f64 * 300.0) * 300.0 / 3600.0)
                .sum()
        };
        let summer = daily(JUNE_21, &site(48.0));
        let winter = daily(DEC_21, &site(48.0));
        assert!((500.0..800.0).contains(&summer), "summer {summer} Wh");
        assert!((150.0..350.0).contains(&winter), "winter {winter} Wh");
        let peak = (0..288)
            .map(|i| clear_sky_pv_w(&site(48.0), JUNE_21 + i as f64 * 300.0))
            .fold(0.0, f64::max);
        assert!((75.0..100.0).contains(&peak), "peak {peak} W for 100 Wp");
    }
}
