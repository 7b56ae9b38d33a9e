/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kv.c - small side tables for the layer above (disk roots, snapshots),
 * stored in the chunk index's LMDB environment as "kv.<table>".
 *
 * The one idea: the layer above must be able to replace a disk's root in
 * the same transaction that commits the reference counts that root
 * implies.  So kv writes are staged in memory (newest first) and applied
 * by cas_sync() inside its one commit; reads see staged writes first.
 */
#include <errno.h>
#include <stdlib.h>

#include "cas/cas_int.h"

#define KV_TABLE_MAX 32

struct kv_dbi {
	char name[KV_TABLE_MAX + 4];
	MDB_dbi dbi;
};

void kv_ops_free(struct kv_op **head)
{
	while (*head) {
		struct kv_op *o = *head;
		*head = o->next;
		free(o);
	}
}

void kv_dbis_free(cas *c)
{
	free(c->kv_dbis);
	c->kv_dbis = NULL;
	c->nkv_dbis = 0;
}

static bool table_ok(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > KV_TABLE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = t[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* The table's handle, created (in its own small write transaction) on
 * first use so that it is valid in every later transaction. */
int kv_dbi_get(cas *c, const char *table, MDB_dbi *out)
{
	char name[KV_TABLE_MAX + 4] = "kv.";
	MDB_txn *txn;
	if (!table_ok(table))
		return -EINVAL;
	strcat(name, table);
	for (size_t i = 0; i < c->nkv_dbis; i++)
		if (strcmp(c->kv_dbis[i].name, name) == 0) {
			*out = c->kv_dbis[i].dbi;
			return 0;
		}
	struct kv_dbi *v = realloc(c->kv_dbis, (c->nkv_dbis + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->kv_dbis = v;
	int rc = idx_err(mdb_txn_begin(c->ix.env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = idx_err(mdb_dbi_open(txn, name, MDB_CREATE, out));
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = idx_err(mdb_txn_commit(txn));
	if (rc)
		return rc;
	memcpy(v[c->nkv_dbis].name, name, sizeof(name));
	v[c->nkv_dbis].dbi = *out;
	c->nkv_dbis++;
	return cas_renew_rtxn(c); /* let the reader see the new table */
}

const char *kv_dbi_name(const cas *c, MDB_dbi dbi)
{
	for (size_t i = 0; i < c->nkv_dbis; i++)
		if (c->kv_dbis[i].dbi == dbi)
			return c->kv_dbis[i].name + 3;
	return NULL;
}

static int kv_stage(cas *c, const char *table, const void *key, size_t klen,
		    const void *val, size_t vlen, bool del)
{
	MDB_dbi dbi;
	if (klen == 0 || klen > CAS_KV_MAX_KEY || vlen > CAS_KV_MAX_VAL)
		return -EINVAL;
	int rc = kv_dbi_get(c, table, &dbi);
	if (rc)
		return rc;
	struct kv_op *o = malloc(sizeof(*o) + klen + vlen);
	if (!o)
		return -ENOMEM;
	o->dbi = dbi;
	o->del = del;
	o->klen = klen;
	o->vlen = vlen;
	memcpy(o->data, key, klen);
	if (vlen)
		memcpy(o->data + klen, val, vlen);
	o->next = c->kv_ops;
	c->kv_ops = o;
	c->japp = false; /* the journal must see this write */
	return 0;
}

int cas_kv_put(cas *c, const char *table, const void *key, size_t klen,
	       const void *val, size_t vlen)
{
	return kv_stage(c, table, key, klen, val, vlen, false);
}

int cas_kv_del(cas *c, const char *table, const void *key, size_t klen)
{
	return kv_stage(c, table, key, klen, NULL, 0, true);
}

static struct kv_op *kv_staged(cas *c, MDB_dbi dbi, const void *key,
			       size_t klen)
{
	for (struct kv_op *o = c->kv_ops; o; o = o->next)
		if (o->dbi == dbi && o->klen == klen &&
		    memcmp(o->data, key, klen) == 0)
			return o;
	return NULL;
}

static int copy_out(const void *src, size_t n, void *val, size_t *vlen)
{
	size_t cap = *vlen;
	*vlen = n;
	if (n > cap)
		return -ENOBUFS;
	if (n)
		memcpy(val, src, n);
	return 0;
}

int cas_kv_get(cas *c, const char *table, const void *key, size_t klen,
	       void *val, size_t *vlen)
{
	MDB_dbi dbi;
	if (klen == 0 || klen > CAS_KV_MAX_KEY)
		return -EINVAL;
	int rc = kv_dbi_get(c, table, &dbi);
	if (rc)
		return rc;
	struct kv_op *o = kv_staged(c, dbi, key, klen);
	if (o)
		return o->del ? -ENOENT
			      : copy_out(o->data + klen, o->vlen, val, vlen);
	MDB_val k = {klen, (void *)key}, d;
	rc = idx_err(mdb_get(c->rtxn, dbi, &k, &d));
	return rc ? rc : copy_out(d.mv_data, d.mv_size, val, vlen);
}

int kv_apply(cas *c, MDB_txn *txn)
{
	size_t n = 0, i = 0;
	for (struct kv_op *o = c->kv_ops; o; o = o->next)
		n++;
	if (!n)
		return 0;
	struct kv_op **v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (struct kv_op *o = c->kv_ops; o; o = o->next)
		v[i++] = o;
	int rc = 0;
	while (n-- && !rc) { /* oldest first */
		struct kv_op *o = v[n];
		MDB_val k = {o->klen, o->data}, d = {o->vlen, o->data + o->klen};
		int r = o->del ? mdb_del(txn, o->dbi, &k, NULL)
			       : mdb_put(txn, o->dbi, &k, &d, 0);
		rc = (r == MDB_NOTFOUND && o->del) ? 0 : idx_err(r);
	}
	free(v);
	return rc;
}

/* ---- iteration: committed entries merged with staged ones ---- */

struct kv_ent {
	const uint8_t *k, *v;
	size_t klen, vlen;
	bool dead;
};

static int kv_cmp_key(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int d = memcmp(a, b, al < bl ? al : bl);
	return d ? d : (al < bl ? -1 : al > bl);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct kv_ent *x = a, *y = b;
	return kv_cmp_key(x->k, x->klen, y->k, y->klen);
}

int cas_kv_foreach(cas *c, const char *table, cas_kv_fn fn, void *arg)
{
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, d;
	struct kv_ent *e = NULL;
	size_t n = 0, cap = 0;
	int rc = kv_dbi_get(c, table, &dbi);
	if (rc)
		return rc;
	rc = idx_err(mdb_cursor_open(c->rtxn, dbi, &cur));
	if (rc)
		return rc;
	size_t nops = 0;
	for (struct kv_op *o = c->kv_ops; o; o = o->next)
		nops++;
	for (int q = mdb_cursor_get(cur, &k, &d, MDB_FIRST);; q = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64 + nops;
			struct kv_ent *ne = realloc(e, cap * sizeof(*e));
			if (!ne) {
				rc = -ENOMEM;
				break;
			}
			e = ne;
		}
		if (q) {
			if (q != MDB_NOTFOUND)
				rc = -EIO;
			break;
		}
		e[n++] = (struct kv_ent){k.mv_data, d.mv_data, k.mv_size,
					 d.mv_size, false};
	}
	mdb_cursor_close(cur);
	if (rc)
		goto out;
	/* Overlay staged operations, newest first: the first one seen for
	 * a key wins. */
	size_t ncommitted = n;
	for (struct kv_op *o = c->kv_ops; o && !rc; o = o->next) {
		if (o->dbi != dbi)
			continue;
		bool seen = false;
		for (size_t i = ncommitted; i < n && !seen; i++)
			seen = kv_cmp_key(e[i].k, e[i].klen, o->data, o->klen) == 0;
		if (seen)
			continue;
		for (size_t i = 0; i < ncommitted; i++)
			if (!e[i].dead &&
			    kv_cmp_key(e[i].k, e[i].klen, o->data, o->klen) == 0)
				e[i].dead = true;
		if (n == cap) {
			cap *= 2;
			struct kv_ent *ne = realloc(e, cap * sizeof(*e));
			if (!ne) {
				rc = -ENOMEM;
				break;
			}
			e = ne;
		}
		e[n++] = (struct kv_ent){o->data, o->data + o->klen, o->klen,
					 o->vlen, o->del};
	}
	if (rc)
		goto out;
	qsort(e, n, sizeof(*e), cmp_ent);
	for (size_t i = 0; i < n && !rc; i++)
		if (!e[i].dead)
			rc = fn(arg, e[i].k, e[i].klen, e[i].v, e[i].vlen);
out:
	free(e);
	return rc;
}
