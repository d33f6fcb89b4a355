/*  SPDX-License-Identifier: BSD-3-Clause
 *
 * The load-time check of the app's SPDK, run from the shim's ELF constructor before the
 * module and its RPC methods are registered.
 *
 * The shared library links no SPDK library (build.rs): SPDK's symbols come from the app,
 * bound lazily, so a library built for another SPDK always loads and gets here. SPDK has
 * no run-time version call, and what must match is the ABI: every SPDK library's soname
 * (libspdk_bdev.so.18.0 in v25.09, .so.20.0 in v26.05) changes with its ABI. build.rs
 * records the sonames of the libraries the module calls (IOBAND_SPDK_SONAMES) and the
 * version they came with (IOBAND_SPDK_VERSION); here each must be loaded in the process
 * under that name. Nothing here calls SPDK.
 */

#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ioband_check.h"

#ifndef IOBAND_SPDK_VERSION
#define IOBAND_SPDK_VERSION "unknown"
#endif
#ifndef IOBAND_SPDK_SONAMES
#define IOBAND_SPDK_SONAMES ""
#endif

struct lookup {
	/* In: the address to place, or the soname to find ("libspdk_bdev.so.18.0"). */
	const void *addr;
	const char *soname;
	size_t stem_len;	/* length of "libspdk_bdev.so" */
	/* Out. */
	int in_main;		/* addr: -1 not found, 0 in a shared object, 1 in the main program */
	const char *exact;	/* the object loaded under soname */
	const char *other;	/* an object of the same library under another soname */
};

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash == NULL ? path : slash + 1;
}

static int
visit(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct lookup *l = arg;
	const char *name = info->dlpi_name == NULL ? "" : info->dlpi_name;
	const char *base = base_name(name);
	int i;

	if (l->addr != NULL) {
		for (i = 0; i < info->dlpi_phnum; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			uintptr_t start = info->dlpi_addr + ph->p_vaddr;
			uintptr_t a = (uintptr_t)l->addr;

			if (ph->p_type == PT_LOAD && a >= start && a - start < ph->p_memsz) {
				/* The main program comes first and has no name. */
				l->in_main = name[0] == '\0';
				return 1;
			}
		}
		return 0;
	}
	if (strncmp(base, l->soname, l->stem_len) == 0 &&
	    (base[l->stem_len] == '\0' || base[l->stem_len] == '.')) {
		if (strcmp(base, l->soname) == 0) {
			l->exact = name;
			return 1;
		}
		if (l->other == NULL) {
			l->other = name;
		}
	}
	return 0;
}

bool
ioband_check_app_spdk(const void *self)
{
	const char *names = IOBAND_SPDK_SONAMES;
	struct lookup l = { .addr = self, .in_main = -1 };
	char soname[256];

	dl_iterate_phdr(visit, &l);
	if (l.in_main == 1) {
		return true;
	}
	while (*names != '\0') {
		size_t len = strcspn(names, " ");
		const char *so;

		if (len == 0 || len >= sizeof(soname)) {
			names += len + (names[len] == ' ');
			continue;
		}
		memcpy(soname, names, len);
		soname[len] = '\0';
		names += len + (names[len] == ' ');
		so = strstr(soname, ".so");
		memset(&l, 0, sizeof(l));
		l.soname = soname;
		l.stem_len = so == NULL ? len : (size_t)(so - soname) + 3;
		dl_iterate_phdr(visit, &l);
		if (l.exact != NULL) {
			continue;
		}
		if (l.other != NULL) {
			fprintf(stderr, "bdev_ioband: not loaded: this library was built for SPDK %s "
				"(%s) but the app runs %s, another SPDK; rebuild it with SPDK_DIR at "
				"the app's SPDK (the app goes on without the ioband module)\n",
				IOBAND_SPDK_VERSION, soname, l.other);
		} else {
			fprintf(stderr, "bdev_ioband: not loaded: this library was built for SPDK %s "
				"and the process has no %s loaded (not an SPDK app built --with-shared "
				"with the bdev layer); it goes on without the ioband module\n",
				IOBAND_SPDK_VERSION, soname);
		}
		return false;
	}
	return true;
}
