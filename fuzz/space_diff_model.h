/* SPDX-License-Identifier: MIT */
/*
 * fuzz/space_diff_model.h - the reference model fuzz_space_diff.c checks
 * the space layer against (space_diff_model.c): its windows and layouts,
 * and the comparisons that abort on a disagreement.
 */
#ifndef SPACE_DIFF_MODEL_H
#define SPACE_DIFF_MODEL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestmem/guestmem.h>

#define PAGE	 ((uint64_t)GM_PAGE_SIZE)
#define MAXWIN	 16u
#define MAXPAGES 24u /* largest RAM capacity, in pages */
#define MAXLEN	 64u /* longest access */
#define MAXSLOT	 (2 * MAXWIN)

/* One window of the model. */
struct mwin {
	struct gm_window *h;
	enum gm_window_kind kind;
	gm_gpa_t gpa;
	uint64_t size;
	uint64_t cap;		      /* RAM: max_size; others: size */
	unsigned char prot[MAXPAGES]; /* RAM: guest protection of each page */
	unsigned slot;		      /* RAM/ROM: its bytes are mem[slot] */
};

/* A layout: the windows in no particular order. */
struct mlayout {
	struct mwin w[MAXWIN];
	size_t n;
};

/*
 * The committed layout, which accesses see, and the staged one while a
 * transaction is open (depth > 0; doom: its first failing edit's error).
 * A window's bytes belong to the window, not to a layout: slot k of mem.
 */
extern struct mlayout cur, stg;
extern unsigned depth;
extern int doom;
extern unsigned char mem[MAXSLOT][MAXPAGES * GM_PAGE_SIZE];
extern bool written[MAXSLOT][MAXPAGES]; /* the model wrote the page (the final check) */
extern struct gm_space *space;
extern unsigned op_no; /* the operation being checked, for messages */
extern const char *op_name;

/* Abort with "op N (name): " and the message. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The layout edits change. */
struct mlayout *edited(void);
/* The committed window holding @gpa, or NULL. */
struct mwin *model_find(gm_gpa_t gpa);
/* Whether [@gpa, @gpa + @size) overlaps a window being edited other than @skip. */
bool model_overlaps(gm_gpa_t gpa, uint64_t size, const struct mwin *skip);
/* The result of an access through the space, or (@view) through its view. */
int model_access(gm_gpa_t gpa, size_t len, bool write, bool view);
void model_read(gm_gpa_t gpa, unsigned char *buf, size_t len);
void model_write(gm_gpa_t gpa, const unsigned char *buf, size_t len);
/* A window just added with handle @h to the edited layout. */
struct mwin *model_add(struct gm_window *h, enum gm_window_kind kind, gm_gpa_t gpa, uint64_t size,
		       uint64_t cap);

/* The bit of an edit's result in a mask of the results allowed. */
unsigned bit(int err);
void expect(unsigned mask, int got, gm_gpa_t gpa);
bool edit_result(unsigned mask, int got, gm_gpa_t gpa);
void check_bytes(gm_gpa_t lo, gm_gpa_t hi, bool only_written);
void check_layout(void);
void check_read(gm_gpa_t gpa, const unsigned char *got, size_t len);
void after_write(gm_gpa_t gpa, const unsigned char *data, size_t len, int want, int got);

#endif /* SPACE_DIFF_MODEL_H */
