/*
 * The test firmware's command table and handlers (see commands.h, PROTOCOL.md).
 *
 * Conventions, so every handler reads the same:
 *   - validate every argument first (ate_arg_* fail the reply with EARG and a message
 *     naming the argument), then touch hardware;
 *   - a driver error is EHW with esp_err_to_name() in the message, for the operator;
 *   - "cannot now, could later" is EBUSY; "this image cannot" is EARG or EUNKNOWN;
 *   - no heap allocation here: buffers are static, and the only allocations are ESP-IDF's
 *     own (bus and device handles, created at boot or, for I2C devices, once per address).
 */
#include "commands.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "driver/gpio.h"
#include "driver/i2c_master.h"
#include "driver/spi_master.h"
#include "esp_adc/adc_cali.h"
#include "esp_adc/adc_cali_scheme.h"
#include "esp_adc/adc_oneshot.h"
#include "esp_app_desc.h"
#include "esp_attr.h"
#include "esp_flash.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "power.h"
#include "protocol_io.h"
#include "prov.h"
#include "rf.h"
#include "sdkconfig.h"
#include "soc/soc_caps.h"
#include "soc/uart_pins.h"

#if CONFIG_ATE_RF_GOLDEN
#include "ate_rf_golden.h"
#endif

static const char *TAG = "ate_cmd";

/* ---- identity ------------------------------------------------------------------------------ */

static ate_identity_t s_identity;

const ate_identity_t *commands_identity(void) { return &s_identity; }

static void identity_init(void)
{
    const esp_app_desc_t *app = esp_app_get_description();
    /* PROJECT_VER in CMakeLists.txt: the version a sequence's test_firmware may require. */
    snprintf(s_identity.fw, sizeof(s_identity.fw), "ate-testfw/%s", app->version);
    snprintf(s_identity.chip, sizeof(s_identity.chip), "%s", CONFIG_IDF_TARGET);
    snprintf(s_identity.idf, sizeof(s_identity.idf), "%s", app->idf_ver);

    /* The factory MAC from eFuse, not whatever base MAC software may have set: it is the
     * unit's identity in the test record. */
    uint8_t mac[6] = {0};
    const esp_err_t err = esp_efuse_mac_get_default(mac);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "factory MAC: %s", esp_err_to_name(err));
    }
    snprintf(s_identity.mac, sizeof(s_identity.mac), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0],
             mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* ---- pin ownership --------------------------------------------------------------------------- */

/* Who owns each GPIO. gpio.* only touches free pins: reconfiguring a bus pin, the console
 * or the flash would break the DUT mid-test in ways no test step could explain. */
typedef enum {
    PIN_FREE = 0,
    PIN_RESERVED,
    PIN_CONSOLE,
    PIN_I2C,
    PIN_SPI,
    PIN_ADC,
} pin_owner_t;

static const char *const k_owner_text[] = {
    [PIN_FREE] = "free",
    [PIN_RESERVED] = "reserved (CONFIG_ATE_GPIO_RESERVED)",
    [PIN_CONSOLE] = "the console UART",
    [PIN_I2C] = "an I2C bus pin",
    [PIN_SPI] = "an SPI bus pin",
    [PIN_ADC] = "an ADC input (CONFIG_ATE_ADC_CHANNELS)",
};

typedef enum {
    MODE_UNSET = 0, /* never set by gpio.mode */
    MODE_IN,
    MODE_OUT,
} pin_mode_t;

static uint8_t s_pin_owner[SOC_GPIO_PIN_COUNT];
static uint8_t s_pin_mode[SOC_GPIO_PIN_COUNT];

/* Take a pin for a bus. Fails (with the reason logged) if it does not exist or is taken. */
static bool claim_pin(int pin, pin_owner_t owner, const char *what)
{
    if (pin < 0 || pin >= SOC_GPIO_PIN_COUNT || !GPIO_IS_VALID_GPIO(pin)) {
        ESP_LOGE(TAG, "%s: gpio %d does not exist on %s", what, pin, CONFIG_IDF_TARGET);
        return false;
    }
    if (s_pin_owner[pin] != PIN_FREE) {
        ESP_LOGE(TAG, "%s: gpio %d is already %s", what, pin, k_owner_text[s_pin_owner[pin]]);
        return false;
    }
    s_pin_owner[pin] = (uint8_t)owner;
    return true;
}

static void pins_init(void)
{
    uint64_t reserved = 0;
    if (!ate_parse_uint_list(CONFIG_ATE_GPIO_RESERVED, &reserved)) {
        ESP_LOGE(TAG, "CONFIG_ATE_GPIO_RESERVED \"%s\" is not a list of GPIO numbers",
                 CONFIG_ATE_GPIO_RESERVED);
    }
    for (int pin = 0; pin < SOC_GPIO_PIN_COUNT && pin < 64; pin++) {
        if (reserved & ((uint64_t)1 << pin)) {
            s_pin_owner[pin] = PIN_RESERVED;
        }
    }
    /* The protocol itself runs on these. */
    s_pin_owner[U0TXD_GPIO_NUM] = PIN_CONSOLE;
    s_pin_owner[U0RXD_GPIO_NUM] = PIN_CONSOLE;
}

/* ---- gpio.* ---------------------------------------------------------------------------------- */

