/*
 * tierctl_tiering.c -- tierctl's tiering commands (being built).
 */
#include "tierctl.h"

const tierctl_cmd tierctl_tiering_cmds[] = {
    {NULL, NULL, NULL, NULL},
};
