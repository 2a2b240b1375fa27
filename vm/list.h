/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/list.h - intrusive doubly linked lists: a node has `next` and `prev` members, a
 * list is a pointer to its first node (NULL: empty). The stores and handles of an
 * engine, the mappings and loads of a handle. The caller holds the list's lock.
 */
#ifndef RINGPAGER_VM_LIST_H
#define RINGPAGER_VM_LIST_H

#include <stddef.h>

/* Puts node n first in the list whose head is the lvalue `head`. */
#define VM_LIST_PUSH(head, n)                                                              \
	do {                                                                               \
		(n)->prev = NULL;                                                          \
		(n)->next = (head);                                                        \
		if (head)                                                                  \
			(head)->prev = (n);                                                \
		(head) = (n);                                                              \
	} while (0)

/* Takes node n out of the list whose head is the lvalue `head`. */
#define VM_LIST_REMOVE(head, n)                                                            \
	do {                                                                               \
		if ((n)->prev)                                                             \
			(n)->prev->next = (n)->next;                                       \
		else                                                                       \
			(head) = (n)->next;                                                \
		if ((n)->next)                                                             \
			(n)->next->prev = (n)->prev;                                       \
	} while (0)

#endif
