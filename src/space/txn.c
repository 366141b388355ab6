/* SPDX-License-Identifier: MIT */
/*
 * txn.c - transactions of the space layer: gm_space_begin(), _abort(),
 * _commit() and _synchronize(), and the start and end of every edit (an
 * edit joins the calling thread's transaction or runs in an implicit one).
 * The state diagram and invariant 7 (who owns the open transaction) are in
 * space-internal.h; the commit itself is commit.c.
 */
#include "space-internal.h"

#include <errno.h>

/* The address of this byte is the calling thread's token (invariant 7). */
_Thread_local char gm__space_thread_token;

/* Open a transaction; called with space->lock held and none open. */
static int txn_open(struct gm_space *s)
{
	int err = gm__layout_clone(s->current, &s->staging);

	if (err)
		return err;
	s->depth = 1;
	s->doom = 0;
	s->changed = false;
	/* Paired with owned_by_me() in this same thread only (invariant 7). */
	__atomic_store_n(&s->owner, my_token(), __ATOMIC_RELAXED);
	return 0;
}

/* Close the transaction and release space->lock. */
void gm__space_txn_close(struct gm_space *s)
{
	gm__layout_free(s->staging);
	s->staging = NULL;
	s->depth = 0;
	s->doom = 0;
	s->changed = false;
	__atomic_store_n(&s->owner, (uintptr_t)0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Start an edit: join the calling thread's open transaction, or open an
 * implicit one. *@implicit tells gm__space_edit_end() which. On error
 * nothing is held.
 */
int gm__space_edit_begin(struct gm_space *s, bool *implicit)
{
	int err;

	if (owned_by_me(s)) {
		if (s->in_callback)
			return -EDEADLK;
		if (s->doom)
			return -ECANCELED;
		*implicit = false;
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	err = txn_open(s);
	if (err) {
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	*implicit = true;
	return 0;
}

/*
 * Finish an edit whose result is @err: a failure dooms an explicit
 * transaction, and discards an implicit one; a success of an implicit
 * edit is committed. Returns the edit's result or the commit's.
 */
int gm__space_edit_end(struct gm_space *s, bool implicit, int err)
{
	if (!err)
		s->changed = true;
	if (!implicit) {
		if (err && !s->doom)
			s->doom = err;
		return err;
	}
	if (err) {
		gm__space_txn_close(s);
		return err;
	}
	return gm__space_commit_locked(s);
}

int gm_space_begin(struct gm_space *s)
{
	int err;

	if (!s)
		return -EINVAL;
	if (owned_by_me(s)) {
		if (s->in_callback)
			return -EDEADLK;
		s->depth++;
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	err = txn_open(s);
	if (err)
		pthread_mutex_unlock(&s->lock);
	return err;
}

int gm_space_abort(struct gm_space *s)
{
	if (!s)
		return -EINVAL;
	if (!owned_by_me(s) || s->in_callback)
		return -EPERM;
	if (s->depth > 1) {
		s->depth--;
		if (!s->doom)
			s->doom = -ECANCELED;
		return 0;
	}
	gm__space_txn_close(s);
	return 0;
}

int gm_space_commit(struct gm_space *s)
{
	if (!s)
		return -EINVAL;
	if (!owned_by_me(s) || s->in_callback)
		return -EPERM;
	if (s->depth > 1) {
		s->depth--;
		return s->doom;
	}
	return gm__space_commit_locked(s);
}

int gm_space_synchronize(struct gm_space *s)
{
	bool mine;

	if (!s)
		return -EINVAL;
	if (gm_rcu_read_ongoing())
		return -EDEADLK;
	mine = owned_by_me(s);
	if (mine && s->in_callback)
		return -EDEADLK;
	if (!mine)
		pthread_mutex_lock(&s->lock);
	gm__space_reclaim(s);
	if (!mine)
		pthread_mutex_unlock(&s->lock);
	return 0;
}