static bool pin_arg(const ate_request_t *q, ate_reply_t *r, gpio_num_t *pin)
{
    uint32_t v;
    if (!ate_arg_uint(q, r, 0, "pin", 0, SOC_GPIO_PIN_COUNT - 1, &v)) {
        return false;
    }
    if (!GPIO_IS_VALID_GPIO((int)v)) {
        ate_reply_fail(r, ATE_EARG, "gpio %" PRIu32 " does not exist on %s", v, CONFIG_IDF_TARGET);
        return false;
    }
    if (s_pin_owner[v] != PIN_FREE) {
        /* EHW, as PROTOCOL.md files "pin not configurable": the number is fine, this board
         * cannot give that pin to a test. */
        ate_reply_fail(r, ATE_EHW, "gpio %" PRIu32 " is not configurable: %s", v,
                       k_owner_text[s_pin_owner[v]]);
        return false;
    }
    *pin = (gpio_num_t)v;
    return true;
}

static esp_err_t configure_pin(gpio_num_t pin, gpio_mode_t mode, bool pull_up, bool pull_down)
{
    const gpio_config_t config = {
        .pin_bit_mask = (uint64_t)1 << pin,
        .mode = mode,
        .pull_up_en = pull_up ? GPIO_PULLUP_ENABLE : GPIO_PULLUP_DISABLE,
        .pull_down_en = pull_down ? GPIO_PULLDOWN_ENABLE : GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    return gpio_config(&config);
}

static void cmd_gpio_mode(const ate_request_t *q, ate_reply_t *r)
{
    enum { ARG_IN, ARG_OUT, ARG_IN_PULLUP, ARG_IN_PULLDOWN }; /* order of the choices */
    gpio_num_t pin;
    size_t mode;
    if (!pin_arg(q, r, &pin) ||
        !ate_arg_choice(q, r, 1, "mode", "in|out|in_pullup|in_pulldown", &mode)) {
        return;
    }
    if (mode == ARG_OUT && !GPIO_IS_VALID_OUTPUT_GPIO(pin)) {
        ate_reply_fail(r, ATE_EHW, "gpio %d is input-only: not configurable as out", (int)pin);
        return;
    }
#if CONFIG_IDF_TARGET_ESP32
    /* gpio_config() would silently skip the pull on these pads. */
    if ((mode == ARG_IN_PULLUP || mode == ARG_IN_PULLDOWN) && pin >= 34) {
        ate_reply_fail(r, ATE_EHW, "gpio %d has no internal pull resistors", (int)pin);
        return;
    }
#endif
    if (mode == ARG_OUT) {
        /* Low from the first instant the driver is enabled, so a loopback test never sees
         * a glitch to whatever the output latch held. */
        gpio_set_level(pin, 0);
    }
    /* Outputs are input-output: gpio.get on a driven pin reads the pad back, which is what
     * a loopback or short test wants to know. */
    const esp_err_t err = configure_pin(pin, mode == ARG_OUT ? GPIO_MODE_INPUT_OUTPUT : GPIO_MODE_INPUT,
                                        mode == ARG_IN_PULLUP, mode == ARG_IN_PULLDOWN);
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "gpio %d not configurable: %s", (int)pin, esp_err_to_name(err));
        s_pin_mode[pin] = MODE_UNSET;
        return;
    }
    s_pin_mode[pin] = mode == ARG_OUT ? MODE_OUT : MODE_IN;
}

static void cmd_gpio_set(const ate_request_t *q, ate_reply_t *r)
{
    gpio_num_t pin;
    uint32_t level;
    if (!pin_arg(q, r, &pin) || !ate_arg_uint(q, r, 1, "level", 0, 1, &level)) {
        return;
    }
    if (s_pin_mode[pin] != MODE_OUT) {
        ate_reply_fail(r, ATE_EARG, "gpio %d is not an output; send gpio.mode %d out first",
                       (int)pin, (int)pin);
        return;
    }
    const esp_err_t err = gpio_set_level(pin, level);
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "gpio %d: %s", (int)pin, esp_err_to_name(err));
    }
}

static void cmd_gpio_get(const ate_request_t *q, ate_reply_t *r)
{
    gpio_num_t pin;
    if (!pin_arg(q, r, &pin)) {
        return;
    }
    if (s_pin_mode[pin] == MODE_UNSET) {
        /* A pin nobody configured may have its input buffer off, and would then always read
         * 0. Make it a plain input, as PROTOCOL.md's example session expects to read one. */
        const esp_err_t err = configure_pin(pin, GPIO_MODE_INPUT, false, false);
        if (err != ESP_OK) {
            ate_reply_fail(r, ATE_EHW, "gpio %d not configurable: %s", (int)pin,
                           esp_err_to_name(err));
            return;
        }
        s_pin_mode[pin] = MODE_IN;
    }
    ate_reply_uint(r, "level", gpio_get_level(pin) ? 1u : 0u);
}

/* ---- i2c.* --------------------------------------------------------------------------------- */

#define I2C_BUSES 2
#define I2C_DEVICES_PER_BUS 8 /* a test talks to a handful of addresses; more are recycled */
#define I2C_XFER_MAX 128      /* bytes per i2c.read / i2c.write */
#define I2C_ADDR_MAX 0x7F     /* any 7-bit address; the sequence schema keeps to 0x08-0x77 */

#if CONFIG_ATE_I2C_INTERNAL_PULLUPS
#define I2C_PULLUPS 1
#else
#define I2C_PULLUPS 0
#endif

typedef struct {
    bool configured;  /* enabled in Kconfig */
    esp_err_t status; /* how starting it went */
    i2c_master_bus_handle_t bus;
    struct {
        uint16_t addr;
        i2c_master_dev_handle_t dev;
    } devices[I2C_DEVICES_PER_BUS];
    size_t next_evict;
} i2c_bus_state_t;

static i2c_bus_state_t s_i2c[I2C_BUSES];

