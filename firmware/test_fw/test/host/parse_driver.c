/*
 * Differential-test driver: classify request lines with the firmware's parser.
 *
 * stdin: one line per input line, hex-encoded (so any byte, NUL and '\n' included, can be
 * fed); stdout: one classification per line, in the same format fuzz_vs_host.py builds
 * from the host codec's parse_host_line():
 *
 *     noise | corrupt | toomany | req <id> <command>[ a:<arg>...][ k:<key>=<value>...]
 */
#include "protocol.h"

#include <stdio.h>
#include <string.h>

static int hex_nibble(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

int main(void)
{
    static char in[4 * ATE_MAX_LINE + 4];
    static char line[2 * ATE_MAX_LINE];
    static char work[ATE_MAX_LINE + 1];
    while (fgets(in, sizeof(in), stdin) != NULL) {
        const size_t digits = strcspn(in, "\n");
        const size_t len = digits / 2;
        for (size_t i = 0; i < len; i++) {
            line[i] = (char)(hex_nibble(in[2 * i]) * 16 + hex_nibble(in[2 * i + 1]));
        }
        ate_frame_t frame;
        const ate_frame_status_t status = ate_frame_parse(line, len, &frame);
        if (status == ATE_FRAME_NOT_REQUEST) {
            puts("noise");
            continue;
        }
        if (status != ATE_FRAME_OK) {
            puts("corrupt");
            continue;
        }
        ate_request_t req;
        const char *why;
        const ate_code_t code = ate_request_parse(&frame, work, sizeof(work), &req, &why);
        if (code != ATE_OK) {
            puts(code == ATE_EARG ? "toomany" : "corrupt");
            continue;
        }
        printf("req %u %s", (unsigned)req.id, req.command);
        for (size_t i = 0; i < req.argc; i++) {
            printf(" a:%s", req.argv[i]);
        }
        for (size_t i = 0; i < req.optc; i++) {
            printf(" k:%s=%s", req.optv[i].key, req.optv[i].value);
        }
        putchar('\n');
    }
    return 0;
}
