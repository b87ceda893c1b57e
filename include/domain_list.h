/*
 * domain_list.h - lists of domains as main.cf gives them (mydestination,
 * relay_domains, fast_flush_domains, ...): names and type:name tables,
 * separated by commas and/or white space.
 *
 * A name matches itself (case-insensitively, a trailing dot ignored); a
 * name that starts with "." matches its subdomains only; with subdomains
 * set (Postfix's parent_domain_matches_subdomains for that parameter) a
 * plain name also matches its subdomains, and a table is looked up with the
 * domain and then each parent domain. A table that cannot be read makes the
 * match a lookup error, never a hit.
 *
 * Also the fast flush service's eligibility list (fast_flush_domains, with
 * subdomains, as Postfix has it), shared by smtpd's ETRN and qmgr's
 * flush_site request, and the status codes of qmgr's flush_site answer.
 */
#ifndef KITE_DOMAIN_LIST_H
#define KITE_DOMAIN_LIST_H

#include <stddef.h>

#include "maps.h"

typedef struct domain_list {
    char **names; /* literal names, lowercased (".dom" = subdomains) */
    size_t nnames;
    maps **tables;
    size_t ntables;
    int subdomains; /* parent_domain_matches_subdomains */
} domain_list;

/*
 * param_list_token - the next item of a parameter list (comma or space
 * separated), keeping "{ ... }" groups (inline: tables) together; NULL at
 * the end (or for a NULL cursor). Modifies the string.
 */
char *param_list_token(char **cursor);
/* param_is_table - "type:name", not a name, an address literal or a CIDR block */
int param_is_table(const char *s);
/* domain_list_parse - parse value (NULL: empty) of parameter param; opens its tables */
void domain_list_parse(domain_list *dl, const char *param, const char *value, int subdomains);
/* domain_list_match - 1 domain is in the list, 0 not (also NULL or empty), -1 lookup error */
int domain_list_match(const domain_list *dl, const char *domain);
/* domain_list_free - release a parsed list (it may be parsed again) */
void domain_list_free(domain_list *dl);

/* Status of qmgr's {status, text} answer to a flush_site request. */
#define FLUSH_STAT_OK 0   /* queuing started */
#define FLUSH_STAT_BAD 1  /* malformed request or site */
#define FLUSH_STAT_DENY 2 /* the site is not in fast_flush_domains */
#define FLUSH_STAT_FAIL 3 /* fast_flush_domains could not be looked up */

/* fast_flush_init - parse fast_flush_domains (again); before any chroot: it opens tables */
void fast_flush_init(void);
/* fast_flush_eligible - may the site be flushed on request: 1 yes, 0 no, -1 lookup error */
int fast_flush_eligible(const char *site);

#endif