/* unused attribute: an image may enable no I2C bus at all. */
__attribute__((unused)) static void i2c_start(int index, int sda, int scl)
{
    i2c_bus_state_t *st = &s_i2c[index];
    st->configured = true;
    char what[24];
    snprintf(what, sizeof(what), "i2c bus %d", index);
    if (!claim_pin(sda, PIN_I2C, what) || !claim_pin(scl, PIN_I2C, what)) {
        st->status = ESP_ERR_INVALID_ARG;
        return;
    }
    const i2c_master_bus_config_t config = {
        .i2c_port = index,
        .sda_io_num = sda,
        .scl_io_num = scl,
        .clk_source = I2C_CLK_SRC_DEFAULT,
        .glitch_ignore_cnt = 7,
        .flags.enable_internal_pullup = I2C_PULLUPS,
    };
    st->status = i2c_new_master_bus(&config, &st->bus);
    if (st->status != ESP_OK) {
        st->bus = NULL;
        ESP_LOGE(TAG, "%s (SDA %d, SCL %d): %s", what, sda, scl, esp_err_to_name(st->status));
    }
}

static i2c_bus_state_t *i2c_bus_arg(const ate_request_t *q, ate_reply_t *r, uint32_t *bus)
{
    if (!ate_arg_uint(q, r, 0, "bus", 0, I2C_BUSES - 1, bus)) {
        return NULL;
    }
    i2c_bus_state_t *st = &s_i2c[*bus];
    if (!st->configured) {
        ate_reply_fail(r, ATE_EARG, "i2c bus %" PRIu32 " is not in this image (CONFIG_ATE_I2C%" PRIu32
                       "_ENABLE)", *bus, *bus);
        return NULL;
    }
    if (st->bus == NULL) {
        ate_reply_fail(r, ATE_EHW, "i2c bus %" PRIu32 " did not start: %s", *bus,
                       esp_err_to_name(st->status));
        return NULL;
    }
    return st;
}

/* A device handle for `addr`, added on first use and kept; the oldest is recycled when the
 * table is full. */
static esp_err_t i2c_device(i2c_bus_state_t *st, uint16_t addr, i2c_master_dev_handle_t *dev)
{
    size_t slot = I2C_DEVICES_PER_BUS;
    for (size_t i = 0; i < I2C_DEVICES_PER_BUS; i++) {
        if (st->devices[i].dev != NULL && st->devices[i].addr == addr) {
            *dev = st->devices[i].dev;
            return ESP_OK;
        }
        if (st->devices[i].dev == NULL && slot == I2C_DEVICES_PER_BUS) {
            slot = i;
        }
    }
    if (slot == I2C_DEVICES_PER_BUS) {
        slot = st->next_evict;
        st->next_evict = (st->next_evict + 1) % I2C_DEVICES_PER_BUS;
        i2c_master_bus_rm_device(st->devices[slot].dev);
        st->devices[slot].dev = NULL;
    }
    const i2c_device_config_t config = {
        .dev_addr_length = I2C_ADDR_BIT_LEN_7,
        .device_address = addr,
        .scl_speed_hz = CONFIG_ATE_I2C_FREQ_HZ,
    };
    const esp_err_t err = i2c_master_bus_add_device(st->bus, &config, &st->devices[slot].dev);
    if (err != ESP_OK) {
        st->devices[slot].dev = NULL;
        return err;
    }
    st->devices[slot].addr = addr;
    *dev = st->devices[slot].dev;
    return ESP_OK;
}

/* After a timeout or a NACK (ESP_ERR_INVALID_STATE in the v5 driver) a slave that lost
 * count of the clock may still hold SDA low: clock the bus free so the next command starts
 * clean instead of inheriting this one's failure. */
static void i2c_recover(i2c_bus_state_t *st, esp_err_t err)
{
    if (err == ESP_ERR_TIMEOUT || err == ESP_ERR_INVALID_STATE) {
        const esp_err_t reset = i2c_master_bus_reset(st->bus);
        if (reset != ESP_OK) {
            ESP_LOGW(TAG, "i2c bus reset: %s", esp_err_to_name(reset));
        }
    }
}

static void cmd_i2c_probe(const ate_request_t *q, ate_reply_t *r)
{
    uint32_t bus;
    uint32_t addr;
    i2c_bus_state_t *st = i2c_bus_arg(q, r, &bus);
    if (st == NULL || !ate_arg_uint(q, r, 1, "addr", 0, I2C_ADDR_MAX, &addr)) {
        return;
    }
    /* Address + write bit, no data: ACK means a device answers at that address. */
    const esp_err_t err = i2c_master_probe(st->bus, (uint16_t)addr, CONFIG_ATE_I2C_TIMEOUT_MS);
    if (err == ESP_OK || err == ESP_ERR_NOT_FOUND) {
        ate_reply_uint(r, "ack", err == ESP_OK ? 1u : 0u);
        return;
    }
    i2c_recover(st, err);
    ate_reply_fail(r, ATE_EHW, "i2c bus %" PRIu32 " probe 0x%02" PRIx32 ": %s (bus stuck or no pull-ups?)",
                   bus, addr, esp_err_to_name(err));
}

