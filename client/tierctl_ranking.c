/*
 * tierctl_ranking.c -- tierctl's ranking commands (being built).
 */
#include "tierctl.h"

const tierctl_cmd tierctl_ranking_cmds[] = {
    {NULL, NULL, NULL, NULL},
};
