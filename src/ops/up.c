#include "ops/ops.h"
#include <stdio.h>
int cmd_up(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "todo\n"); return 1; }