static void cmd_i2c_read(const ate_request_t *q, ate_reply_t *r)
{
    static uint8_t data[I2C_XFER_MAX];
    uint32_t bus;
    uint32_t addr;
    uint32_t reg;
    uint32_t len;
    i2c_bus_state_t *st = i2c_bus_arg(q, r, &bus);
    if (st == NULL || !ate_arg_uint(q, r, 1, "addr", 0, I2C_ADDR_MAX, &addr) ||
        !ate_arg_uint(q, r, 2, "reg", 0, 0xff, &reg) ||
        !ate_arg_uint(q, r, 3, "len", 1, I2C_XFER_MAX, &len)) {
        return;
    }
    i2c_master_dev_handle_t dev;
    esp_err_t err = i2c_device(st, (uint16_t)addr, &dev);
    if (err == ESP_OK) {
        /* Register address, repeated start, read: the common register-read transaction. */
        const uint8_t reg8 = (uint8_t)reg;
        err = i2c_master_transmit_receive(dev, &reg8, 1, data, len, CONFIG_ATE_I2C_TIMEOUT_MS);
    }
    if (err != ESP_OK) {
        i2c_recover(st, err);
        ate_reply_fail(r, ATE_EHW, "i2c nack or bus error at 0x%02" PRIx32 " reg 0x%02" PRIx32 ": %s",
                       addr, reg, esp_err_to_name(err));
        return;
    }
    ate_reply_bytes(r, "data", data, len);
}

static void cmd_i2c_write(const ate_request_t *q, ate_reply_t *r)
{
    static uint8_t frame[1 + I2C_XFER_MAX];
    uint32_t bus;
    uint32_t addr;
    uint32_t reg;
    size_t len;
    i2c_bus_state_t *st = i2c_bus_arg(q, r, &bus);
    if (st == NULL || !ate_arg_uint(q, r, 1, "addr", 0, I2C_ADDR_MAX, &addr) ||
        !ate_arg_uint(q, r, 2, "reg", 0, 0xff, &reg) ||
        !ate_arg_hex(q, r, 3, "data", frame + 1, I2C_XFER_MAX, &len)) {
        return;
    }
    frame[0] = (uint8_t)reg;
    i2c_master_dev_handle_t dev;
    esp_err_t err = i2c_device(st, (uint16_t)addr, &dev);
    if (err == ESP_OK) {
        err = i2c_master_transmit(dev, frame, 1 + len, CONFIG_ATE_I2C_TIMEOUT_MS);
    }
    if (err != ESP_OK) {
        i2c_recover(st, err);
        ate_reply_fail(r, ATE_EHW, "i2c nack or bus error at 0x%02" PRIx32 " reg 0x%02" PRIx32 ": %s",
                       addr, reg, esp_err_to_name(err));
    }
}

/* ---- spi.* --------------------------------------------------------------------------------- */

/* Bus numbers are the chip's SPI controller numbers, as in the TRM: 1 is the flash the chip
 * boots from (read-only here: JEDEC ID), 2 and 3 are general-purpose controllers with one
 * device each. 0 is the cache's port to the same flash and is never usable. */
#define SPI_BUSES 4
#define SPI_FLASH_BUS 1
#define SPI_XFER_MAX 512 /* bytes per spi.xfer; the reply stays well inside a line */

typedef struct {
    bool configured;
    esp_err_t status;
    spi_device_handle_t dev;
} spi_bus_state_t;

static spi_bus_state_t s_spi[SPI_BUSES];
/* DMA-capable, word-aligned, static: the driver then uses them directly instead of
 * allocating bounce buffers per transfer. */
static DMA_ATTR uint8_t s_spi_tx[SPI_XFER_MAX];
static DMA_ATTR uint8_t s_spi_rx[SPI_XFER_MAX];

/* unused attribute: an image may enable no SPI bus at all. */
__attribute__((unused)) static void spi_start(int index, spi_host_device_t host, int mosi,
                                              int miso, int sclk, int cs)
{
    spi_bus_state_t *st = &s_spi[index];
    st->configured = true;
    char what[24];
    snprintf(what, sizeof(what), "spi bus %d", index);
    if (!claim_pin(mosi, PIN_SPI, what) || !claim_pin(miso, PIN_SPI, what) ||
        !claim_pin(sclk, PIN_SPI, what) || !claim_pin(cs, PIN_SPI, what)) {
        st->status = ESP_ERR_INVALID_ARG;
        return;
    }
    const spi_bus_config_t bus = {
        .mosi_io_num = mosi,
        .miso_io_num = miso,
        .sclk_io_num = sclk,
        .quadwp_io_num = -1,
        .quadhd_io_num = -1,
        .max_transfer_sz = SPI_XFER_MAX,
    };
    st->status = spi_bus_initialize(host, &bus, SPI_DMA_CH_AUTO);
    if (st->status == ESP_OK) {
        const spi_device_interface_config_t device = {
            .mode = CONFIG_ATE_SPI_MODE,
            .clock_speed_hz = CONFIG_ATE_SPI_FREQ_HZ,
            .spics_io_num = cs,
            .queue_size = 1,
        };
        st->status = spi_bus_add_device(host, &device, &st->dev);
    }
    if (st->status != ESP_OK) {
        st->dev = NULL;
        ESP_LOGE(TAG, "%s: %s", what, esp_err_to_name(st->status));
    }
}

static spi_bus_state_t *spi_bus_arg(const ate_request_t *q, ate_reply_t *r, uint32_t *bus)
{
    if (!ate_arg_uint(q, r, 0, "bus", 0, SPI_BUSES - 1, bus)) {
        return NULL;
    }
    if (*bus == 0) {
        ate_reply_fail(r, ATE_EARG, "spi bus 0 is the cache's flash port; bus 1 is the flash");
        return NULL;
    }
    if (*bus == SPI_FLASH_BUS) {
        return NULL; /* handled by the caller; no device handle */
    }
    spi_bus_state_t *st = &s_spi[*bus];
    if (!st->configured) {
        ate_reply_fail(r, ATE_EARG, "spi bus %" PRIu32 " is not in this image (CONFIG_ATE_SPI%" PRIu32
                       "_ENABLE)", *bus, *bus);
        return NULL;
    }
    if (st->dev == NULL) {
        ate_reply_fail(r, ATE_EHW, "spi bus %" PRIu32 " did not start: %s", *bus,
                       esp_err_to_name(st->status));
        return NULL;
    }
    return st;
}

