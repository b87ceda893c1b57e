/*
 * Unit tests for the text lookup tables: the postmap/aliases source parser,
 * pcre:, cidr:, static:, inline:, texthash:, table lists and the address
 * lookup order. Hostile input sits next to the good cases in each table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

static char tmpdir[] = "/tmp/test_maps.XXXXXX";
static int warnings;

/* capture - count warnings, keep test output quiet */
static void capture(enum msg_level level, const char *text)
{
    (void) text;
    if (level == MSG_WARN)
        warnings++;
}

/* write_file - create tmpdir/name with len bytes of text; returns the path */
static char *write_file(const char *name, const char *text, size_t len)
{
    vbuf path;
    FILE *fp;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/%s", tmpdir, name);
    assert_non_null(fp = fopen(vbuf_str(&path), "w"));
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    {
        char *s = vbuf_steal(&path);

        vbuf_release(&path);
        return s;
    }
}

/* ---- source parser ---------------------------------------------------------- */

/* collect - append "key=value@line;" for each entry */
static int collect(void *ctx, const char *key, const char *value, int line, vbuf *err)
{
    (void) err;
    vbuf_printf(ctx, "%s=%s@%d;", key, value, line);
    return 0;
}

static const struct source_case {
    const char *name;
    const char *text;
    int flags;
    const char *want;  /* entries, or NULL for an error */
    const char *error; /* substring of the error */
} source_cases[] = {
    {"plain", "a b\nc d e\n", 0, "a=b@1;c=d e@2;", NULL},
    {"comments and blanks", "# x\n\n   \na b\n  # indented comment\n", 0, "a=b@4;", NULL},
    {"continuation joins with a space", "a b,\n  c,\n\td\ne f\n", 0, "a=b, c, d@1;e=f@4;", NULL},
    {"comment inside continuation", "a b,\n# gone\n  c\n", 0, "a=b, c@1;", NULL},
    {"crlf and trailing blanks", "a b  \r\nc d\r\n", 0, "a=b@1;c=d@2;", NULL},
    {"no final newline", "a b", 0, "a=b@1;", NULL},
    {"keys fold to lowercase", "User@Example.COM Value\n", 0, "user@example.com=Value@1;", NULL},
    {"keep case", "User X\n", MAP_KEEP_CASE, "User=X@1;", NULL},
    {"hash in value is data", "a b # c\n", 0, "a=b # c@1;", NULL},
    {"empty text", "", 0, "", NULL},
    {"blank continuation adds nothing", "a b\n \t\r\nc d\n", 0, "a=b@1;c=d@3;", NULL},
    {"key with only blank continuation", "M\n\t\t\r\t\nH x\n", 0, NULL, "t:1: expected format"},
    {"key with trailing blanks only", "M \t\n", 0, NULL, "t:1: expected format"},
    {"key without value", "a b\nlonely\n", 0, NULL, "t:2: expected format: key whitespace value"},
    {"continuation first", "  a b\n", 0, NULL, "t:1: continuation line"},
    {"nul byte", "a b\nc \0d\n", 0, NULL, "t:2: NUL byte"},
    {"alias list", "root: admin, bob\n", MAP_BUILD_ALIASES, "root=admin, bob@1;", NULL},
    {"alias continuation", "list: a,\n  b,\n  \"|/bin/cmd x\"\n", MAP_BUILD_ALIASES, "list=a, b, \"|/bin/cmd x\"@1;",
     NULL},
    {"alias include and file", "Staff : :include:/etc/staff, /var/log/x\n", MAP_BUILD_ALIASES,
     "staff=:include:/etc/staff, /var/log/x@1;", NULL},
    {"alias quoted name", "\"Joe Smith\": joe\n", MAP_BUILD_ALIASES, "joe smith=joe@1;", NULL},
    {"alias value keeps case", "a: Bob@Example.com\n", MAP_BUILD_ALIASES, "a=Bob@Example.com@1;", NULL},
    {"alias without colon", "a: b\nroot admin\n", MAP_BUILD_ALIASES, NULL, "t:2: expected \"name: value\""},
    {"alias without value", "root:\n", MAP_BUILD_ALIASES, NULL, "t:1: alias \"root\" has no value"},
    {"alias empty name", ": x\n", MAP_BUILD_ALIASES, NULL, "t:1: empty alias name"},
    {"alias unterminated quote", "\"abc: x\n", MAP_BUILD_ALIASES, NULL, "t:1: unterminated quoted"},
    {"alias blank in name", "a b: x\n", MAP_BUILD_ALIASES, NULL, "t:1: alias name"},
};

