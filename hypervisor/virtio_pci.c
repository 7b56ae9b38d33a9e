/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio_pci.c - the virtio 1.x modern PCI transport ("Virtio Over PCI
 * Bus"): vendor capabilities pointing into BAR0 (common config, notify,
 * ISR, device config) plus the PCI configuration access capability,
 * MSI-X in BAR1, notifications through ioeventfds, the device status
 * state machine, config generation, device reset.
 *
 * The one idea: every register is decoded here, with the spec's rules,
 * from exactly the (offset, width) the driver used; a device model only
 * sees "features chosen", "queue q has these rings", "reset", and raises
 * interrupts.  Writes of a wrong width or to a read-only field change
 * nothing (debug log), reads of holes return zero.
 *
 * Invariants:
 *  - FEATURES_OK is only set if the device accepted the driver's
 *    features; queue registers only change while the queue is disabled
 *    and before DRIVER_OK; an MSI-X vector register holds a valid vector
 *    or NO_VECTOR (what the driver reads back tells it which).
 *  - A reset (status 0) clears every register and starts ops->reset;
 *    until the device reports it done (virtio_pci_reset_done) the
 *    driver reads the old status back and its writes are ignored, so
 *    a driver that waits for 0, as the spec says, finds the device idle.
 *    No vCPU ever waits for the device (cavm.h: handlers never block
 *    on the store).
 *  - Lock order: bus lock, vp->lock, msix lock.  ops are called with
 *    neither vp->lock nor (except cfg accesses) anything else held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/endian.h"
#include "hypervisor/msix.h"
#include "hypervisor/pci.h"
#include "hypervisor/virtio_pci.h"

/* vendor capability cfg_type */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
#define CAP_PCI_CFG 5
#define CAP_LEN 16
#define CAP_NOTIFY_LEN 20
#define CAP_PCI_CFG_LEN 20

struct vq_regs {
	uint16_t size, msix;
	bool enabled;
	uint64_t desc, driver, device;
	uint32_t epoch;
	int kick; /* eventfd */
};

struct virtio_pci {
	struct pci_dev pci;
	struct msix msix;
	struct cavm *vm;
	const struct virtio_pci_ops *ops;
	void *opaque;
	pthread_mutex_t lock;

	unsigned nq;
	uint16_t max_size;
	uint32_t dev_feat_sel, drv_feat_sel;
	uint64_t drv_features;
	uint16_t config_msix;
	uint8_t status;
	bool resetting;     /* ops->reset started, not yet done */
	uint8_t old_status; /* what the driver reads meanwhile */
	uint8_t generation;
	uint16_t queue_sel;
	uint8_t isr;
	bool intx_up;
	uint64_t irqs;
	unsigned pci_cfg_cap; /* offset of the PCI config access cap */
	struct vq_regs q[VIRTIO_PCI_MAX_QUEUES];
};

static void add_vcap(struct pci_dev *d, uint8_t type, uint32_t off,
		     uint32_t len, unsigned caplen, int *at)
{
	int c = pci_dev_add_cap(d, PCI_CAP_ID_VNDR, caplen);
	if (c < 0) {
		*at = c;
		return;
	}
	d->cfg[c + 2] = (uint8_t)caplen;
	d->cfg[c + 3] = type;
	d->cfg[c + 4] = VPCI_BAR_VIRTIO;
	le32_put(d->cfg + c + 8, off);
	le32_put(d->cfg + c + 12, len);
	*at = c;
}

/* ---- interrupts ---- */

static void set_intx(struct virtio_pci *vp, bool up)
{
	if (vp->intx_up == up)
		return;
	vp->intx_up = up;
	cavm_irq_line(vp->vm, vp->pci.gsi, up);
}

/* Raise 'vector' (MSI-X) or, with MSI-X off, the INTx line for ISR bit
 * 'isr_bit'.  vp->lock held. */
