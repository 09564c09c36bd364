//! A reply from Open-Meteo (or from whoever answers at its URL): parsed into a forecast,
//! checked, and read at a few times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::energy::forecast::open_meteo::WeatherForecast;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(forecast) = WeatherForecast::parse(body, 1_764_547_200.0) {
        let _ = forecast.is_sound();
        for time in [0.0, 1_764_547_200.0, 1_764_590_400.0, f64::MAX, f64::NAN] {
            let _ = forecast.gti_at(time);
        }
    }
});