static void test_maps_source_parser_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(source_cases) / sizeof(source_cases[0]); i++) {
        const struct source_case *c = &source_cases[i];
        size_t len = strlen(c->text);
        vbuf got, err;
        int r;

        if (strcmp(c->name, "nul byte") == 0)
            len = 10;
        vbuf_init(&got, 0);
        vbuf_init(&err, 0);
        r = map_source_parse("t", c->text, len, c->flags, collect, &got, &err);
        if (c->want) {
            if (r != 0)
                fail_msg("%s: unexpected error %s", c->name, vbuf_str(&err));
            if (strcmp(vbuf_str(&got), c->want) != 0)
                fail_msg("%s: got %s want %s", c->name, vbuf_str(&got), c->want);
        } else {
            if (r != -1)
                fail_msg("%s: no error", c->name);
            if (strstr(vbuf_str(&err), c->error) == NULL)
                fail_msg("%s: error %s lacks %s", c->name, vbuf_str(&err), c->error);
        }
        vbuf_release(&got);
        vbuf_release(&err);
    }
}

static void test_maps_source_huge_line_is_an_error(void **state)
{
    size_t len = (size_t) MAP_LINE_MAX + 10000;
    char *text = xmalloc(len);
    vbuf got, err;

    (void) state;
    memset(text, 'x', len);
    text[1] = ' ';
    vbuf_init(&got, 0);
    vbuf_init(&err, 0);
    assert_int_equal(map_source_parse("big", text, len, 0, collect, &got, &err), -1);
    assert_non_null(strstr(vbuf_str(&err), "big:1: line too long"));
    /* Continuation lines count toward the limit too. */
    for (size_t i = 0; i + 1 < len; i += 1000)
        text[i] = '\n', text[i + 1] = ' ';
    text[0] = 'k';
    text[1] = ' ';
    assert_int_equal(map_source_parse("big", text, len, 0, collect, &got, &err), -1);
    assert_non_null(strstr(vbuf_str(&err), "big:1: line too long"));
    xfree(text);
    vbuf_release(&got);
    vbuf_release(&err);
}

/* ---- pcre: --------------------------------------------------------------- */

static const char pcre_rules[] = "# header checks\n"
                                 "/^Subject: (.*)spam(.*)$/ REJECT ${1}SPAM$2\n"
                                 "/^X-Case: Exact/i HOLD exact\n"
                                 "if /^n/\n"
                                 "!/@/ local-$$\n"
                                 "endif\n"
                                 "/^(\\w+)@(example\\.(com|org))$/ user=$(1) dom=$2 tld=${3}\n"
                                 "if /@sub\\.test$/\n"
                                 "/^a@/ inner-a\n"
                                 "if !/^b/\n"
                                 "/^c@/ inner-c\n"
                                 "endif\n"
                                 "/^b/ inner-b\n"
                                 "endif\n"
                                 "%^a@/b$% OK with percent delimiter\n"
                                 "/^x\\/y/ slash\n"
                                 "/^\\s z \\s (\\d+)\n"
                                 "   \\s $/x spaced $1\n"
                                 "/^opt(ional)?-(.*)/ [$1][$2]\n"
                                 "/^([^@/.][^@/]*)@sandbox\\.test$/\t$1/\n"
                                 "/^[]/[:alpha:]]x$/ class-with-delimiter\n"
                                 "/^first/ one\n"
                                 "/^first/ two\n";

