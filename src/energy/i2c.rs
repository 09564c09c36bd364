//! The I2C access energy drivers need, as a small trait: the real bus (rppal, on the Pi) and
//! the register-level fakes in tests both implement it, so the drivers' own code is what runs
//! under test.

/// Register reads and writes on one I2C device.
pub trait I2cDevice: Send {
    /// Reads a 16-bit big-endian register (the INA2xx layout).
    fn read_u16(&mut self, register: u8) -> std::io::Result<u16>;
    /// Writes a 16-bit big-endian register.
    fn write_u16(&mut self, register: u8, value: u16) -> std::io::Result<()>;
    /// Reads one byte register with a single-byte SMBus transfer (the Witty Pi only answers
    /// those).
    fn read_u8(&mut self, register: u8) -> std::io::Result<u8>;
    /// Writes one byte register.
    fn write_u8(&mut self, register: u8, value: u8) -> std::io::Result<()>;
}

/// A device on a Linux I2C bus (`/dev/i2c-N`), through rppal.
pub struct LinuxI2c {
    bus: rppal::i2c::I2c,
}

impl LinuxI2c {
    /// Opens bus `bus` and addresses `address` (7-bit).
    pub fn open(bus: u8, address: u16) -> std::io::Result<Self> {
        let mut handle = rppal::i2c::I2c::with_bus(bus).map_err(to_io)?;
        handle.set_slave_address(address).map_err(to_io)?;
        Ok(Self { bus: handle })
    }
}

fn to_io(error: rppal::i2c::Error) -> std::io::Error {
    match error {
        rppal::i2c::Error::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

impl I2cDevice for LinuxI2c {
    fn read_u16(&mut self, register: u8) -> std::io::Result<u16> {
        let mut buffer = [0u8; 2];
        self.bus
            .write_read(&[register], &mut buffer)
            .map_err(to_io)?;
        Ok(u16::from_be_bytes(buffer))
    }

    fn write_u16(&mut self, register: u8, value: u16) -> std::io::Result<()> {
        let [high, low] = value.to_be_bytes();
        self.bus
            .write(&[register, high, low])
            .map(|_| ())
            .map_err(to_io)
    }

    fn read_u8(&mut self, register: u8) -> std::io::Result<u8> {
        self.bus.smbus_read_byte(register).map_err(to_io)
    }

    fn write_u8(&mut self, register: u8, value: u8) -> std::io::Result<()> {
        self.bus.smbus_write_byte(register, value).map_err(to_io)
    }
}