static void cmd_spi_jedec(const ate_request_t *q, ate_reply_t *r)
{
    uint32_t bus;
    spi_bus_state_t *st = spi_bus_arg(q, r, &bus);
    if (ate_reply_failed(r)) {
        return;
    }
    uint32_t id = 0;
    if (bus == SPI_FLASH_BUS) {
        /* The DUT's own flash: RDID through the flash driver, which owns SPI1. */
        const esp_err_t err = esp_flash_read_id(NULL, &id);
        if (err != ESP_OK) {
            ate_reply_fail(r, ATE_EHW, "flash RDID: %s", esp_err_to_name(err));
            return;
        }
    } else {
        spi_transaction_t t = {
            .flags = SPI_TRANS_USE_TXDATA | SPI_TRANS_USE_RXDATA,
            .length = 32, /* 0x9F, then three bytes clocked in: manufacturer, type, capacity */
            .tx_data = {0x9F, 0x00, 0x00, 0x00},
        };
        const esp_err_t err = spi_device_polling_transmit(st->dev, &t);
        if (err != ESP_OK) {
            ate_reply_fail(r, ATE_EHW, "spi bus %" PRIu32 " RDID: %s", bus, esp_err_to_name(err));
            return;
        }
        id = ((uint32_t)t.rx_data[1] << 16) | ((uint32_t)t.rx_data[2] << 8) | t.rx_data[3];
    }
    /* Reported as read, even 0x000000 or 0xffffff (nothing answering): the step compares it
     * with the expected ID and shows both, which says more than a generic error. */
    ate_reply_hex(r, "id", id & 0xFFFFFFu, 6);
}

static void cmd_spi_xfer(const ate_request_t *q, ate_reply_t *r)
{
    uint32_t bus;
    spi_bus_state_t *st = spi_bus_arg(q, r, &bus);
    if (ate_reply_failed(r)) {
        return;
    }
    if (bus == SPI_FLASH_BUS) {
        ate_reply_fail(r, ATE_EARG, "spi bus 1 is the DUT's own flash: spi.jedec only");
        return;
    }
    size_t len;
    if (!ate_arg_hex(q, r, 1, "data", s_spi_tx, sizeof(s_spi_tx), &len)) {
        return;
    }
    spi_transaction_t t = {
        .length = len * 8, /* full duplex: as many bits in as out */
        .tx_buffer = s_spi_tx,
        .rx_buffer = s_spi_rx,
    };
    /* Polling: bounded by length and clock (512 bytes at 1 MHz is ~4 ms), no queue. */
    const esp_err_t err = spi_device_polling_transmit(st->dev, &t);
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "spi bus %" PRIu32 " transfer: %s", bus, esp_err_to_name(err));
        return;
    }
    ate_reply_bytes(r, "data", s_spi_rx, len);
}

/* ---- adc.read ------------------------------------------------------------------------------- */

/* Protocol channel n: ADC(n / 10 + 1) channel (n % 10). One stable numbering across chips,
 * 0-19, matching the sequence schema's range. */
#define ADC_CHANNELS 20
#define ADC_PER_UNIT 10
#define ADC_SAMPLES_MAX 1024

#if CONFIG_ATE_ADC_ATTEN_DB_0
#define ATE_ADC_ATTEN ADC_ATTEN_DB_0
#elif CONFIG_ATE_ADC_ATTEN_DB_2_5
#define ATE_ADC_ATTEN ADC_ATTEN_DB_2_5
#elif CONFIG_ATE_ADC_ATTEN_DB_6
#define ATE_ADC_ATTEN ADC_ATTEN_DB_6
#else
#define ATE_ADC_ATTEN ADC_ATTEN_DB_12
#endif

typedef struct {
    bool allowed;     /* listed in CONFIG_ATE_ADC_CHANNELS */
    esp_err_t status; /* configuring it at boot */
    adc_unit_t unit;
    adc_channel_t channel;
    adc_cali_handle_t cali; /* NULL: no calibration (eFuse not burnt) */
} adc_slot_t;

static adc_slot_t s_adc[ADC_CHANNELS];
static adc_oneshot_unit_handle_t s_adc_unit[SOC_ADC_PERIPH_NUM];

static esp_err_t adc_calibration(adc_unit_t unit, adc_channel_t channel, adc_cali_handle_t *out)
{
#if ADC_CALI_SCHEME_CURVE_FITTING_SUPPORTED
    const adc_cali_curve_fitting_config_t config = {
        .unit_id = unit,
        .chan = channel,
        .atten = ATE_ADC_ATTEN,
        .bitwidth = ADC_BITWIDTH_DEFAULT,
    };
    return adc_cali_create_scheme_curve_fitting(&config, out);
#elif ADC_CALI_SCHEME_LINE_FITTING_SUPPORTED
    (void)channel;
    const adc_cali_line_fitting_config_t config = {
        .unit_id = unit,
        .atten = ATE_ADC_ATTEN,
        .bitwidth = ADC_BITWIDTH_DEFAULT,
#if CONFIG_IDF_TARGET_ESP32
        .default_vref = 1100, /* used only when the eFuse holds no Vref: a nominal value */
#endif
    };
    return adc_cali_create_scheme_line_fitting(&config, out);
#else
    (void)unit;
    (void)channel;
    (void)out;
    return ESP_ERR_NOT_SUPPORTED;
#endif
}