static const struct pcre_case {
    const char *key;
    const char *want; /* NULL: not found */
} pcre_cases[] = {
    {"Subject: buy spam now", "REJECT buy SPAM now"},
    {"SUBJECT: SPAM", "REJECT SPAM"}, /* case-insensitive by default */
    {"X-Case: Exact", "HOLD exact"},
    {"X-Case: exact", NULL}, /* i toggles to case-sensitive */
    {"nobody", "local-$"},
    {"joe@example.org", "user=joe dom=example.org tld=org"},
    {"a@sub.test", "inner-a"},
    {"c@sub.test", "inner-c"},
    {"b@sub.test", "inner-b"},
    {"d@sub.test", NULL},
    {"a@other.test", NULL},
    {"a@/b", "OK with percent delimiter"},
    {"n@x", NULL},
    {"x/y", "slash"},
    {" z 42 ", "spaced 42"},
    {"opt-x", "[][x]"},
    {"optional-y", "[ional][y]"},
    {"first", "one"},
    {"joe@sandbox.test", "joe/"},
    {".joe@sandbox.test", NULL},
    {"/x", "class-with-delimiter"},
    {"]x", "class-with-delimiter"},
    {"qx", "class-with-delimiter"},
};

static void test_maps_pcre_rules_table(void **state)
{
    vbuf err;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    m = map_open_text("pcre", "checks", pcre_rules, strlen(pcre_rules), 0, &err);
    if (m == NULL)
        fail_msg("open: %s", vbuf_str(&err));
    for (size_t i = 0; i < sizeof(pcre_cases) / sizeof(pcre_cases[0]); i++) {
        int status;
        const char *r = map_lookup(m, pcre_cases[i].key, &status);

        if (pcre_cases[i].want == NULL) {
            if (status != MAP_NOTFOUND)
                fail_msg("%s: found %s", pcre_cases[i].key, r);
        } else if (status != MAP_FOUND || strcmp(r, pcre_cases[i].want) != 0) {
            fail_msg("%s: got %s want %s", pcre_cases[i].key, r ? r : "(none)", pcre_cases[i].want);
        }
    }
    assert_string_equal(map_spec(m), "pcre:checks");
    assert_int_equal(map_iterate(m, NULL, NULL, &err), -1);
    map_close(m);
    vbuf_release(&err);
}

static const struct bad_case {
    const char *text;
    const char *error;
} pcre_bad[] = {
    {"/abc REJECT\n", "p:1: no closing regexp delimiter \"/\""},
    {"/ok/ fine\n/abc/q REJECT\n", "p:2: unknown regexp option \"q\""},
    {"/a(b/ x\n", "p:1: error in regexp at offset"},
    {"/(a)/ $2\n", "p:1: $2 in result, but the pattern has 1 group"},
    {"/(a)/ cost $\n", "p:1: '$' without a group number"},
    {"/(a)/ $1x\n", "p:1: \"$1x\" in result is not a group number"},
    {"/(a)/ ${1\n", "p:1: missing '}'"},
    {"!/(a)/ $1\n", "p:1: $ reference in the result of a negated pattern"},
    {"/a/\n", "p:1: no result after the pattern"},
    {"if /a/\n/b/ x\n", "p:1: \"if\" without \"endif\""},
    {"/b/ x\nendif\n", "p:2: \"endif\" without \"if\""},
    {"if /a/\nendif x\n", "p:2: text after \"endif\""},
    {"if /a/ x\nendif\n", "p:1: text after the \"if\" pattern"},
    {"REJECT all\n", "p:1: expected a pattern"},
    {"a/b/ x\n", "p:1: expected a pattern"},
    {"  /a/ x\n", "p:1: continuation line"},
    {"/a/ x\n/b\0/ y\n", "p:2: NUL byte"},
    {"!\n", "p:1: expected a pattern"},
    {"/\\/ x\n", "p:1: no closing regexp delimiter"},
};

