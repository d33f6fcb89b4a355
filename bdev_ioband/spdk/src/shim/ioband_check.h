/*  SPDX-License-Identifier: BSD-3-Clause
 *
 * The load-time check: is the SPDK of the app this library is loaded into the one it was
 * built for? (ioband_check.c)
 */

#ifndef IOBAND_CHECK_H
#define IOBAND_CHECK_H

#include <stdbool.h>

/* True when the module may register: `self` (an address inside this library) is in the
 * app's main program (the static library linked into an app: the link chose the SPDK), or
 * every SPDK library the module calls is loaded under the soname it was built against.
 * Otherwise writes one line to stderr saying what differs and returns false. */
bool ioband_check_app_spdk(const void *self);

#endif
