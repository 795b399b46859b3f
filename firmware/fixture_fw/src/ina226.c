#include "ina226.h"

#include "fixture_hal.h"

uint16_t ina226_calibration(uint32_t current_lsb_ua, uint32_t shunt_milliohm)
{
    /* 0.00512 / (lsb_ua * 1e-6 * mohm * 1e-3) = 5120000 / (lsb_ua * mohm) */
    uint64_t cal = 5120000ull / ((uint64_t)current_lsb_ua * shunt_milliohm);
    return cal > 0x7FFFu ? 0x7FFFu : (uint16_t)cal; /* bit 15 is reserved */
}

int32_t ina226_current_ua(uint16_t current_register, uint32_t current_lsb_ua)
{
    int32_t raw = (int32_t)(int16_t)current_register;
    return raw * (int32_t)current_lsb_ua;
}

bool ina226_setup(uint8_t address)
{
    uint16_t id = 0;
    if (address == 0 || !hal_i2c_read16(address, INA226_REG_MANUFACTURER, &id) || id != 0x5449u) {
        return false;
    }
    /* AVG=4 (001), VBUSCT=VSHCT=1.1 ms (100), MODE=shunt and bus continuous (111). */
    const uint16_t config = (uint16_t)(0x4000u | (1u << 9) | (4u << 6) | (4u << 3) | 7u);
    return hal_i2c_write16(address, INA226_REG_CONFIG, config) &&
           hal_i2c_write16(address, INA226_REG_CALIBRATION,
                           ina226_calibration(INA226_CURRENT_LSB_UA, INA226_SHUNT_MILLIOHM));
}

bool ina226_read_ua(uint8_t address, int32_t *microamps)
{
    uint16_t reg = 0;
    if (!hal_i2c_read16(address, INA226_REG_CURRENT, &reg)) {
        return false;
    }
    *microamps = ina226_current_ua(reg, INA226_CURRENT_LSB_UA);
    return true;
}
