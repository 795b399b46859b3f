/*
 * ate test firmware: the program a production line flashes onto each DUT to test it.
 *
 * It speaks the ate line protocol (firmware/test_fw/PROTOCOL.md) on UART0: boot, say
 * `@* READY proto=1 fw=ate-testfw/<version> chip=<target> mac=<factory MAC>` once, then
 * answer requests one at a time until reset.
 */
#include <string.h>

#include "commands.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "protocol.h"
#include "protocol_io.h"

static const char *TAG = "ate_testfw";

/* The command task outranks the `active` busy-loop tasks (priority 1), so a request is
 * answered at once even while every core spins, and stays below the Wi-Fi, lwIP and
 * esp_timer tasks, which must keep running under it. */
#define COMMAND_TASK_PRIORITY 5
/* Handlers keep their buffers in static storage; this covers vsnprintf, the drivers and
 * an ESP-IDF log call from the deepest handler, with margin. */
#define COMMAND_TASK_STACK_BYTES 8192

static StaticTask_t s_command_tcb;
static StackType_t s_command_stack[COMMAND_TASK_STACK_BYTES];

static void send_ready(void)
{
    const ate_identity_t *id = commands_identity();
    char line[160];
    ate_reply_t notice;
    ate_notice_init(&notice, line, sizeof(line), "READY");
    ate_reply_uint(&notice, "proto", ATE_PROTO_VERSION);
    ate_reply_str(&notice, "fw", id->fw);
    ate_reply_str(&notice, "chip", id->chip);
    ate_reply_str(&notice, "mac", id->mac);
    ate_io_send_notice(&notice);
}

static void command_task(void *arg)
{
    (void)arg;
    ate_io_run(); /* never returns */
}

void app_main(void)
{
    size_t count = 0;
    const ate_command_t *commands = commands_table(&count);

    /* The UART and the log hook first, so every later log line already goes through the
     * single writer and cannot split the READY line. */
    ESP_ERROR_CHECK(ate_io_init(commands, count));
    commands_init();

    /* Exactly one READY per boot (PROTOCOL.md rule 7), after everything a command could
     * need is up: the host may send its first request the moment it sees it. */
    const char *fw = commands_identity()->fw;
    const char *version = strchr(fw, '/');
    ESP_LOGI(TAG, "test firmware %s ready", version != NULL ? version + 1 : fw);
    send_ready();

    xTaskCreateStatic(command_task, "ate_cmd", COMMAND_TASK_STACK_BYTES, NULL,
                      COMMAND_TASK_PRIORITY, s_command_stack, &s_command_tcb);
    /* app_main returns; ESP-IDF deletes the main task. */
}
