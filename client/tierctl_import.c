/* placeholder */
#include "tierctl.h"
const tierctl_cmd tierctl_import_cmds[] = {{NULL, NULL, NULL, NULL, NULL}};