static void test_maps_pcre_rejects_bad_files(void **state)
{
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    for (size_t i = 0; i < sizeof(pcre_bad) / sizeof(pcre_bad[0]); i++) {
        const char *t = pcre_bad[i].text;
        size_t len = strlen(t);
        map *m;

        if (strstr(pcre_bad[i].error, "NUL"))
            len = 14;
        m = map_open_text("pcre", "p", t, len, 0, &err);
        if (m != NULL)
            fail_msg("case %zu (%s) opened", i, pcre_bad[i].error);
        if (strstr(vbuf_str(&err), pcre_bad[i].error) == NULL)
            fail_msg("case %zu: got %s want %s", i, vbuf_str(&err), pcre_bad[i].error);
    }
    vbuf_release(&err);
}

static void test_maps_pcre_backtracking_bomb_is_bounded(void **state)
{
    const char rules[] = "/^(a+)+$/ bomb\n/^a/ fallback\n";
    char key[64];
    vbuf err;
    map *m;
    int status;
    const char *r;

    (void) state;
    memset(key, 'a', sizeof(key) - 2);
    key[sizeof(key) - 2] = 'b';
    key[sizeof(key) - 1] = 0;
    vbuf_init(&err, 0);
    assert_non_null(m = map_open_text("pcre", "bomb", rules, strlen(rules), 0, &err));
    warnings = 0;
    r = map_lookup(m, key, &status);
    assert_int_equal(status, MAP_FOUND);
    assert_string_equal(r, "fallback");
    assert_int_equal(warnings, 1);
    map_close(m);
    vbuf_release(&err);
}

static void test_maps_pcre_file_and_missing_file(void **state)
{
    char *path = write_file("checks.pcre", "/^x/ yes\n", 9);
    vbuf spec, err;
    map *m;
    int status;

    (void) state;
    vbuf_init(&spec, 0);
    vbuf_init(&err, 0);
    vbuf_printf(&spec, "pcre:%s", path);
    assert_non_null(m = map_open(vbuf_str(&spec), 0, &err));
    assert_string_equal(map_lookup(m, "X1", &status), "yes");
    map_close(m);
    vbuf_printf(&spec, ".missing");
    assert_null(map_open(vbuf_str(&spec), 0, &err));
    assert_non_null(strstr(vbuf_str(&err), "No such file"));
    xfree(path);
    vbuf_release(&spec);
    vbuf_release(&err);
}

/* ---- cidr: --------------------------------------------------------------- */

static const char cidr_rules[] = "# clients\n"
                                 "192.168.1.77 host-77\n"
                                 "192.168.0.0/16 lan\n"
                                 "10.0.0.0/8   REJECT  ten net\n"
                                 "2001:db8::1 v6-host\n"
                                 "[2001:db8::]/32 doc-v6\n"
                                 "if 172.16.0.0/12\n"
                                 "!172.16.0.0/16 private-not-16\n"
                                 "endif\n"
                                 "172.16.0.0/16 private-16\n"
                                 "0.0.0.0/0 any-v4\n"
                                 "::/0 any-v6\n";

static const struct cidr_case {
    const char *key;
    const char *want;
} cidr_cases[] = {
    {"192.168.1.77", "host-77"},
    {"192.168.1.78", "lan"},
    {"192.168.255.255", "lan"},
    {"10.1.2.3", "REJECT  ten net"},
    {"2001:db8::1", "v6-host"},
    {"2001:DB8::2", "doc-v6"},
    {"2001:db9::1", "any-v6"},
    {"172.17.0.1", "private-not-16"},
    {"172.16.5.5", "private-16"},
    {"8.8.8.8", "any-v4"},
    {"not-an-ip", NULL},
    {"[2001:db8::1]", NULL},
    {"1.2.3", NULL},
    {"", NULL},
};

static void test_maps_cidr_rules_table(void **state)
{
    vbuf err;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    m = map_open_text("cidr", "clients", cidr_rules, strlen(cidr_rules), 0, &err);
    if (m == NULL)
        fail_msg("open: %s", vbuf_str(&err));
    for (size_t i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
        int status;
        const char *r = map_lookup(m, cidr_cases[i].key, &status);

        if (cidr_cases[i].want == NULL) {
            if (status != MAP_NOTFOUND)
                fail_msg("%s: found %s", cidr_cases[i].key, r);
        } else if (status != MAP_FOUND || strcmp(r, cidr_cases[i].want) != 0) {
            fail_msg("%s: got %s want %s", cidr_cases[i].key, r ? r : "(none)", cidr_cases[i].want);
        }
    }
    map_close(m);
    vbuf_release(&err);
}