static void adc_init(void)
{
    uint64_t allowed = 0;
    if (!ate_parse_uint_list(CONFIG_ATE_ADC_CHANNELS, &allowed)) {
        ESP_LOGE(TAG, "CONFIG_ATE_ADC_CHANNELS \"%s\" is not a list of channel numbers",
                 CONFIG_ATE_ADC_CHANNELS);
        return;
    }
    for (int n = 0; n < ADC_CHANNELS; n++) {
        adc_slot_t *slot = &s_adc[n];
        if (!(allowed & ((uint64_t)1 << n))) {
            continue;
        }
        slot->allowed = true;
        const int unit_index = n / ADC_PER_UNIT;
        slot->unit = (adc_unit_t)unit_index;
        slot->channel = (adc_channel_t)(n % ADC_PER_UNIT);

        int io = -1;
        if (unit_index >= SOC_ADC_PERIPH_NUM ||
            adc_oneshot_channel_to_io(slot->unit, slot->channel, &io) != ESP_OK) {
            slot->status = ESP_ERR_NOT_FOUND;
            ESP_LOGE(TAG, "adc channel %d (ADC%d ch%d) does not exist on %s", n, unit_index + 1,
                     n % ADC_PER_UNIT, CONFIG_IDF_TARGET);
            continue;
        }
        char what[32];
        snprintf(what, sizeof(what), "adc channel %d", n);
        if (!claim_pin(io, PIN_ADC, what)) {
            slot->status = ESP_ERR_INVALID_STATE;
            continue;
        }
        if (s_adc_unit[unit_index] == NULL) {
            const adc_oneshot_unit_init_cfg_t unit_config = {.unit_id = slot->unit};
            slot->status = adc_oneshot_new_unit(&unit_config, &s_adc_unit[unit_index]);
            if (slot->status != ESP_OK) {
                s_adc_unit[unit_index] = NULL;
                ESP_LOGE(TAG, "ADC%d: %s", unit_index + 1, esp_err_to_name(slot->status));
                continue;
            }
        }
        const adc_oneshot_chan_cfg_t channel_config = {
            .atten = ATE_ADC_ATTEN,
            .bitwidth = ADC_BITWIDTH_DEFAULT,
        };
        slot->status = adc_oneshot_config_channel(s_adc_unit[unit_index], slot->channel,
                                                  &channel_config);
        if (slot->status != ESP_OK) {
            ESP_LOGE(TAG, "%s: %s", what, esp_err_to_name(slot->status));
            continue;
        }
        const esp_err_t cal = adc_calibration(slot->unit, slot->channel, &slot->cali);
        if (cal != ESP_OK) {
            slot->cali = NULL;
            ESP_LOGW(TAG, "%s: no calibration (%s); adc.read will answer EHW", what,
                     esp_err_to_name(cal));
        }
    }
}

static void cmd_adc_read(const ate_request_t *q, ate_reply_t *r)
{
    uint32_t n;
    uint32_t samples;
    if (!ate_arg_uint(q, r, 0, "channel", 0, ADC_CHANNELS - 1, &n) ||
        !ate_option_uint(q, r, "samples", 1, 1, ADC_SAMPLES_MAX, &samples)) {
        return;
    }
    const adc_slot_t *slot = &s_adc[n];
    if (!slot->allowed) {
        ate_reply_fail(r, ATE_EARG, "adc channel %" PRIu32 " is not allowed (CONFIG_ATE_ADC_CHANNELS=%s)",
                       n, CONFIG_ATE_ADC_CHANNELS);
        return;
    }
    if (slot->status == ESP_ERR_NOT_FOUND) {
        ate_reply_fail(r, ATE_EARG, "adc channel %" PRIu32 " does not exist on %s", n,
                       CONFIG_IDF_TARGET);
        return;
    }
    if (slot->status != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "adc channel %" PRIu32 " unavailable: %s", n,
                       esp_err_to_name(slot->status));
        return;
    }
    if (slot->cali == NULL) {
        /* The step has limits in volts; a raw count passed off as mV would pass or fail
         * units for the wrong reason. */
        ate_reply_fail(r, ATE_EHW, "adc channel %" PRIu32 " has no calibration (eFuse not burnt?)",
                       n);
        return;
    }
    /* Each sample is calibrated before averaging: the curve is not linear, so the mean of
     * calibrated values is the better estimate. ~50 us per sample bounds this at ~50 ms. */
    int64_t sum = 0;
    for (uint32_t i = 0; i < samples; i++) {
        int raw = 0;
        int mv = 0;
        esp_err_t err = adc_oneshot_read(s_adc_unit[slot->unit], slot->channel, &raw);
        if (err == ESP_ERR_TIMEOUT) {
            /* ADC2 arbitration lost to the Wi-Fi driver (ESP32 during power.mode active). */
            ate_reply_fail(r, ATE_EBUSY, "ADC%d is in use by the radio; try power.mode idle",
                           (int)slot->unit + 1);
            return;
        }
        if (err == ESP_OK) {
            err = adc_cali_raw_to_voltage(slot->cali, raw, &mv);
        }
        if (err != ESP_OK) {
            ate_reply_fail(r, ATE_EHW, "adc channel %" PRIu32 ": %s", n, esp_err_to_name(err));
            return;
        }
        sum += mv;
    }
    ate_reply_int(r, "mv", (sum + (int64_t)samples / 2) / (int64_t)samples);
}

