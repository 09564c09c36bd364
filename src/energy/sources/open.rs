//! Opens the hardware source the `[energy]` settings name, and puts a Witty Pi's board
//! readings beside another source's when both are fitted.

use anyhow::{anyhow, bail};

use super::ina::{Ina, InaChip, InaSettings};
use super::mqtt::MqttSource;
use super::power_supply::PowerSupply;
use super::vedirect::VeDirect;
use super::wittypi::WittyPi;
use crate::config::{EnergySettings, EnergySourceKind};
use crate::energy::i2c::LinuxI2c;
use crate::energy::sample::{EnergySource, Sample, SourceError};

/// Opens the hardware source `kind` (an INA chip, the Witty Pi, VE.Direct, a power-supply
/// device) as configured.
pub fn open_hardware(
    kind: EnergySourceKind,
    settings: &EnergySettings,
) -> anyhow::Result<Box<dyn EnergySource>> {
    let name = kind.as_str();
    let i2c = |address: u16| {
        LinuxI2c::open(settings.i2c_bus, address).map_err(|e| {
            anyhow!(
                "I2C bus {} address 0x{address:02x} cannot be opened: {e}; is I2C enabled \
                 (raspi-config) and may this user use /dev/i2c-{}?",
                settings.i2c_bus,
                settings.i2c_bus
            )
        })
    };
    let main: Box<dyn EnergySource> = match kind {
        EnergySourceKind::Ina219 | EnergySourceKind::Ina226 | EnergySourceKind::Ina260 => {
            let chip = match kind {
                EnergySourceKind::Ina219 => InaChip::Ina219,
                EnergySourceKind::Ina226 => InaChip::Ina226,
                _ => InaChip::Ina260,
            };
            let role = settings.ina_role;
            let ina = Ina::new(
                i2c(settings.ina_address)?,
                InaSettings {
                    chip,
                    role,
                    shunt_ohms: settings.shunt_ohms,
                    max_current_a: settings.max_current_a,
                    invert_current: settings.ina_invert_current,
                },
            )?
            .with_name(format!("{name}@0x{:02x}", settings.ina_address));
            Box::new(ina)
        }
        EnergySourceKind::Wittypi => Box::new(WittyPi::new(i2c(settings.wittypi_address)?)),
        EnergySourceKind::Vedirect => {
            Box::new(VeDirect::open(&settings.serial_port.display().to_string())?)
        }
        EnergySourceKind::PowerSupply => Box::new(PowerSupply::with_root(
            settings.power_supply_root.clone(),
            (!settings.power_supply_name.is_empty()).then(|| settings.power_supply_name.clone()),
        )),
        EnergySourceKind::Mqtt => Box::new(MqttSource::connect(&settings.mqtt)?),
        EnergySourceKind::None => {
            bail!("energy.source is \"none\": no energy source is configured")
        }
        EnergySourceKind::Trace => bail!("energy.source \"trace\" is a recording, not hardware"),
    };
    if settings.wittypi && kind != EnergySourceKind::Wittypi {
        let board = WittyPi::new(i2c(settings.wittypi_address)?);
        return Ok(Box::new(WithBoard {
            main,
            board: Box::new(board),
        }));
    }
    Ok(main)
}

/// A source with a power board beside it: the main source's sample, plus the board's
/// readings (and the node's load from the board when the main source does not measure it).
pub struct WithBoard {
    /// The source measuring PV and battery.
    pub main: Box<dyn EnergySource>,
    /// The board (a Witty Pi).
    pub board: Box<dyn EnergySource>,
}

impl EnergySource for WithBoard {
    fn name(&self) -> String {
        format!("{}+{}", self.main.name(), self.board.name())
    }

    fn read(&mut self) -> Result<Sample, SourceError> {
        let mut sample = self.main.read()?;
        // A board that fails this once only loses its part of the sample.
        if let Ok(board) = self.board.read() {
            sample.load_w = sample.load_w.or(board.load_w);
            sample.board = board.board;
        }
        Ok(sample)
    }

    fn rejected(&self) -> u64 {
        self.main.rejected() + self.board.rejected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InaRole;
    use crate::energy::sources::fakes::{FakeIna, FakeWittyPi};

    #[test]
    fn a_board_beside_a_battery_monitor_adds_its_readings_and_the_load() {
        let fake = FakeIna::new(InaChip::Ina226, 0.01);
        fake.set_bus_voltage(13.2);
        fake.set_current(1.5);
        let ina = Ina::new(
            fake,
            InaSettings {
                chip: InaChip::Ina226,
                role: InaRole::Battery,
                shunt_ohms: 0.01,
                max_current_a: 10.0,
                invert_current: false,
            },
        )
        .unwrap();
        let board = FakeWittyPi::new();
        board.set_decimal(1, 13.21);
        board.set_decimal(3, 5.12);
        board.set_decimal(5, 0.61);
        let mut source = WithBoard {
            main: Box::new(ina),
            board: Box::new(WittyPi::new(board)),
        };
        let sample = source.read().unwrap();
        assert!((sample.battery_a.unwrap() - 1.5).abs() < 0.01, "{sample:?}");
        let load = sample.load_w.unwrap();
        assert!((load - 5.12 * 0.61).abs() < 1e-6, "{load}");
        assert_eq!(sample.board.unwrap().input_v, 13.21);
    }

    #[test]
    fn a_source_that_is_no_hardware_is_refused_naming_it() {
        let settings = crate::config::Settings::load_from(None, &[])
            .unwrap()
            .energy;
        for kind in [EnergySourceKind::None, EnergySourceKind::Trace] {
            let error = open_hardware(kind, &settings).err().unwrap().to_string();
            assert!(error.contains(kind.as_str()), "{error}");
        }
        // A chip on a bus this machine lacks: the error says which bus and what to check.
        let error = open_hardware(EnergySourceKind::Ina226, &settings)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("I2C bus"), "{error}");
    }
}