static void raise_irq(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	vp->isr |= isr_bit;
	vp->irqs++;
	if (msix_enabled(&vp->msix)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			msix_raise(&vp->msix, vector);
		return;
	}
	/* The command register's INTx disable (written under the bus
	 * lock; one byte, read once). */
	uint8_t cmd_hi = __atomic_load_n(&vp->pci.cfg[PCI_COMMAND + 1],
					 __ATOMIC_RELAXED);
	if (!(cmd_hi & (PCI_COMMAND_INTX_DISABLE >> 8)))
		set_intx(vp, true);
}

void virtio_pci_queue_irq(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->nq)
		return;
	pthread_mutex_lock(&vp->lock);
	raise_irq(vp, vp->q[q].msix, 1);
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->generation++;
	if (vp->status & VIRTIO_S_DRIVER_OK)
		raise_irq(vp, vp->config_msix, 2);
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_needs_reset(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	if (!(vp->status & VIRTIO_S_NEEDS_RESET) && vp->status) {
		vp->status |= VIRTIO_S_NEEDS_RESET;
		raise_irq(vp, vp->config_msix, 2);
	}
	pthread_mutex_unlock(&vp->lock);
}

uint8_t virtio_pci_status(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	uint8_t s = vp->status;
	pthread_mutex_unlock(&vp->lock);
	return s;
}

uint64_t virtio_pci_irqs(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	uint64_t n = vp->irqs;
	pthread_mutex_unlock(&vp->lock);
	return n;
}

/* ---- queues, seen from the device ---- */

int virtio_pci_kick_fd(struct virtio_pci *vp, unsigned q)
{
	return q < vp->nq ? vp->q[q].kick : -1;
}

void virtio_pci_kick_clear(struct virtio_pci *vp, unsigned q)
{
	uint64_t v;
	if (q < vp->nq) {
		ssize_t r = read(vp->q[q].kick, &v, sizeof(v));
		(void)r; /* EAGAIN: nothing was pending */
	}
}

static void kick(struct virtio_pci *vp, unsigned q)
{
	uint64_t one = 1;
	ssize_t w = write(vp->q[q].kick, &one, sizeof(one));
	(void)w;
}

bool virtio_pci_queue(struct virtio_pci *vp, unsigned q,
		      struct virtio_pci_queue *out)
{
	bool ok = false;
	if (q >= vp->nq)
		return false;
	pthread_mutex_lock(&vp->lock);
	const struct vq_regs *r = &vp->q[q];
	if (r->enabled && !vp->resetting && (vp->status & VIRTIO_S_DRIVER_OK) &&
	    !(vp->status & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED))) {
		*out = (struct virtio_pci_queue){r->size, r->desc, r->driver,
						 r->device, r->epoch};
		ok = true;
	}
	pthread_mutex_unlock(&vp->lock);
	return ok;
}

/* ---- the common configuration structure ---- */

static uint64_t common_read(struct virtio_pci *vp, unsigned off)
{
	const struct vq_regs *r =
		vp->queue_sel < vp->nq ? &vp->q[vp->queue_sel] : NULL;
	uint64_t f;
	switch (off) {
	case 0x00:
		return vp->dev_feat_sel;
	case 0x04:
		f = vp->ops->features(vp->opaque);
		return vp->dev_feat_sel < 2
			       ? (uint32_t)(f >> (32 * vp->dev_feat_sel))
			       : 0;
	case 0x08:
		return vp->drv_feat_sel;
	case 0x0c:
		return vp->drv_feat_sel < 2
			       ? (uint32_t)(vp->drv_features >>
					    (32 * vp->drv_feat_sel))
			       : 0;
	case 0x10:
		return vp->config_msix;
	case 0x12:
		return vp->nq;
	case 0x14:
		return vp->resetting ? vp->old_status : vp->status;
	case 0x15:
		return vp->generation;
	case 0x16:
		return vp->queue_sel;
	case 0x18:
		return r ? r->size : 0;
	case 0x1a:
		return r ? r->msix : VIRTIO_MSI_NO_VECTOR;
	case 0x1c:
		return r ? r->enabled : 0;
	case 0x1e:
		return r ? vp->queue_sel : 0; /* queue_notify_off */
	case 0x20:
		return r ? r->desc : 0;
	case 0x28:
		return r ? r->driver : 0;
	case 0x30:
		return r ? r->device : 0;
	}
	return 0;
}