/* ---- power.mode ------------------------------------------------------------------------------ */

static void cmd_power_mode(const ate_request_t *q, ate_reply_t *r)
{
    enum { PM_IDLE, PM_ACTIVE, PM_LIGHT_SLEEP, PM_DEEP_SLEEP }; /* order of the choices */
    size_t mode;
    uint32_t hold_ms;
    /* hold_ms is accepted with every mode so a host can send it uniformly; only the sleep
     * modes use it (idle and active hold until the next power.mode). */
    if (!ate_arg_choice(q, r, 0, "mode", "idle|active|light_sleep|deep_sleep", &mode) ||
        !ate_option_uint(q, r, "hold_ms", 1000, 1, CONFIG_ATE_SLEEP_HOLD_MS_MAX, &hold_ms)) {
        return;
    }
    if (rf_test_rx_running()) {
        /* idle and the sleeps stop Wi-Fi, active takes it: either would end the count. */
        ate_reply_fail(r, ATE_EBUSY, "rf.rx is running; send rf.rx.stop first");
        return;
    }
    esp_err_t err = ESP_OK;
    switch (mode) {
    case PM_IDLE:
        err = power_set_idle();
        break;
    case PM_ACTIVE:
        err = power_set_active();
        break;
    case PM_LIGHT_SLEEP:
    case PM_DEEP_SLEEP:
        /* Arm the timer now so a failure is this request's EHW; sleep after the OK is out. */
        err = power_arm_timer(hold_ms);
        if (err == ESP_OK) {
            ate_reply_after(r, mode == PM_LIGHT_SLEEP ? power_light_sleep : power_deep_sleep,
                            hold_ms);
        }
        break;
    default:
        break;
    }
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "power.mode %s: %s", q->argv[0], esp_err_to_name(err));
    }
}

/* ---- rf.golden ------------------------------------------------------------------------------- */

static void cmd_rf_golden(const ate_request_t *q, ate_reply_t *r)
{
#if CONFIG_ATE_RF_GOLDEN
    uint32_t channel;
    uint32_t packets;
    if (!ate_arg_uint(q, r, 0, "channel", 1, 14, &channel) ||
        !ate_arg_uint(q, r, 1, "packets", 1, 10000, &packets)) {
        return;
    }
    if (power_is_active()) {
        ate_reply_fail(r, ATE_EBUSY, "the radio is held by power.mode active; send power.mode idle");
        return;
    }
    if (rf_test_rx_running()) {
        ate_reply_fail(r, ATE_EBUSY, "rf.rx is running; send rf.rx.stop first");
        return;
    }
    ate_rf_golden_result_t result = {0};
    const esp_err_t err =
        ate_rf_golden_run((uint8_t)channel, packets, CONFIG_ATE_RF_GOLDEN_TIMEOUT_MS, &result);
    switch (err) {
    case ESP_OK:
        ate_reply_fixed(r, "rssi", result.rssi_dbm_x10, 1);
        ate_reply_fixed(r, "freq_offset", result.freq_offset_ppm_x100, 2);
        ate_reply_fixed(r, "per", (int32_t)result.per_x100, 2);
        break;
    case ESP_ERR_INVALID_STATE:
        ate_reply_fail(r, ATE_EBUSY, "rf test cannot run now");
        break;
    case ESP_ERR_TIMEOUT:
        ate_reply_fail(r, ATE_EHW, "no answer from the golden board on channel %" PRIu32, channel);
        break;
    case ESP_ERR_NOT_SUPPORTED:
        ate_reply_fail(r, ATE_EARG, "channel %" PRIu32 " / %" PRIu32 " packets not supported",
                       channel, packets);
        break;
    default:
        ate_reply_fail(r, ATE_EHW, "rf test: %s", esp_err_to_name(err));
        break;
    }
#else
    (void)q;
    /* EUNKNOWN, not EBUSY: retrying will never help. The sequence names a test firmware that
     * lacks the command, which is what EUNKNOWN tells the host. */
    ate_reply_fail(r, ATE_EUNKNOWN,
                   "rf.golden is not built into this image (CONFIG_ATE_RF_GOLDEN is off)");
#endif
}

/* ---- ping, info, sys.* ----------------------------------------------------------------- */

static void cmd_ping(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    (void)r;
}

static void cmd_info(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    ate_reply_uint(r, "proto", ATE_PROTO_VERSION);
    ate_reply_str(r, "fw", s_identity.fw);
    ate_reply_str(r, "chip", s_identity.chip);
    ate_reply_str(r, "mac", s_identity.mac);
    ate_reply_str(r, "idf", s_identity.idf);
    ate_reply_str(r, "role", ate_rf_role_name(rf_test_role())); /* PROTOCOL.md: RF test, role */
}

/* ---- prov.* behind the role ---------------------------------------------------------------- */

/* A golden board is a fixture's instrument, never a product: it must never get a device key
 * or a certificate, whatever a sequence sends to the port it sits on. */
static bool provisionable(ate_reply_t *r)
{
    if (rf_test_role() == ATE_RF_ROLE_GOLDEN) {
        ate_reply_fail(r, ATE_EPERM, "golden board: never provisioned");
        return false;
    }
    return true;
}

static void cmd_prov_key_gated(const ate_request_t *q, ate_reply_t *r)
{
    if (provisionable(r)) {
        cmd_prov_key(q, r);
    }
}

static void cmd_prov_csr_gated(const ate_request_t *q, ate_reply_t *r)
{
    if (provisionable(r)) {
        cmd_prov_csr(q, r);
    }
}

