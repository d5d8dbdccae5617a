/* The running library's version (see api.h): compiled from the same header
 * as the programs, so a program can tell when it meets another release. */
#include "api.h"

const char *tg_version(void) { return TG_VERSION_STRING; }

int tg_version_number(void) { return TG_VERSION_NUMBER; }