static void test_maps_cidr_first_match_wins_and_v4_v6_apart(void **state)
{
    const char rules[] = "::/0 v6\n10.0.0.0/8 first\n10.1.0.0/16 second\n";
    vbuf err;
    map *m;
    int status;

    (void) state;
    vbuf_init(&err, 0);
    assert_non_null(m = map_open_text("cidr", "c", rules, strlen(rules), 0, &err));
    assert_string_equal(map_lookup(m, "10.1.2.3", &status), "first");
    assert_string_equal(map_lookup(m, "::ffff:10.1.2.3", &status), "v6");
    map_close(m);
    vbuf_release(&err);
}

static const struct bad_case cidr_bad[] = {
    {"1.2.3.4/33 x\n", "c:1: prefix length 33 is over 32"},
    {"1.2.3.0/24 ok\n1.2.3.4/24 x\n", "c:2: \"1.2.3.4\" has host bits set below /24"},
    {"2001:db8::1/32 x\n", "c:1: \"2001:db8::1\" has host bits set"},
    {"2001:db8::/129 x\n", "c:1: prefix length 129 is over 128"},
    {"1.2.3.256 x\n", "c:1: bad network address \"1.2.3.256\""},
    {"1.2.3.4\n", "c:1: no result after the network"},
    {"1.2.3.4/ x\n", "c:1: missing prefix length"},
    {"1.2.3.4/2a x\n", "c:1: bad prefix length \"2a\""},
    {"1.2.3.4/-1 x\n", "c:1: bad prefix length"},
    {"[1.2.3.4] x\n", "c:1: bad network address"},
    {"if 10.0.0.0/8\n", "c:1: \"if\" without \"endif\""},
    {"endif\n", "c:1: \"endif\" without \"if\""},
    {"if 10.0.0.0/8 x\nendif\n", "c:1: text after the \"if\" network"},
    {"hostname x\n", "c:1: bad network address \"hostname\""},
    {"1.2.3.4/999999999999999999999 x\n", "c:1: bad prefix length"},
    {"1.2.3.4 x\n5.6.7.8 \0y\n", "c:2: NUL byte"},
};

static void test_maps_cidr_rejects_bad_files(void **state)
{
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    for (size_t i = 0; i < sizeof(cidr_bad) / sizeof(cidr_bad[0]); i++) {
        const char *t = cidr_bad[i].text;
        size_t len = strlen(t);

        if (strstr(cidr_bad[i].error, "NUL"))
            len = 22;
        if (map_open_text("cidr", "c", t, len, 0, &err) != NULL)
            fail_msg("case %zu (%s) opened", i, cidr_bad[i].error);
        if (strstr(vbuf_str(&err), cidr_bad[i].error) == NULL)
            fail_msg("case %zu: got %s want %s", i, vbuf_str(&err), cidr_bad[i].error);
    }
    vbuf_release(&err);
}

/* ---- static:, inline:, texthash: ---------------------------------------------- */

static const struct inline_case {
    const char *spec;
    const char *key;
    const char *want; /* NULL: not found; "!" + text: open error */
} inline_cases[] = {
    {"inline:{a=1, b=2}", "b", "2"},
    {"inline:{a=1, b=2}", "c", NULL},
    {"inline:{ Key=V }", "KEY", "V"},
    {"inline:{ { key = value with spaces, and comma }, x=y }", "key", "value with spaces, and comma"},
    {"inline:{{a=b={c}}}", "a", "b={c}"},
    {"inline:{a=}", "a", ""},
    {"inline:{a=1,a=2}", "a", "1"},
    {"inline:{}", "a", NULL},
    {"static:OK", "anything", "OK"},
    {"static:{ text with spaces }", "x", "text with spaces"},
    {"inline:{a}", "a", "!expected key=value"},
    {"inline:{=b}", "a", "!empty key"},
    {"inline:{a=1", "a", "!expected inline:{key=value"},
    {"inline:a=1", "a", "!expected inline:{key=value"},
    {"inline:{{a=1}", "a", "!missing '}'"},
    {"inline:{a=1}}", "a", "!unexpected '}'"},
    {"inline:{{a=1}x}", "a", "!text after '}'"},
    {"static:{abc", "a", "!missing '}'"},
    {"nosuch:thing", "a", "!unsupported lookup table type \"nosuch\""},
    {"notype", "a", "!needs the form type:name"},
    {"texthash:", "a", "!missing file name"},
};

