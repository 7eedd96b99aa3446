/* program_parse_driver.c: guest/agentx/agentx_program.c's parser on argv lines
 * from stdin (arguments separated by tabs), for tests/test_programs.py to
 * compare with the Python parser (wslx.agentx.programs.parse). One output line
 * per input line: "usage", or "ok" and each step as " kind:num". */
#include <stdio.h>
#include <string.h>

#include "agentx_program.h"

int main(void)
{
    static char line[65536];
    static struct agx_program prog;
    while (fgets(line, sizeof line, stdin)) {
        char *argv[512];
        int argc = 0;
        argv[argc++] = AGX_PROGRAM_NAME;
        line[strcspn(line, "\n")] = 0;
        for (char *s = line; *s && argc < 511;) {
            argv[argc++] = s;
            char *tab = strchr(s, '\t');
            if (!tab) break;
            *tab = 0;
            s = tab + 1;
        }
        char err[256];
        if (agx_program_parse(argc, argv, &prog, err, sizeof err)) {
            printf("usage\n");
            continue;
        }
        printf("ok");
        for (size_t i = 0; i < prog.n; i++) printf(" %u:%llu", prog.step[i].kind, (unsigned long long)prog.step[i].num);
        printf("\n");
    }
    return 0;
}
