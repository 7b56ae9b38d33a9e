/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio_pci_common.c - the common configuration structure of the virtio
 * 1.x PCI transport (struct virtio_pci_common_cfg in BAR0): feature
 * selection and negotiation, the device status state machine with device
 * reset, queue setup, MSI-X vector assignment.
 *
 * The one idea: every register is decoded from exactly the (offset,
 * width) the driver used, with the spec's rules; a write of a wrong width
 * or to a read-only field changes nothing (debug log), a read of a hole
 * returns zero.
 *
 * Invariants:
 *  - FEATURES_OK is only set if the device accepted the driver's
 *    features; queue registers only change while the queue is disabled
 *    and before DRIVER_OK; an MSI-X vector register holds a valid vector
 *    or NO_VECTOR (what the driver reads back tells it which).
 *  - A reset (status 0) clears every register and starts ops->reset;
 *    until the device reports it done (virtio_pci_reset_done) the
 *    driver reads the old status back and its writes are ignored, so a
 *    driver that waits for 0, as the spec says, finds the device idle.
 *    No vCPU ever waits for the device (cavm.h: handlers never block on
 *    the store).
 */
#include <string.h>

#include "common/endian.h"
#include "hypervisor/virtio_pci_int.h"

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
				vpci_kick(vp, q); /* look at what is there */
	/* DEVICE_NEEDS_RESET is the device's to set; only a reset clears. */
	vp->status = (uint8_t)((v & ~VIRTIO_S_NEEDS_RESET) |
			       (vp->status & VIRTIO_S_NEEDS_RESET));
	return false;
}

void vpci_reset_regs(struct virtio_pci *vp)
{
	vp->dev_feat_sel = vp->drv_feat_sel = 0;
	vp->drv_features = 0;
	vp->config_msix = VIRTIO_MSI_NO_VECTOR;
	vp->status = 0;
	vp->queue_sel = 0;
	vp->isr = 0;
	vpci_set_intx(vp, false);
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
	vpci_reset_regs(vp);
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

void vpci_common_access(struct virtio_pci *vp, unsigned off, uint8_t *data,
			unsigned len, bool is_write)
{
	uint8_t buf[8] = {0};
	uint64_t v = 0;
	bool reset = false;

	pthread_mutex_lock(&vp->lock);
	if (is_write) {
		memcpy(buf, data, len);
		reset = common_write(vp, off, le64_get(buf), len) &&
			reset_begin(vp);
	} else {
		if (len == 4 && off >= 0x20 && off < 0x38 && off % 4 == 0)
			v = common_read(vp, off & ~7u) >> (off & 4 ? 32 : 0);
		else if (field_width(off) == len)
			v = common_read(vp, off);
		le64_put(buf, v);
		memcpy(data, buf, len);
	}
	pthread_mutex_unlock(&vp->lock);
	if (reset)
		vp->ops->reset(vp->opaque);
}