static void cmd_prov_sign_gated(const ate_request_t *q, ate_reply_t *r)
{
    if (provisionable(r)) {
        cmd_prov_sign(q, r);
    }
}

static void cmd_sys_uptime(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    ate_reply_uint(r, "ms", (uint64_t)(esp_timer_get_time() / 1000));
}

static void reboot_after(uint32_t arg)
{
    (void)arg;
    ESP_LOGI(TAG, "restarting (sys.reboot)");
    ate_io_prepare_restart(); /* keeps the answer for a resend, drains the UART */
    esp_restart();
}

static void cmd_sys_reboot(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    ate_reply_after(r, reboot_after, 0); /* "replies, then restarts" */
}

/* ---- the table ---------------------------------------------------------------------------------- */

static const ate_command_t s_commands[] = {
    {"ping", cmd_ping, 0, 0, NULL, "ping"},
    {"info", cmd_info, 0, 0, NULL, "info"},
    {"gpio.mode", cmd_gpio_mode, 2, 2, NULL, "gpio.mode <pin> <in|out|in_pullup|in_pulldown>"},
    {"gpio.set", cmd_gpio_set, 2, 2, NULL, "gpio.set <pin> <0|1>"},
    {"gpio.get", cmd_gpio_get, 1, 1, NULL, "gpio.get <pin>"},
    {"i2c.probe", cmd_i2c_probe, 2, 2, NULL, "i2c.probe <bus> <addr>"},
    {"i2c.read", cmd_i2c_read, 4, 4, NULL, "i2c.read <bus> <addr> <reg> <len>"},
    {"i2c.write", cmd_i2c_write, 4, 4, NULL, "i2c.write <bus> <addr> <reg> <hex>"},
    {"spi.jedec", cmd_spi_jedec, 1, 1, NULL, "spi.jedec <bus>"},
    {"spi.xfer", cmd_spi_xfer, 2, 2, NULL, "spi.xfer <bus> <hex>"},
    {"adc.read", cmd_adc_read, 1, 1, "samples", "adc.read <channel> [samples=<n>]"},
    {"power.mode", cmd_power_mode, 1, 1, "hold_ms",
     "power.mode <idle|active|light_sleep|deep_sleep> [hold_ms=<n>]"},
#if CONFIG_ATE_RF_GOLDEN
    {"rf.golden", cmd_rf_golden, 2, 2, NULL, "rf.golden <channel> <packets>"},
#else
    /* Any arguments: the answer is "not built in" whatever they are. */
    {"rf.golden", cmd_rf_golden, 0, ATE_MAX_TOKENS, NULL, "rf.golden <channel> <packets>"},
#endif
    /* rf.c: the RF test against a golden board (PROTOCOL.md, "RF test"). */
    {"rf.role", cmd_rf_role, 0, 1, NULL, "rf.role [dut|golden]"},
    {"rf.tx", cmd_rf_tx, 3, 3, "interval_us power", ATE_RF_TX_USAGE},
    {"rf.rx.start", cmd_rf_rx_start, 2, 2, "from", ATE_RF_RX_START_USAGE},
    {"rf.rx.stop", cmd_rf_rx_stop, 0, 0, NULL, "rf.rx.stop"},
    {"sys.uptime", cmd_sys_uptime, 0, 0, NULL, "sys.uptime"},
    {"sys.reboot", cmd_sys_reboot, 0, 0, NULL, "sys.reboot"},
    /* prov.c: the device key, its CSR and proofs (PROVISIONING.md); EPERM on a golden board. */
    {"prov.key", cmd_prov_key_gated, 0, 0, NULL, "prov.key"},
    {"prov.csr", cmd_prov_csr_gated, 0, 0, "subject", "prov.csr subject=<hex>"},
    {"prov.sign", cmd_prov_sign_gated, 1, 1, NULL, "prov.sign <challenge-hex>"},
};

const ate_command_t *commands_table(size_t *count)
{
    *count = sizeof(s_commands) / sizeof(s_commands[0]);
    return s_commands;
}

void commands_init(void)
{
    /* First: it switches the SAR-ADC entropy source on for a moment, which must happen
     * before adc_init() and power_init() bring up the ADC and Wi-Fi. */
    prov_init();
    identity_init();
    pins_init();
#if CONFIG_ATE_I2C0_ENABLE
    i2c_start(0, CONFIG_ATE_I2C0_SDA, CONFIG_ATE_I2C0_SCL);
#endif
#if CONFIG_ATE_I2C1_ENABLE
    i2c_start(1, CONFIG_ATE_I2C1_SDA, CONFIG_ATE_I2C1_SCL);
#endif
#if CONFIG_ATE_SPI2_ENABLE
    spi_start(2, SPI2_HOST, CONFIG_ATE_SPI2_MOSI, CONFIG_ATE_SPI2_MISO, CONFIG_ATE_SPI2_SCLK,
              CONFIG_ATE_SPI2_CS);
#endif
#if CONFIG_ATE_SPI3_ENABLE
#if SOC_SPI_PERIPH_NUM > 2
    spi_start(3, SPI3_HOST, CONFIG_ATE_SPI3_MOSI, CONFIG_ATE_SPI3_MISO, CONFIG_ATE_SPI3_SCLK,
              CONFIG_ATE_SPI3_CS);
#else
#error "CONFIG_ATE_SPI3_ENABLE: this chip has no SPI3 controller"
#endif
#endif
    adc_init();
    const esp_err_t err = power_init();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "power modes: %s", esp_err_to_name(err));
    }
    rf_test_init(); /* after power_init(): the RF test uses the Wi-Fi driver it initialised */
}
