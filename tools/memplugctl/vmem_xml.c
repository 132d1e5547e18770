// SPDX-License-Identifier: GPL-2.0-only
/*
 * The virtio-mem devices of a libvirt domain's XML, see vmem_xml.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "size.h"
#include "vmem_xml.h"

void vmem_xml_init(void)
{
	xmlInitParser();
}

/* The first element child of @parent called @name, or NULL. */
static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n;

	for (n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, BAD_CAST name))
			return n;
	return NULL;
}

static int is_virtio_mem(xmlNodePtr n)
{
	xmlChar *model;
	int yes;

	if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "memory"))
		return 0;
	model = xmlGetProp(n, BAD_CAST "model");
	yes = model && !xmlStrcmp(model, BAD_CAST "virtio-mem");
	xmlFree(model);
	return yes;
}

/* Bytes per unit of libvirt's scaled integers (docs: formatdomain, "unit"). */
static uint64_t unit_scale(const char *unit)
{
	static const struct {
		const char *name;
		uint64_t scale;
	} units[] = {
		{ "b", 1ULL },	     { "bytes", 1ULL },	    { "KB", 1000ULL },
		{ "k", 1ULL << 10 }, { "KiB", 1ULL << 10 }, { "MB", 1000000ULL },
		{ "M", 1ULL << 20 }, { "MiB", 1ULL << 20 }, { "GB", 1000000000ULL },
		{ "G", 1ULL << 30 }, { "GiB", 1ULL << 30 }, { "TB", 1000000000000ULL },
		{ "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
	};
	size_t i;

	/* libvirt's default unit for memory sizes is KiB */
	if (!unit)
		return 1024;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(unit, units[i].name))
			return units[i].scale;
	return 0;
}

/* The size in element @n (its text and unit attribute), in bytes; -1 if bad. */
static int scaled(xmlNodePtr n, uint64_t *bytes)
{
	xmlChar *text, *unit;
	uint64_t value, scale;
	const char *why;
	int rc = -1;

	if (!n)
		return -1;
	text = xmlNodeGetContent(n);
	unit = xmlGetProp(n, BAD_CAST "unit");
	scale = unit_scale((const char *)unit);
	/* parse_size() takes plain digits as bytes */
	if (text && *text && scale &&
	    strspn((const char *)text, "0123456789") == strlen((char *)text) &&
	    !parse_size((const char *)text, &value, &why) && value <= UINT64_MAX / scale) {
		*bytes = value * scale;
		rc = 0;
	}
	xmlFree(text);
	xmlFree(unit);
	return rc;
}

/* Fill @info from a <memory model='virtio-mem'> element; -1 if malformed. */
static int parse_memory(xmlNodePtr mem, int live, struct vmem_info *info)
{
	xmlNodePtr target = child(mem, "target");
	xmlNodePtr alias = child(mem, "alias");
	xmlNodePtr node = child(target, "node");
	xmlNodePtr current = child(target, "current");
	xmlChar *name;

	memset(info, 0, sizeof(*info));
	info->node = -1;
	if (!target || scaled(child(target, "size"), &info->max_size) ||
	    scaled(child(target, "block"), &info->block_size) || !info->block_size)
		return -1;
	/* none in a domain defined without one: 0, as libvirt starts it */
	if (child(target, "requested") && scaled(child(target, "requested"), &info->requested_size))
		return -1;
	/* the plugged size: only a running domain has one */
	if (live && current && scaled(current, &info->size))
		return -1;
	if (node) {
		xmlChar *text = xmlNodeGetContent(node);
		uint64_t v;
		const char *why;

		if (!text || !*text || strspn((char *)text, "0123456789") != strlen((char *)text) ||
		    parse_size((char *)text, &v, &why) || v > INT32_MAX) {
			xmlFree(text);
			return -1;
		}
		info->node = (int64_t)v;
		xmlFree(text);
	}
	name = alias ? xmlGetProp(alias, BAD_CAST "name") : NULL;
	if (name) {
		if (xmlStrlen(name) >= (int)sizeof(info->id)) {
			xmlFree(name);
			return -1;
		}
		snprintf(info->id, sizeof(info->id), "%s", (const char *)name);
		xmlFree(name);
	}
	return 0;
}

static xmlDocPtr read_doc(const char *xml, size_t len)
{
	xmlDocPtr doc;

	if (len > VMEM_XML_MAX)
		return NULL;
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc && !xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		doc = NULL;
	}
	return doc;
}

/* The @index-th (from 0) virtio-mem element of @doc, or NULL. */
static xmlNodePtr nth_vmem(xmlDocPtr doc, int index)
{
	xmlNodePtr n, devices = child(xmlDocGetRootElement(doc), "devices");
	int i = 0;

	for (n = devices ? devices->children : NULL; n; n = n->next)
		if (is_virtio_mem(n) && i++ == index)
			return n;
	return NULL;
}

int vmem_xml_devices(const char *xml, size_t len, int live, struct vmem_info **devs, size_t *n,
		     int *malformed)
{
	xmlDocPtr doc = read_doc(xml, len);
	xmlNodePtr node, devices;
	size_t max = 0;

	*devs = NULL;
	*n = 0;
	*malformed = 0;
	if (!doc)
		return VMEM_XML_BAD;
	devices = child(xmlDocGetRootElement(doc), "devices");
	for (node = devices ? devices->children : NULL; node; node = node->next)
		max += is_virtio_mem(node);
	*devs = calloc(max + 1, sizeof(**devs));
	if (!*devs) {
		xmlFreeDoc(doc);
		return VMEM_XML_NOMEM;
	}
	for (node = devices ? devices->children : NULL; node && *n < max; node = node->next) {
		if (!is_virtio_mem(node))
			continue;
		if (parse_memory(node, live, &(*devs)[*n])) {
			*malformed = 1;
			break;
		}
		(*devs)[*n].index = (int)*n;
		(*n)++;
	}
	xmlFreeDoc(doc);
	return VMEM_XML_OK;
}

int vmem_xml_set_requested(const char *xml, size_t len, int live, const struct vmem_info *dev,
			   uint64_t size, char **out)
{
	xmlDocPtr doc = read_doc(xml, len);
	xmlNodePtr mem, target, requested;
	xmlBufferPtr buf = NULL;
	struct vmem_info now;
	char kib[32];
	int rc = VMEM_XML_NOMEM;

	*out = NULL;
	if (!doc)
		return VMEM_XML_BAD;
	/* the same device as before, in this XML */
	mem = nth_vmem(doc, dev->index);
	if (!mem || parse_memory(mem, live, &now) || strcmp(now.id, dev->id)) {
		rc = VMEM_XML_CHANGED;
		goto out;
	}
	target = child(mem, "target");
	requested = child(target, "requested");
	if (!requested)
		requested = xmlNewChild(target, NULL, BAD_CAST "requested", NULL);
	if (!requested)
		goto out;
	/* sizes are multiples of the block size, itself of KiB */
	snprintf(kib, sizeof(kib), "%" PRIu64, size / 1024);
	xmlNodeSetContent(requested, BAD_CAST kib);
	if (!xmlSetProp(requested, BAD_CAST "unit", BAD_CAST "KiB"))
		goto out;
	buf = xmlBufferCreate();
	if (!buf || xmlNodeDump(buf, doc, mem, 0, 0) < 0)
		goto out;
	*out = strdup((const char *)xmlBufferContent(buf));
	if (*out)
		rc = VMEM_XML_OK;
out:
	if (buf)
		xmlBufferFree(buf);
	xmlFreeDoc(doc);
	return rc;
}
