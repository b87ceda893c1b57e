/*
 * kiteconf - shared declarations of the kiteconf command's files.
 */
#ifndef KITE_KITECONF_H
#define KITE_KITECONF_H

#define KITECONF_EDIT_SET 1    /* name=value ... */
#define KITECONF_EDIT_REMOVE 2 /* -X name ... */

/* kiteconf_edit - change main.cf in place, atomically; 0 or -1 */
int kiteconf_edit(const char *confdir, char **args, int count, int mode);

/* kiteconf_show_master - print master.cf entries, normalized; 0 or -1 */
int kiteconf_show_master(const char *confdir, char **filters, int count);

#endif
