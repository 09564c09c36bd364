//! Sleeping through the dark: when to wake up next (from the forecast), when to power off (the
//! night reserve reached with no sun for hours), and programming a Witty Pi 4 with it. The
//! board also gets a guaranteed daily wake, so a wrong forecast or a lost alarm never leaves
//! the node off for good (ANCHORS §2.3: never depend on one wake mechanism).

use serde::Serialize;

use super::forecast::Forecast;
use super::i2c::I2cDevice;
use super::sources::wittypi::{AlarmTime, WittyPi, WittyPiError};

/// What the node should do about power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerPlan {
    /// When the forecast (P50) next gives enough PV to work: the startup alarm.
    pub wake_at_s: Option<f64>,
    /// Why the node should power off now, if it should.
    pub power_off: Option<String>,
}

/// Plans from the forecast and the battery. The node powers off only when the battery is at
/// its reserve, the panel does not even carry the idle draw now, and no useful sun is
/// expected for two hours; it wakes when the median forecast first covers full load.
pub fn plan(
    forecast: Option<&Forecast>,
    battery_wh: f64,
    floor_wh: f64,
    idle_w: f64,
    busy_w: f64,
    now_s: f64,
) -> PowerPlan {
    let Some(forecast) = forecast else {
        return PowerPlan {
            wake_at_s: None,
            power_off: None,
        };
    };
    let wake_at_s = forecast
        .points
        .iter()
        .filter(|p| p.time_s > now_s + 600.0)
        .find(|p| p.p50_w >= busy_w)
        .map(|p| p.time_s);
    let sun_now = forecast.power_w(0.5, now_s);
    let dark_for_long = wake_at_s.is_none_or(|t| t > now_s + 2.0 * 3600.0);
    let power_off = (battery_wh <= floor_wh && sun_now < idle_w && dark_for_long).then(|| {
        format!(
            "night reserve reached ({battery_wh:.1} Wh <= {floor_wh:.1} Wh) and no sun for work \
             before {}",
            wake_at_s
                .map(|t| format!("unix {t:.0}"))
                .unwrap_or_else(|| "the end of the forecast".into())
        )
    });
    PowerPlan {
        wake_at_s,
        power_off,
    }
}

/// Programs the board: the startup alarm at the planned wake (cleared when there is none) and
/// the guaranteed wake after `fallback_hours`.
pub fn program<D: I2cDevice>(
    board: &mut WittyPi<D>,
    plan: &PowerPlan,
    fallback_hours: u32,
) -> Result<(), WittyPiError> {
    board.set_guaranteed_wake_hours(fallback_hours)?;
    match plan
        .wake_at_s
        .and_then(|t| AlarmTime::from_unix_utc(t as i64))
    {
        Some(alarm) => board.set_startup_alarm(alarm),
        None => board.clear_alarms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::forecast::ForecastPoint;
    use crate::energy::sources::fakes::FakeWittyPi;

    /// Night until 05:00, then 10 W, 25 W from 07:00 (unix 0 = midnight).
    fn forecast(now: f64) -> Forecast {
        let points = (0..96)
            .map(|i| {
                let t = now + i as f64 * 900.0;
                let hour = (t % 86_400.0) / 3600.0;
                let w = if hour < 5.0 {
                    0.0
                } else if hour < 7.0 {
                    10.0
                } else {
                    25.0
                };
                ForecastPoint {
                    time_s: t,
                    p10_w: w * 0.5,
                    p50_w: w,
                    p90_w: w * 1.2,
                }
            })
            .collect();
        Forecast {
            made_at_s: now,
            step_s: 900.0,
            source: "test".into(),
            points,
        }
    }

    const MIDNIGHT: f64 = 1_782_000_000.0;

    #[test]
    fn at_the_reserve_in_the_dark_the_node_powers_off_until_the_sun_carries_work() {
        let now = MIDNIGHT + 3600.0;
        let plan = plan(Some(&forecast(now)), 29.0, 30.0, 2.7, 20.0, now);
        assert_eq!(plan.wake_at_s, Some(MIDNIGHT + 7.0 * 3600.0));
        assert!(plan.power_off.unwrap().contains("night reserve"));
        // Above the reserve, or with sun coming within two hours, it stays on.
        assert!(
            super::plan(Some(&forecast(now)), 45.0, 30.0, 2.7, 20.0, now)
                .power_off
                .is_none()
        );
        let dawn = MIDNIGHT + 5.5 * 3600.0;
        assert!(
            super::plan(Some(&forecast(dawn)), 29.0, 30.0, 2.7, 20.0, dawn)
                .power_off
                .is_none()
        );
    }

    #[test]
    fn the_board_gets_the_wake_alarm_in_bcd_and_the_daily_fallback() {
        let fake = FakeWittyPi::new();
        let mut board = WittyPi::new(fake.clone());
        let now = MIDNIGHT + 3600.0;
        let plan = plan(Some(&forecast(now)), 29.0, 30.0, 2.7, 20.0, now);
        program(&mut board, &plan, 24).unwrap();
        // 2026-06-21 07:00:00 UTC: registers 27-31 = second, minute, hour, day, weekday (BCD).
        assert_eq!(fake.register(27), 0x00);
        assert_eq!(fake.register(28), 0x00);
        assert_eq!(fake.register(29), 0x07);
        assert_eq!(fake.register(30), 0x21);
        assert_eq!(fake.register(49), 24, "guaranteed wake after 24 h");
        // No wake in sight: the alarm is cleared, the fallback stays.
        let none = PowerPlan {
            wake_at_s: None,
            power_off: None,
        };
        program(&mut board, &none, 24).unwrap();
        assert_eq!(fake.register(29), 0x00);
        assert_eq!(fake.register(49), 24);
    }
}