static void test_maps_inline_and_static_table(void **state)
{
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    for (size_t i = 0; i < sizeof(inline_cases) / sizeof(inline_cases[0]); i++) {
        const struct inline_case *c = &inline_cases[i];
        map *m = map_open(c->spec, 0, &err);
        int status;
        const char *r;

        if (c->want && c->want[0] == '!') {
            if (m != NULL)
                fail_msg("%s opened", c->spec);
            if (strstr(vbuf_str(&err), c->want + 1) == NULL)
                fail_msg("%s: got %s want %s", c->spec, vbuf_str(&err), c->want + 1);
            continue;
        }
        if (m == NULL)
            fail_msg("%s: %s", c->spec, vbuf_str(&err));
        r = map_lookup(m, c->key, &status);
        if (c->want == NULL) {
            if (status != MAP_NOTFOUND)
                fail_msg("%s %s: found %s", c->spec, c->key, r);
        } else if (status != MAP_FOUND || strcmp(r, c->want) != 0) {
            fail_msg("%s %s: got %s want %s", c->spec, c->key, r ? r : "(none)", c->want);
        }
        map_close(m);
    }
    vbuf_release(&err);
}

static void test_maps_inline_keep_case(void **state)
{
    vbuf err;
    map *m;
    int status;

    (void) state;
    vbuf_init(&err, 0);
    assert_non_null(m = map_open("inline:{Key=V}", MAP_KEEP_CASE, &err));
    assert_null(map_lookup(m, "key", &status));
    assert_int_equal(status, MAP_NOTFOUND);
    assert_string_equal(map_lookup(m, "Key", &status), "V");
    map_close(m);
    vbuf_release(&err);
}

/* list_entries - "k=v;" for map_iterate */
static int list_entries(void *ctx, const char *key, const char *value)
{
    vbuf_printf(ctx, "%s=%s;", key, value);
    return 0;
}

static void test_maps_texthash_reads_source_into_memory(void **state)
{
    const char text[] = "Alice alice@example.com\n# c\nbob  bob@example.com,\n  carol@example.com\nalice dup\n";
    char *path = write_file("virtual", text, sizeof(text) - 1);
    vbuf spec, err, got;
    map *m;
    int status;

    (void) state;
    vbuf_init(&spec, 0);
    vbuf_init(&err, 0);
    vbuf_init(&got, 0);
    vbuf_printf(&spec, "texthash:%s", path);
    warnings = 0;
    assert_non_null(m = map_open(vbuf_str(&spec), 0, &err));
    assert_int_equal(warnings, 1); /* the duplicate */
    assert_string_equal(map_lookup(m, "ALICE", &status), "alice@example.com");
    assert_string_equal(map_lookup(m, "bob", &status), "bob@example.com, carol@example.com");
    assert_null(map_lookup(m, "carol", &status));
    assert_int_equal(map_iterate(m, list_entries, &got, &err), 0);
    assert_string_equal(vbuf_str(&got), "alice=alice@example.com;bob=bob@example.com, carol@example.com;");
    map_close(m);

    xfree(path);
    path = write_file("virtual", "ok value\nbroken\n", 16);
    assert_null(map_open(vbuf_str(&spec), 0, &err));
    assert_non_null(strstr(vbuf_str(&err), "virtual:2: expected format"));
    xfree(path);
    vbuf_release(&spec);
    vbuf_release(&err);
    vbuf_release(&got);
}

