/* Intrusive doubly-linked lists: the element carries its own two link fields (named by the caller, since some
 * elements sit on more than one list) and the owner keeps a head pointer, plus a tail pointer for lists that are
 * appended at the end. No sentinel, NULL-terminated both ways, so plain `for (x = head; x; x = x->next)` walks
 * them. Macros rather than inline functions because one definition serves every element type and field pair;
 * each argument is evaluated once, and each link is read once (into a local: the stores into the node could
 * otherwise alias the owner's pointers as far as the compiler knows, and cost a reload each). */
#ifndef OHM_LIST_H
#define OHM_LIST_H

#include <stddef.h>

/* Adds node at one end of a list: end is the owner's pointer to that end, inward the node's link toward the
 * rest of the list, outward the other one; at_empty runs when the list was empty, naming the node list_n_. */
#define LIST_ADD_(end, node, inward, outward, at_empty)          \
    do {                                                         \
        __typeof__(&(end)) list_e_ = &(end);                     \
        __typeof__(node) list_n_ = (node), list_old_ = *list_e_; \
        list_n_->inward = list_old_;                             \
        list_n_->outward = NULL;                                 \
        if (list_old_) list_old_->outward = list_n_;             \
        else at_empty;                                           \
        *list_e_ = list_n_;                                      \
    } while (0)

/* Inserts node before the first element. */
#define LIST_PUSH_FRONT(head, node, next, prev) LIST_ADD_(head, node, next, prev, (void)0)

/* Appends node after the last element (tail is the owner's pointer to it). */
#define LIST_PUSH_BACK(head, tail, node, next, prev) LIST_ADD_(tail, node, prev, next, (head) = list_n_)

/* Removes node; at_end runs when node was the last element, with list_p_ naming the element before it (NULL
 * when none). Its own links are left as they were. */
#define LIST_UNLINK_(head, node, next, prev, at_end)                                         \
    do {                                                                                     \
        __typeof__(node) list_n_ = (node), list_p_ = list_n_->prev, list_x_ = list_n_->next; \
        if (list_p_) list_p_->next = list_x_;                                                \
        else (head) = list_x_;                                                               \
        if (list_x_) list_x_->prev = list_p_;                                                \
        else at_end;                                                                         \
    } while (0)

/* Removes node from a list without a tail pointer. */
#define LIST_UNLINK(head, node, next, prev) LIST_UNLINK_(head, node, next, prev, (void)0)

/* Removes node from a list with a tail pointer. */
#define LIST_UNLINK_TAIL(head, tail, node, next, prev) LIST_UNLINK_(head, node, next, prev, (tail) = list_p_)

#endif
