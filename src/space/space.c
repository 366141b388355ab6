/* SPDX-License-Identifier: MIT */
/*
 * space.c - the space object (new, free, flags, generation), its current
 * view as readers take it (gm_space_memory(), gm_space_memory_get()), and
 * the registration of listeners. The state, its lock order and its
 * invariants are in space-internal.h.
 */
#include "space-internal.h"

#include <errno.h>
#include <stdlib.h>

int gm_space_new(unsigned flags, struct gm_space **out)
{
	struct gm_space *s;
	int err;

	if (!out || (flags & ~GM_SPACE_PIO))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->flags = flags;
	s->next_id = 1;
	s->current = calloc(1, sizeof(*s->current));
	if (!s->current) {
		err = -ENOMEM;
		goto err_free;
	}
	err = gm_memory_new(NULL, 0, &s->current->view);
	if (err)
		goto err_layout;
	err = -pthread_mutex_init(&s->lock, NULL);
	if (err)
		goto err_layout;
	err = -pthread_mutex_init(&s->view_lock, NULL);
	if (err)
		goto err_lock;
	*out = s;
	return 0;

err_lock:
	pthread_mutex_destroy(&s->lock);
err_layout:
	gm_memory_put(s->current->view);
	free(s->current);
err_free:
	free(s);
	return err;
}

void gm_space_free(struct gm_space *s)
{
	struct gm_space_listener *l;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	/* Retire the current layout too: a reader may still be inside it. */
	s->current->next_retired = s->retired;
	s->retired = s->current;
	s->current = NULL;
	gm__space_reclaim(s);
	pthread_mutex_unlock(&s->lock);
	while ((l = s->listeners)) {
		s->listeners = l->next;
		free(l);
	}
	pthread_mutex_destroy(&s->view_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

unsigned gm_space_flags(const struct gm_space *s)
{
	return s ? s->flags : 0;
}

uint64_t gm_space_generation(const struct gm_space *s)
{
	return s ? __atomic_load_n(&s->generation, __ATOMIC_RELAXED) : 0;
}

struct gm_memory *gm_space_memory(struct gm_space *s)
{
	return current_layout(s)->view;
}

int gm_space_memory_get(struct gm_space *s, struct gm_memory **out)
{
	if (!s || !out)
		return -EINVAL;
	/* Under view_lock current cannot be replaced, so cannot be freed (invariant 5). */
	pthread_mutex_lock(&s->view_lock);
	*out = gm_memory_get(s->current->view);
	pthread_mutex_unlock(&s->view_lock);
	return 0;
}

/* ---- listeners ---- */

int gm_space_listener_add(struct gm_space *s, const struct gm_space_listener_ops *ops, void *opaque,
			  struct gm_space_listener **out)
{
	struct gm_space_listener *l, **tail;
	struct gm_space_change *ch = NULL;
	const struct layout *cur;
	size_t i;
	int err = 0;

	if (!s || !ops)
		return -EINVAL;
	if (owned_by_me(s))
		return -EDEADLK;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* The library's own copy: callbacks past the caller's sz are NULL. */
	err = GM_ABI_COPY_IN(&l->ops, ops);
	if (err) {
		free(l);
		return err;
	}
	l->opaque = opaque;
	pthread_mutex_lock(&s->lock);
	cur = s->current;
	if (cur->nregions) {
		ch = calloc(cur->nregions, sizeof(*ch));
		if (!ch) {
			err = -ENOMEM;
			goto out;
		}
		for (i = 0; i < cur->nregions; i++)
			ch[i] = (struct gm_space_change){.kind = GM_CHANGE_ADD,
							 .region = cur->regions[i]};
		s->in_callback = true;
		if (l->ops.prepare)
			err = l->ops.prepare(opaque, s, ch, cur->nregions);
		if (!err && l->ops.commit)
			l->ops.commit(opaque, s, ch, cur->nregions);
		s->in_callback = false;
		if (err > 0)
			err = -err;
		if (err)
			goto out;
	}
	for (tail = &s->listeners; *tail; tail = &(*tail)->next)
		;
	*tail = l;
	if (out)
		*out = l;
	l = NULL;
out:
	pthread_mutex_unlock(&s->lock);
	free(ch);
	free(l);
	return err;
}

int gm_space_listener_remove(struct gm_space *s, struct gm_space_listener *l)
{
	struct gm_space_listener **p;
	int err = -ENOENT;

	if (!s || !l)
		return -EINVAL;
	if (owned_by_me(s))
		return -EDEADLK;
	pthread_mutex_lock(&s->lock);
	for (p = &s->listeners; *p; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			free(l);
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}