/* ---- lists and the address lookup order ------------------------------------- */

static void test_maps_list_with_braces_and_order(void **state)
{
    maps *ms;
    int status;

    (void) state;
    ms = maps_open("test_maps", "inline:{a=first, {b = with space}} static:{last resort}", 0);
    assert_false(maps_empty(ms));
    assert_string_equal(maps_find(ms, "A", &status), "first");
    assert_string_equal(maps_find(ms, "b", &status), "with space");
    assert_string_equal(maps_find(ms, "zzz", &status), "last resort");
    assert_int_equal(status, MAP_FOUND);
    maps_close(ms);

    ms = maps_open("empty", "  ", 0);
    assert_true(maps_empty(ms));
    assert_null(maps_find(ms, "x", &status));
    assert_int_equal(status, MAP_NOTFOUND);
    maps_close(ms);
}

static void test_maps_unopenable_table_means_error_not_notfound(void **state)
{
    vbuf value;
    maps *ms;
    int status;
    char *path;

    (void) state;
    vbuf_init(&value, 0);
    vbuf_printf(&value, "inline:{a=b}, texthash:%s/late", tmpdir);
    warnings = 0;
    ms = maps_open("virtual_alias_maps", vbuf_str(&value), 0);
    assert_int_equal(warnings, 1);
    assert_null(maps_find(ms, "a", &status));
    assert_int_equal(status, MAP_ERROR);
    assert_null(maps_find_addr(ms, "a@b", 0, &status));
    assert_int_equal(status, MAP_ERROR);
    /* Once the file exists, the list recovers (retried at most once a second). */
    path = write_file("late", "x y\n", 4);
    sleep(1);
    assert_string_equal(maps_find(ms, "x", &status), "y");
    assert_int_equal(status, MAP_FOUND);
    maps_close(ms);
    xfree(path);
    vbuf_release(&value);

    ms = maps_open("p", "inline:{a=b}, nosuch:x", 0);
    assert_null(maps_find(ms, "a", &status));
    assert_int_equal(status, MAP_ERROR);
    maps_close(ms);
}

static const struct addr_case {
    const char *table; /* inline body */
    const char *delim;
    const char *addr;
    int flags;
    const char *want;
} addr_cases[] = {
    {"{u+e@d.test=full, u@d.test=base, u+e=local-ext, u=local, @d.test=domain}", "+", "u+e@d.test", MAPS_ADDR_LOCAL,
     "full"},
    {"{u@d.test=base, u+e=local-ext, u=local, @d.test=domain}", "+", "u+e@d.test", MAPS_ADDR_LOCAL, "base"},
    {"{u+e=local-ext, u=local, @d.test=domain}", "+", "u+e@d.test", MAPS_ADDR_LOCAL, "local-ext"},
    {"{u=local, @d.test=domain}", "+", "u+e@d.test", MAPS_ADDR_LOCAL, "local"},
    {"{u=local, @d.test=domain}", "+", "u+e@d.test", 0, "domain"},
    {"{@d.test=domain}", "+", "u+e@d.test", MAPS_ADDR_LOCAL, "domain"},
    {"{x=y}", "+", "u+e@d.test", MAPS_ADDR_LOCAL, NULL},
    {"{u@d.test=base}", "", "u+e@d.test", 0, NULL},             /* no delimiter: no split */
    {"{u@d.test=base}", "-+", "u-e@d.test", 0, "base"},         /* any delimiter character */
    {"{owner@d.test=base}", "-", "owner-list@d.test", 0, NULL}, /* owner-list stays whole */
    {"{list@d.test=base}", "-", "list-request@d.test", 0, NULL},
    {"{@d.test=domain}", "+", "+e@d.test", 0, "domain"}, /* nothing before the delimiter */
    {"{u@d.test=base}", "+", "U+Ext@D.Test", 0, "base"}, /* keys fold */
    {"{u=local}", "+", "u+e", 0, "local"},               /* no domain */
    {"{@d.test=domain}", "+", "u@", 0, NULL},
    {"{u@a@d.test=odd}", "+", "u@a@d.test", 0, "odd"},
};

