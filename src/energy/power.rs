//! Sleeping while there is no work to take: when to power off (the gate takes no work and the
//! panel carries none), when to wake up next (from the forecast), the charge the panel gave
//! meanwhile, and programming a Witty Pi 4 with it. The
//! board also gets a guaranteed daily wake, so a wrong forecast or a lost alarm never leaves
//! the node off for good (ANCHORS §2.3: never depend on one wake mechanism).

use serde::Serialize;

use super::forecast::Forecast;
use super::i2c::I2cDevice;
use super::sources::wittypi::{AlarmTime, WittyPi, WittyPiError};

/// What a powered-off Pi and its board still draw (W): a Witty Pi 4 in standby takes about a
/// milliamp at 5 V; with a converter's own losses, a tenth of a watt is a generous figure.
pub const STANDBY_W: f64 = 0.1;
/// The longest time off whose charge is estimated: past it, the estimate waits for a reading.
pub const MAX_ESTIMATED_OFF_S: f64 = 3.0 * 86_400.0;

/// The battery's charge after the node was off from `from_s` to `to_s`, starting from
/// `energy_wh`: the panel's power at the forecast's `quantile` (made before it went off)
/// charged in, the standby drawn out. No reading was taken while off, so the forecast's
/// cautious quantile stands in for the panel; the next anchor of the estimate corrects it.
pub fn charge_while_off(
    forecast: &Forecast,
    quantile: f64,
    model: &super::budget::BatteryModel,
    energy_wh: f64,
    from_s: f64,
    to_s: f64,
) -> f64 {
    let to_s = to_s.min(from_s + MAX_ESTIMATED_OFF_S);
    let mut energy = energy_wh;
    let mut t = from_s;
    while t < to_s {
        let step = forecast.step_s.max(1.0).min(to_s - t);
        let pv = forecast.power_w(quantile, t + step / 2.0);
        energy = model.step(energy, pv - STANDBY_W, step).energy_wh;
        t += step;
    }
    energy
}

/// What the node should do about power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerPlan {
    /// When to look at the sky again: the startup alarm (see [`plan`]).
    pub wake_at_s: Option<f64>,
    /// Why the node should power off now, if it should.
    pub power_off: Option<String>,
}

/// The shortest sleep worth a power cycle, and how often a sleeping node looks at the sky
/// again while the forecast still gives sun for work a chance: a boot and five minutes of
/// looking cost about a third of a watt-hour, half an hour awake in the dark over a watt-hour.
pub const NAP_S: f64 = 1800.0;

/// Plans from the forecast, the gate's answer now and the panel's power measured now. The
/// node powers off when the gate would take no work (`admits_work` false: the battery plan has
/// no room and the panel alone carries nothing) and the panel does not carry work now
/// (`busy_w`, measured; the median forecast when unmeasured): awake, it would only turn charge
/// into idle draw, and in scarce sun the idle draw is most of what the panel gives. It wakes
/// when the
/// forecast's P90 first gives sun for work (a chance of it is worth a look), but not before
/// a nap of [`NAP_S`]; with no chance in the whole forecast, at the brightest hour of the
/// coming day (and the board's guaranteed wake stays as the last resort). The caller keeps it
/// on while it has work.
pub fn plan(
    forecast: Option<&Forecast>,
    admits_work: bool,
    busy_w: f64,
    pv_now_w: Option<f64>,
    now_s: f64,
) -> PowerPlan {
    let Some(forecast) = forecast else {
        return PowerPlan {
            wake_at_s: None,
            power_off: None,
        };
    };
    let chance_at = forecast
        .points
        .iter()
        .filter(|p| p.time_s > now_s + 600.0)
        .find(|p| p.p90_w >= busy_w)
        .map(|p| p.time_s);
    // No chance in the whole forecast (a long grey spell teaches it a low P90): still look at
    // the sky at the brightest hour of the coming day, as the weather can be better than its
    // recent past.
    let brightest = || {
        forecast
            .points
            .iter()
            .filter(|p| p.time_s >= now_s + NAP_S && p.time_s < now_s + 86_400.0)
            .filter(|p| p.p90_w > 0.0)
            .reduce(|best, p| if p.p90_w > best.p90_w { p } else { best })
            .map(|p| p.time_s)
    };
    let wake_at_s = chance_at.map(|t| t.max(now_s + NAP_S)).or_else(brightest);
    let sun_now = pv_now_w
        .filter(|w| w.is_finite())
        .unwrap_or_else(|| forecast.power_w(0.5, now_s));
    let power_off = (!admits_work && sun_now < busy_w).then(|| {
        format!(
            "the gate takes no work now and the panel's {sun_now:.1} W carry none; awake again {}",
            wake_at_s
                .map(|t| format!("at unix {t:.0} to look at the sky"))
                .unwrap_or_else(|| {
                    "at the board's guaranteed wake (no daylight in the forecast)".into()
                })
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
    fn with_no_work_to_take_in_the_dark_the_node_powers_off_until_the_sun_may_carry_work() {
        let now = MIDNIGHT + 3600.0;
        let night = plan(Some(&forecast(now)), false, 20.0, Some(0.0), now);
        // P90 first reaches the 20 W of full load at 07:00 (P90 12 W from 05:00 is not enough).
        assert_eq!(night.wake_at_s, Some(MIDNIGHT + 7.0 * 3600.0));
        assert!(night.power_off.unwrap().contains("takes no work"));
        // When the gate would take work (charge above the reserve the plan may spend) it stays
        // on.
        assert!(
            plan(Some(&forecast(now)), true, 20.0, Some(0.0), now)
                .power_off
                .is_none()
        );
        // At 08:00 the forecast says 25 W. Measured, the panel carries work: on. Measured grey
        // (5 W): off for a nap, as the forecast still gives sun a chance. Not measured: the
        // median forecast says.
        let morning = MIDNIGHT + 8.0 * 3600.0;
        let at = |pv: Option<f64>| plan(Some(&forecast(morning)), false, 20.0, pv, morning);
        assert!(at(Some(25.0)).power_off.is_none());
        let grey = at(Some(5.0));
        assert!(grey.power_off.is_some());
        assert_eq!(grey.wake_at_s, Some(morning + NAP_S));
        assert!(at(None).power_off.is_none());
        // A forecast that never gives sun for work (40 W here): it still looks at the sky at
        // the brightest hour of the coming day, the first one of equals.
        let dim = plan(Some(&forecast(now)), false, 40.0, Some(0.0), now);
        assert!(dim.power_off.is_some());
        assert_eq!(dim.wake_at_s, Some(MIDNIGHT + 7.0 * 3600.0));
        // No forecast at all: no plan.
        assert_eq!(
            plan(None, false, 20.0, Some(0.0), now),
            PowerPlan {
                wake_at_s: None,
                power_off: None
            }
        );
    }

    #[test]
    fn the_board_gets_the_wake_alarm_in_bcd_and_the_daily_fallback() {
        let fake = FakeWittyPi::new();
        let mut board = WittyPi::new(fake.clone());
        let now = MIDNIGHT + 3600.0;
        let plan = plan(Some(&forecast(now)), false, 20.0, Some(0.0), now);
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
