/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * msix.c - MSI-X for cavm's PCI devices: the capability, the vector table
 * and the PBA, each vector routed through KVM's GSI routing table with an
 * irqfd, so any thread raises it with one eventfd write.
 *
 * The one idea: masking is done here, not in KVM.  A masked vector (or a
 * masked function) sets its pending bit instead of writing the eventfd;
 * unmasking with the bit set delivers it.  The KVM route follows every
 * table write, so an unmasked vector always goes where the guest said.
 *
 * Invariants: msix.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/endian.h"
#include "hypervisor/msix.h"

static bool masked(const struct msix *m, unsigned v)
{
	return m->maskall || (le32_get(m->table + v * MSIX_ENTRY_SIZE + 12) &
			      MSIX_VECTOR_MASKED);
}

static void fire(struct msix *m, unsigned v)
{
	uint64_t one = 1;
	ssize_t w = write(m->efd[v], &one, sizeof(one));
	(void)w; /* an eventfd write only fails on overflow: still raised */
	m->raised++;
}

/* Route v to its message; deliver it if pending and now unmasked.  Lock
 * held. */
static void sync_vector(struct msix *m, unsigned v)
{
	const uint8_t *e = m->table + v * MSIX_ENTRY_SIZE;
	bool off = !m->enabled || masked(m, v);
	int rc = cavm_msi_route(m->vm, m->gsi[v], le64_get(e), le32_get(e + 8),
				off);
	if (rc)
		cavm_log(m->vm, CAVM_LOG_WARN, "MSI-X vector %u: routing: %s",
			 v, strerror(-rc));
	if (!off && (m->pending & (1ull << v))) {
		m->pending &= ~(1ull << v);
		fire(m, v);
	}
}

int msix_init(struct msix *m, struct pci_dev *d, unsigned n, unsigned bar,
	      uint32_t table_off, uint32_t pba_off)
{
	int rc;
	if (!n || n > MSIX_MAX_VECTORS)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->n = n;
	for (unsigned v = 0; v < n; v++) {
		m->efd[v] = -1;
		le32_put(m->table + v * MSIX_ENTRY_SIZE + 12,
			 MSIX_VECTOR_MASKED); /* reset state: masked */
	}
	rc = pci_dev_add_cap(d, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (rc < 0)
		return rc;
	m->cap = (unsigned)rc;
	le16_put(d->cfg + m->cap + 2, (uint16_t)(n - 1));
	le32_put(d->cfg + m->cap + 4, table_off | bar);
	le32_put(d->cfg + m->cap + 8, pba_off | bar);
	le16_put(d->wmask + m->cap + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

/* A GSI, an eventfd and an irqfd per vector. */
static int msix_wire(struct msix *m)
{
	for (unsigned v = 0; v < m->n; v++) {
		if (m->efd[v] >= 0)
			continue;
		int rc = cavm_msi_alloc(m->vm, &m->gsi[v]);
		if (rc)
			return rc;
		m->efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->efd[v] < 0)
			return -errno;
		rc = cavm_msi_route(m->vm, m->gsi[v], 0, 0, true);
		if (!rc)
			rc = cavm_irqfd(m->vm, m->efd[v], m->gsi[v], true);
		if (rc)
			return rc;
	}
	return 0;
}

void msix_destroy(struct msix *m)
{
	for (unsigned v = 0; v < m->n && m->vm; v++)
		if (m->efd[v] >= 0) {
			cavm_irqfd(m->vm, m->efd[v], m->gsi[v], false);
			close(m->efd[v]);
			m->efd[v] = -1;
		}
	pthread_mutex_destroy(&m->lock);
}

void msix_cfg_written(struct msix *m, struct pci_dev *d)
{
	uint16_t ctrl = pci_cfg16(d, m->cap + 2);
	pthread_mutex_lock(&m->lock);
	bool was = m->enabled && !m->maskall;
	m->enabled = ctrl & MSIX_CTRL_ENABLE;
	m->maskall = ctrl & MSIX_CTRL_MASKALL;
	if (was != (m->enabled && !m->maskall))
		for (unsigned v = 0; v < m->n; v++)
			sync_vector(m, v);
	pthread_mutex_unlock(&m->lock);
}

void msix_table_access(struct msix *m, uint64_t off, uint8_t *data,
		       unsigned len, bool is_write)
{
	bool ok = (len == 4 || len == 8) && off % len == 0 &&
		  off + len <= (uint64_t)m->n * MSIX_ENTRY_SIZE;
	if (!ok) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (is_write) {
		memcpy(m->table + off, data, len);
		sync_vector(m, (unsigned)(off / MSIX_ENTRY_SIZE));
	} else {
		memcpy(data, m->table + off, len);
	}
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, unsigned len,
		     bool is_write)
{
	if (is_write)
		return;
	memset(data, 0, len);
	pthread_mutex_lock(&m->lock);
	uint8_t pba[8];
	le64_put(pba, m->pending);
	for (unsigned i = 0; i < len; i++)
		if (off + i < sizeof(pba))
			data[i] = pba[off + i];
	pthread_mutex_unlock(&m->lock);
}

bool msix_enabled(struct msix *m)
{
	pthread_mutex_lock(&m->lock);
	bool on = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return on;
}

bool msix_raise(struct msix *m, unsigned v)
{
	pthread_mutex_lock(&m->lock);
	bool ok = m->enabled && v < m->n && m->efd[v] >= 0;
	if (ok) {
		if (masked(m, v))
			m->pending |= 1ull << v;
		else
			fire(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	return ok;
}

int msix_setup_irqs(struct msix *m, struct cavm *vm)
{
	pthread_mutex_lock(&m->lock);
	m->vm = vm;
	int rc = msix_wire(m);
	pthread_mutex_unlock(&m->lock);
	return rc;
}