static void test_maps_address_lookup_order_table(void **state)
{
    char *saved = var_recipient_delimiter;
    vbuf spec;

    (void) state;
    vbuf_init(&spec, 0);
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const struct addr_case *c = &addr_cases[i];
        int status;
        const char *r;
        maps *ms;

        var_recipient_delimiter = (char *) c->delim;
        vbuf_reset(&spec);
        vbuf_printf(&spec, "inline:%s", c->table);
        ms = maps_open("test", vbuf_str(&spec), 0);
        r = maps_find_addr(ms, c->addr, c->flags, &status);
        if (c->want == NULL) {
            if (status != MAP_NOTFOUND)
                fail_msg("case %zu %s: found %s", i, c->addr, r);
        } else if (status != MAP_FOUND || strcmp(r, c->want) != 0) {
            fail_msg("case %zu %s: got %s want %s", i, c->addr, r ? r : "(none)", c->want);
        }
        maps_close(ms);
    }
    var_recipient_delimiter = saved;
    vbuf_release(&spec);
}

static void test_maps_address_pattern_tables_see_full_address_only(void **state)
{
    const char rules[] = "/^u@d\\.test$/ stripped\n/^@d\\.test$/ at-domain\n/^u\\+e@d\\.test$/ full\n";
    char *path = write_file("addr.pcre", rules, sizeof(rules) - 1);
    char *saved = var_recipient_delimiter;
    vbuf spec;
    maps *ms;
    int status;

    (void) state;
    var_recipient_delimiter = "+";
    vbuf_init(&spec, 0);
    vbuf_printf(&spec, "pcre:%s", path);
    ms = maps_open("test", vbuf_str(&spec), 0);
    assert_string_equal(maps_find_addr(ms, "u+e@d.test", MAPS_ADDR_LOCAL, &status), "full");
    assert_null(maps_find_addr(ms, "u+x@d.test", MAPS_ADDR_LOCAL, &status));
    assert_int_equal(status, MAP_NOTFOUND);
    assert_string_equal(maps_find_addr(ms, "u@d.test", 0, &status), "stripped");
    maps_close(ms);
    var_recipient_delimiter = saved;
    xfree(path);
    vbuf_release(&spec);
}

/* setup - a scratch directory and quiet diagnostics */
static int setup(void **state)
{
    (void) state;
    msg_set_capture(capture);
    msg_stderr(0);
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* teardown - remove the scratch directory */
static int teardown(void **state)
{
    const char *names[] = {"checks.pcre", "virtual", "late", "addr.pcre"};
    vbuf path;

    (void) state;
    vbuf_init(&path, 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        vbuf_reset(&path);
        vbuf_printf(&path, "%s/%s", tmpdir, names[i]);
        (void) unlink(vbuf_str(&path));
    }
    vbuf_release(&path);
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps_source_parser_table),
        cmocka_unit_test(test_maps_source_huge_line_is_an_error),
        cmocka_unit_test(test_maps_pcre_rules_table),
        cmocka_unit_test(test_maps_pcre_rejects_bad_files),
        cmocka_unit_test(test_maps_pcre_backtracking_bomb_is_bounded),
        cmocka_unit_test(test_maps_pcre_file_and_missing_file),
        cmocka_unit_test(test_maps_cidr_rules_table),
        cmocka_unit_test(test_maps_cidr_first_match_wins_and_v4_v6_apart),
        cmocka_unit_test(test_maps_cidr_rejects_bad_files),
        cmocka_unit_test(test_maps_inline_and_static_table),
        cmocka_unit_test(test_maps_inline_keep_case),
        cmocka_unit_test(test_maps_texthash_reads_source_into_memory),
        cmocka_unit_test(test_maps_list_with_braces_and_order),
        cmocka_unit_test(test_maps_unopenable_table_means_error_not_notfound),
        cmocka_unit_test(test_maps_address_lookup_order_table),
        cmocka_unit_test(test_maps_address_pattern_tables_see_full_address_only),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