/* Width of the field at off (0: no field starts there). */
static unsigned field_width(unsigned off)
{
	if (off < 0x10)
		return off % 4 ? 0 : 4;
	if (off >= 0x20 && off < 0x38)
		return off % 8 ? 0 : 8;
	switch (off) {
	case 0x10:
	case 0x12:
	case 0x16:
	case 0x18:
	case 0x1a:
	case 0x1c:
	case 0x1e:
		return 2;
	case 0x14:
	case 0x15:
		return 1;
	}
	return 0;
}

static uint16_t valid_vector(struct virtio_pci *vp, uint16_t v)
{
	return v < vp->msix.n ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Returns true if the device must be reset (outside the lock). */
static bool status_write(struct virtio_pci *vp, uint8_t v)
{
	if (!v)
		return true; /* the caller resets */
	if ((v & VIRTIO_S_FEATURES_OK) &&
	    !(vp->status & VIRTIO_S_FEATURES_OK)) {
		if (vp->ops->set_features(vp->opaque, vp->drv_features) < 0) {
			cavm_log(vp->vm, CAVM_LOG_DEBUG,
				 "virtio 00:%02x.0: features %#llx refused",
				 vp->pci.slot,
				 (unsigned long long)vp->drv_features);
			v &= (uint8_t)~VIRTIO_S_FEATURES_OK;
		}
	}
	if ((v & VIRTIO_S_DRIVER_OK) && !(vp->status & VIRTIO_S_DRIVER_OK))
		for (unsigned q = 0; q < vp->nq; q++)
			if (vp->q[q].enabled)
				kick(vp, q); /* look at what is there */
	/* DEVICE_NEEDS_RESET is the device's to set; only a reset clears. */
	vp->status = (uint8_t)((v & ~VIRTIO_S_NEEDS_RESET) |
			       (vp->status & VIRTIO_S_NEEDS_RESET));
	return false;
}

static void reset_regs(struct virtio_pci *vp)
{
	vp->dev_feat_sel = vp->drv_feat_sel = 0;
	vp->drv_features = 0;
	vp->config_msix = VIRTIO_MSI_NO_VECTOR;
	vp->status = 0;
	vp->queue_sel = 0;
	vp->isr = 0;
	set_intx(vp, false);
	for (unsigned q = 0; q < vp->nq; q++) {
		struct vq_regs *r = &vp->q[q];
		r->size = vp->max_size;
		r->msix = VIRTIO_MSI_NO_VECTOR;
		r->enabled = false;
		r->desc = r->driver = r->device = 0;
		r->epoch++;
	}
}

/* Returns true if the device must be reset (outside the lock). */
static bool common_write(struct virtio_pci *vp, unsigned off, uint64_t v,
			 unsigned len)
{
	struct vq_regs *r =
		vp->queue_sel < vp->nq ? &vp->q[vp->queue_sel] : NULL;
	/* 64-bit queue addresses may come as two 32-bit halves. */
	if (len == 4 && off >= 0x20 && off < 0x38) {
		unsigned base = off & ~7u, hi = off & 4;
		uint64_t old = common_read(vp, base);
		v = hi ? (old & 0xffffffffull) | v << 32
		       : (old & ~0xffffffffull) | v;
		off = base;
		len = 8;
	}
	if (field_width(off) != len || vp->resetting)
		goto ignored;
	bool qlocked = !r || r->enabled || (vp->status & VIRTIO_S_DRIVER_OK);
	switch (off) {
	case 0x00:
		vp->dev_feat_sel = (uint32_t)v;
		return false;
	case 0x08:
		vp->drv_feat_sel = (uint32_t)v;
		return false;
	case 0x0c:
		if (vp->drv_feat_sel >= 2 ||
		    (vp->status & VIRTIO_S_FEATURES_OK))
			goto ignored;
		vp->drv_features &= ~(0xffffffffull << (32 * vp->drv_feat_sel));
		vp->drv_features |= (v & 0xffffffffull)
				    << (32 * vp->drv_feat_sel);
		return false;
	case 0x10:
		vp->config_msix = valid_vector(vp, (uint16_t)v);
		return false;
	case 0x14:
		return status_write(vp, (uint8_t)v);
	case 0x16:
		vp->queue_sel = (uint16_t)v;
		return false;
	case 0x18:
		if (qlocked)
			goto ignored;
		r->size = (uint16_t)v; /* checked by the device: a bad one
					  breaks it (vblk_ring_begin) */
		return false;
	case 0x1a:
		if (!r)
			goto ignored;
		r->msix = valid_vector(vp, (uint16_t)v);
		return false;
	case 0x1c:
		if (!r || (uint16_t)v != 1 || r->enabled)
			goto ignored; /* only the driver's 1 counts */
		r->enabled = true;
		r->epoch++;
		return false;
	case 0x20:
	case 0x28:
	case 0x30:
		if (qlocked)
			goto ignored;
		*(off == 0x20   ? &r->desc
		  : off == 0x28 ? &r->driver
				: &r->device) = v;
		return false;
	}
ignored:
	cavm_log(vp->vm, CAVM_LOG_DEBUG,
		 "virtio 00:%02x.0: common config write of %u bytes at %#x "
		 "ignored",
		 vp->pci.slot, len, off);
	return false;
}

/* Status 0 was written (lock held): clear the registers; true if the
 * device must be told (outside the lock).  A device that was never
 * past status 0 has nothing to forget. */
static bool reset_begin(struct virtio_pci *vp)
{
	uint8_t old = vp->status;
	reset_regs(vp);
	if (vp->resetting || !old)
		return false;
	vp->resetting = true;
	vp->old_status = old;
	return true;
}

void virtio_pci_reset_done(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->resetting = false;
	pthread_mutex_unlock(&vp->lock);
}

/* ---- BAR0 ---- */

void virtio_pci_bar_access(void *opaque, uint64_t off, uint8_t *data,
			   unsigned len, bool is_write)
{
	struct virtio_pci *vp = opaque;
	bool reset = false;
	uint8_t buf[8] = {0};

	if (len > 8)
		return;
	if (off < VPCI_COMMON_OFF + VPCI_COMMON_LEN) {
		pthread_mutex_lock(&vp->lock);
		if (is_write) {
			uint64_t v = 0;
			memcpy(buf, data, len);
			v = le64_get(buf);
			reset = common_write(vp, (unsigned)off, v, len) &&
				reset_begin(vp);
		} else {
			uint64_t v = 0;
			if (len == 4 && off >= 0x20 && off < 0x38 &&
			    off % 4 == 0)
				v = common_read(vp, (unsigned)(off & ~7u)) >>
				    (off & 4 ? 32 : 0);
			else if (field_width((unsigned)off) == len)
				v = common_read(vp, (unsigned)off);
			le64_put(buf, v);
			memcpy(data, buf, len);
		}
		pthread_mutex_unlock(&vp->lock);
		if (reset)
			vp->ops->reset(vp->opaque);
		return;
	}
	if (off >= VPCI_ISR_OFF && off < VPCI_ISR_OFF + 4) {
		if (is_write)
			return;
		memset(data, 0, len);
		pthread_mutex_lock(&vp->lock);
		if (off == VPCI_ISR_OFF) {
			data[0] = vp->isr; /* read to clear */
			vp->isr = 0;
			set_intx(vp, false);
		}
		pthread_mutex_unlock(&vp->lock);
		return;
	}
	if (off >= VPCI_DEVICE_OFF && off < VPCI_DEVICE_OFF + VPCI_DEVICE_LEN) {
		uint8_t cfg[VPCI_DEVICE_LEN];
		off -= VPCI_DEVICE_OFF;
		if (is_write || off + len > VPCI_DEVICE_LEN) {
			if (!is_write)
				memset(data, 0, len);
			return; /* no writable device config */
		}
		vp->ops->config(vp->opaque, cfg, (size_t)(off + len));
		memcpy(data, cfg + off, len);
		return;
	}
	if (off >= VPCI_NOTIFY_OFF &&
	    off < VPCI_NOTIFY_OFF + vp->nq * VPCI_NOTIFY_MULT) {
		/* The ioeventfd takes these writes; one of a width it was
		 * not registered for lands here and does the same. */
		if (is_write)
			kick(vp, (unsigned)(off - VPCI_NOTIFY_OFF) /
					 VPCI_NOTIFY_MULT);
		else
			memset(data, 0, len);
		return;
	}
	if (!is_write)
		memset(data, 0, len);
}

static void msix_bar_access(void *opaque, uint64_t off, uint8_t *data,
			    unsigned len, bool is_write)
{
	struct virtio_pci *vp = opaque;
	if (off >= VPCI_MSIX_PBA_OFF)
		msix_pba_access(&vp->msix, off - VPCI_MSIX_PBA_OFF, data, len,
				is_write);
	else
		msix_table_access(&vp->msix, off - VPCI_MSIX_TABLE_OFF, data,
				  len, is_write);
}

/* ---- PCI hooks ---- */

/* VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through config space
 * (cap.bar, cap.offset, cap.length; then pci_cfg_data). */
static void pci_cfg_window(struct virtio_pci *vp, unsigned reg, unsigned len,
			   bool is_write)
{
	struct pci_dev *d = &vp->pci;
	unsigned c = vp->pci_cfg_cap, dat = c + 16;
	if (reg + len <= dat || reg >= dat + 4)
		return;
	unsigned bar = d->cfg[c + 4];
	uint32_t off = pci_cfg32(d, c + 8), n = pci_cfg32(d, c + 12);
	if (bar >= PCI_NUM_BARS || !d->bar[bar].size ||
	    (n != 1 && n != 2 && n != 4) || off % n ||
	    off + n > d->bar[bar].size)
		return;
	if (is_write)
		d->bar[bar].fn(d->bar[bar].opaque, off, d->cfg + dat, n, true);
	else
		d->bar[bar].fn(d->bar[bar].opaque, off, d->cfg + dat, n, false);
}

static void cfg_access(struct pci_dev *d, unsigned reg, unsigned len,
		       bool is_write)
{
	struct virtio_pci *vp = d->opaque;
	unsigned m = vp->msix.cap;
	if (is_write && reg < m + 4 && reg + len > m + 2)
		msix_cfg_written(&vp->msix, d);
	pci_cfg_window(vp, reg, len, is_write);
}

static void bar_moved(struct pci_dev *d, unsigned bar, uint64_t addr, bool on)
{
	struct virtio_pci *vp = d->opaque;
	if (bar != VPCI_BAR_VIRTIO)
		return;
	for (unsigned q = 0; q < vp->nq; q++) {
		uint64_t a = addr + VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT;
		int rc = cavm_ioeventfd(vp->vm, vp->q[q].kick, a, 0, false, on);
		if (rc)
			cavm_log(vp->vm, CAVM_LOG_WARN,
				 "virtio 00:%02x.0: ioeventfd at %#llx: %s "
				 "(notifications go through exits)",
				 d->slot, (unsigned long long)a, strerror(-rc));
	}
}

static const struct pci_dev_ops vpci_ops = {cfg_access, bar_moved};

int virtio_pci_create(struct cavm *vm, unsigned device_id, uint32_t class_code,
		      unsigned nqueues, uint16_t max_size,
		      const struct virtio_pci_ops *ops, void *opaque,
		      struct virtio_pci **out)
{
	struct virtio_pci *vp;
	int rc, at = 0;
	*out = NULL;
	if (!nqueues || nqueues > VIRTIO_PCI_MAX_QUEUES || !max_size ||
	    (max_size & (max_size - 1)) || max_size > 32768)
		return -EINVAL;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	vp->vm = vm;
	vp->ops = ops;
	vp->opaque = opaque;
	vp->nq = nqueues;
	vp->max_size = max_size;
	pthread_mutex_init(&vp->lock, NULL);
	for (unsigned q = 0; q < nqueues; q++)
		vp->q[q].kick = -1;
	for (unsigned q = 0; q < nqueues; q++) {
		vp->q[q].kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->q[q].kick < 0) {
			rc = -errno;
			goto fail;
		}
	}
	reset_regs(vp);

	struct pci_dev *d = &vp->pci;
	/* Modern-only device id 0x1040 + type, revision 1. */
	pci_dev_init(d, VIRTIO_PCI_VENDOR,
		     (uint16_t)(VIRTIO_PCI_DEVICE_BASE + device_id), class_code,
		     1, VIRTIO_PCI_VENDOR, (uint16_t)(0x40 + device_id));
	d->ops = &vpci_ops;
	d->opaque = vp;
	rc = pci_dev_add_bar(d, VPCI_BAR_VIRTIO, VPCI_BAR_SIZE,
			     virtio_pci_bar_access, vp);
	if (!rc)
		rc = pci_dev_add_bar(d, VPCI_BAR_MSIX, VPCI_MSIX_BAR_SIZE,
				     msix_bar_access, vp);
	if (rc)
		goto fail;
	add_vcap(d, CAP_COMMON, VPCI_COMMON_OFF, VPCI_COMMON_LEN, CAP_LEN, &at);
	if (at >= 0)
		add_vcap(d, CAP_NOTIFY, VPCI_NOTIFY_OFF,
			 nqueues * VPCI_NOTIFY_MULT, CAP_NOTIFY_LEN, &at);
	if (at >= 0)
		le32_put(d->cfg + at + 16, VPCI_NOTIFY_MULT);
	if (at >= 0)
		add_vcap(d, CAP_ISR, VPCI_ISR_OFF, 4, CAP_LEN, &at);
	if (at >= 0)
		add_vcap(d, CAP_DEVICE, VPCI_DEVICE_OFF, VPCI_DEVICE_LEN,
			 CAP_LEN, &at);
	if (at >= 0)
		add_vcap(d, CAP_PCI_CFG, 0, 0, CAP_PCI_CFG_LEN, &at);
	if (at < 0) {
		rc = at;
		goto fail;
	}
	vp->pci_cfg_cap = (unsigned)at;
	/* bar, offset, length and data of the window are the driver's */
	d->wmask[at + 4] = 0xff;
	memset(d->wmask + at + 8, 0xff, 12);
	rc = msix_init(&vp->msix, d, nqueues + 1, VPCI_BAR_MSIX,
		       VPCI_MSIX_TABLE_OFF, VPCI_MSIX_PBA_OFF);
	if (rc)
		goto fail;
	rc = msix_setup_irqs(&vp->msix, vm);
	if (rc)
		goto fail_msix;
	rc = pci_register(vm, d);
	if (rc)
		goto fail_msix;
	*out = vp;
	return 0;
fail_msix:
	msix_destroy(&vp->msix);
fail:
	for (unsigned q = 0; q < nqueues; q++)
		if (vp->q[q].kick >= 0)
			close(vp->q[q].kick);
	pthread_mutex_destroy(&vp->lock);
	free(vp);
	return rc;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (!vp)
		return;
	/* The vCPUs have stopped: no handler runs again, so the bus's
	 * pointer to us is never followed after this. */
	if (vp->pci.bar[VPCI_BAR_VIRTIO].on)
		bar_moved(&vp->pci, VPCI_BAR_VIRTIO,
			  vp->pci.bar[VPCI_BAR_VIRTIO].mapped, false);
	msix_destroy(&vp->msix);
	for (unsigned q = 0; q < vp->nq; q++)
		close(vp->q[q].kick);
	pthread_mutex_destroy(&vp->lock);
	free(vp);
}

struct pci_dev *virtio_pci_dev(struct virtio_pci *vp)
{
	return &vp->pci;
}
