/* SPDX-License-Identifier: MIT */
/*
 * tests/stress/stress_sigbus.c - the registry of peer mappings (mapping.c,
 * invariants R1-R3) under churn.
 *
 * Faulting threads each loop: map a fresh memfd with GM_MAP_PEER, shrink
 * it to nothing, read every page through a view (each read must fail with
 * -EFAULT), drop the view and the mapping. So registrations, handlers and
 * unregistrations run at once and slots are reused while other threads'
 * handlers scan them; more than PEER_CHUNK (64) mappings are alive at
 * times, so a second chunk is linked while handlers walk the first.
 * Witness threads meanwhile map anonymous memory (often where a dropped
 * peer mapping was), fill it with a pattern and check it: a handler that
 * mapped zeros over a range that had been unmapped and reused would show
 * here as a changed byte. Suite 'stress': `make check` also runs it under
 * ThreadSanitizer.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <guestmem/guestmem.h>

#include "../threads.h"

#define FAULTERS  3
#define WITNESSES 1
#define ROUNDS	  1500 /* per faulting thread: about a second, several under TSan */
#define NPAGES	  8u
#define HELD	  24 /* mappings each faulter keeps alive at once: > 64 in all */

struct ctx {
	pthread_barrier_t *go;
	size_t page;
	int failed; /* first unexpected result, as a line number */
	unsigned faults;
	volatile int *stop;
};

static void note(struct ctx *c, bool ok, int line)
{
	if (!ok && c->failed == 0)
		c->failed = line;
}

/* One peer mapping of a memfd it then shrinks to nothing, as a view. */
static int truncated_view(struct ctx *c, struct gm_mapping **map, struct gm_memory **m)
{
	struct gm_region_spec spec = {0};
	int fd = memfd_create("stress-peer", MFD_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = ftruncate(fd, (off_t)(NPAGES * c->page)) ? -errno : 0;
	if (!err)
		err = gm_mapping_new_fd(fd, 0, NPAGES * c->page, GM_MAP_SHARED | GM_MAP_PEER, map);
	if (!err && ftruncate(fd, 0))
		err = -errno;
	close(fd);
	if (err)
		return err;
	spec.size = NPAGES * c->page;
	spec.mapping = *map;
	err = gm_memory_new(&spec, 1, m);
	if (err)
		gm_mapping_put(*map);
	return err;
}

static void *fault(void *arg)
{
	struct ctx *c = arg;
	struct gm_mapping *maps[HELD] = {0};
	struct gm_memory *views[HELD] = {0};
	unsigned round, p;
	uint64_t v;

	pthread_barrier_wait(c->go);
	for (round = 0; round < ROUNDS && !c->failed; round++) {
		unsigned k = round % HELD;

		gm_memory_put(views[k]);
		gm_mapping_put(maps[k]);
		views[k] = NULL;
		maps[k] = NULL;
		if (truncated_view(c, &maps[k], &views[k])) {
			note(c, false, __LINE__);
			break;
		}
		for (p = 0; p < NPAGES; p++) {
			note(c, gm_read(views[k], p * c->page, &v, sizeof(v)) == -EFAULT, __LINE__);
			c->faults++;
		}
		note(c, gm_mapping_truncated(maps[k]), __LINE__);
	}
	for (round = 0; round < HELD; round++) {
		gm_memory_put(views[round]);
		gm_mapping_put(maps[round]);
	}
	return NULL;
}

static void *witness(void *arg)
{
	struct ctx *c = arg;
	size_t len = NPAGES * c->page, i;

	pthread_barrier_wait(c->go);
	while (!__atomic_load_n(c->stop, __ATOMIC_RELAXED) && !c->failed) {
		unsigned char *p =
		    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			note(c, false, __LINE__);
			break;
		}
		memset(p, 0xa5, len);
		sched_yield();
		for (i = 0; i < len; i += 64)
			note(c, p[i] == 0xa5, __LINE__);
		munmap(p, len);
	}
	return NULL;
}

static void registry_survives_churn_and_never_maps_over_reused_memory(void **state)
{
	struct ctx c[FAULTERS + WITNESSES];
	pthread_t t[FAULTERS + WITNESSES];
	pthread_barrier_t go;
	volatile int stop = 0;
	unsigned i;
	const char *emu = getenv("GM_EMULATOR");

	(void)state;
	/* Under qemu-user (armhf) the SIGBUS of a truncated file is the emulator's. */
	if (emu != NULL && emu[0] != 0) {
		print_message("skipped: under qemu-user a SIGBUS past a file's end is the "
			      "emulator's, not the library's to contain\n");
		skip();
	}
	pthread_barrier_init(&go, NULL, FAULTERS + WITNESSES);
	for (i = 0; i < FAULTERS + WITNESSES; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].go = &go;
		c[i].page = (size_t)sysconf(_SC_PAGESIZE);
		c[i].stop = &stop;
		start_thread(&t[i], i < FAULTERS ? fault : witness, &c[i]);
	}
	assert_int_equal(join_threads(t, FAULTERS), 0);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	assert_int_equal(join_threads(t + FAULTERS, WITNESSES), 0);
	pthread_barrier_destroy(&go);
	for (i = 0; i < FAULTERS + WITNESSES; i++)
		assert_int_equal(c[i].failed, 0);
	for (i = 0; i < FAULTERS; i++)
		assert_int_equal(c[i].faults, ROUNDS * NPAGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(registry_survives_churn_and_never_maps_over_reused_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
