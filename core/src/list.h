/* Intrusive doubly-linked lists: the element carries its own two link fields (named by the caller, since some
 * elements sit on more than one list) and the owner keeps a head pointer, plus a tail pointer for lists that are
 * appended at the end. No sentinel, NULL-terminated both ways, so plain `for (x = head; x; x = x->next)` walks
 * them. Macros rather than inline functions because one definition serves every element type and field pair;
 * each argument is evaluated once. */
#ifndef OHM_LIST_H
#define OHM_LIST_H

#include <stddef.h>

/* Inserts node before the first element. */
#define LIST_PUSH_FRONT(head, node, next, prev)                                                                   \
    do {                                                                                                          \
        __typeof__(&(head)) list_h_ = &(head);                                                                    \
        __typeof__(node) list_n_ = (node);                                                                        \
        list_n_->next = *list_h_;                                                                                 \
        list_n_->prev = NULL;                                                                                     \
        if (*list_h_) (*list_h_)->prev = list_n_;                                                                 \
        *list_h_ = list_n_;                                                                                       \
    } while (0)

/* Appends node after the last element (tail is the owner's pointer to it). */
#define LIST_PUSH_BACK(head, tail, node, next, prev)                                                              \
    do {                                                                                                          \
        __typeof__(&(head)) list_h_ = &(head);                                                                    \
        __typeof__(&(tail)) list_t_ = &(tail);                                                                    \
        __typeof__(node) list_n_ = (node);                                                                        \
        list_n_->next = NULL;                                                                                     \
        list_n_->prev = *list_t_;                                                                                 \
        if (*list_t_) (*list_t_)->next = list_n_;                                                                 \
        else *list_h_ = list_n_;                                                                                  \
        *list_t_ = list_n_;                                                                                       \
    } while (0)

/* Removes node from a list without a tail pointer. Its own links are left as they were. */
#define LIST_UNLINK(head, node, next, prev)                                                                       \
    do {                                                                                                          \
        __typeof__(&(head)) list_h_ = &(head);                                                                    \
        __typeof__(node) list_n_ = (node);                                                                        \
        if (list_n_->prev) list_n_->prev->next = list_n_->next;                                                   \
        else *list_h_ = list_n_->next;                                                                            \
        if (list_n_->next) list_n_->next->prev = list_n_->prev;                                                   \
    } while (0)

/* Removes node from a list with a tail pointer. Its own links are left as they were. */
#define LIST_UNLINK_TAIL(head, tail, node, next, prev)                                                            \
    do {                                                                                                          \
        __typeof__(node) list_u_ = (node);                                                                        \
        if (!list_u_->next) (tail) = list_u_->prev;                                                               \
        LIST_UNLINK(head, list_u_, next, prev);                                                                   \
    } while (0)

#endif
