"""kitemap end to end: the real binary against real Berkeley DB files.

Builds, queries (exit 0 found / 1 not found / 2 error), deletes, lists,
alias syntax (-A, and newaliases mode from alias_database), errors that
name file:line and leave the old .db untouched, and the text table types.
When Postfix's postmap is installed, files are checked to work both ways.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KITE_BUILD", REPO / "build")).resolve()
KITEMAP = BUILD / "bin" / "kitemap"


@pytest.fixture
def env(tmp_path):
    """A config dir with an empty main.cf, and a work dir."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "main.cf").write_text("")
    return tmp_path


def km(env, *args, input=None):
    """Run kitemap -c confdir ARGS in the work dir."""
    argv = [str(KITEMAP), "-c", str(env / "etc"), *[str(a) for a in args]]
    e = {"PATH": "/usr/bin:/bin", "LANG": "C"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            e[k] = os.environ[k]
    return subprocess.run(argv, input=input, capture_output=True, text=True, cwd=str(env), env=e, timeout=60)


def test_build_query_and_exit_codes(env):
    src = env / "access"
    src.write_text("# access table\n"
                   "Example.COM    REJECT no thanks\n"
                   "10.0.0.1 OK\n"
                   "\n"
                   "list a,\n"
                   "   b,\n"
                   "\tc\n")
    r = km(env, f"hash:{src}")
    assert r.returncode == 0, r.stderr
    assert (env / "access.db").is_file()
    assert sorted(os.listdir(env)) == ["access", "access.db", "etc"]

    r = km(env, "-q", "example.com", f"hash:{src}")
    assert (r.returncode, r.stdout) == (0, "REJECT no thanks\n")
    r = km(env, "-q", "EXAMPLE.com", f"hash:{src}")
    assert (r.returncode, r.stdout) == (0, "REJECT no thanks\n")
    r = km(env, "-q", "list", f"hash:{src}")
    assert (r.returncode, r.stdout) == (0, "a, b, c\n")
    r = km(env, "-q", "nobody", f"hash:{src}")
    assert (r.returncode, r.stdout) == (1, "")

    # A plain name means hash:.
    r = km(env, "-q", "10.0.0.1", str(src))
    assert (r.returncode, r.stdout) == (0, "OK\n")

    # -f keeps the case of keys.
    r = km(env, "-f", f"btree:{src}")
    assert r.returncode == 0, r.stderr
    assert km(env, "-f", "-q", "Example.COM", f"btree:{src}").stdout == "REJECT no thanks\n"
    assert km(env, "-f", "-q", "example.com", f"btree:{src}").returncode == 1


def test_query_keys_from_stdin(env):
    src = env / "t"
    src.write_text("a 1\nb 2\n")
    assert km(env, src).returncode == 0
    r = km(env, "-q", "-", f"hash:{src}", input="a\nzz\nB\n")
    assert r.returncode == 0
    assert r.stdout == "a\t1\nB\t2\n"
    r = km(env, "-q", "-", f"hash:{src}", input="none\n")
    assert (r.returncode, r.stdout) == (1, "")


def test_query_errors_exit_2(env):
    r = km(env, "-q", "x", f"hash:{env}/missing")
    assert r.returncode == 2
    assert "missing.db" in r.stderr
    (env / "junk.db").write_bytes(b"not a database " * 100)
    r = km(env, "-q", "x", f"hash:{env}/junk")
    assert r.returncode == 2
    assert "junk.db" in r.stderr
    r = km(env, "-q", "x", "nosuch:thing")
    assert r.returncode == 2
    assert "unsupported lookup table type" in r.stderr


def test_dump_and_delete(env):
    src = env / "t"
    src.write_text("c 3\na 1\nb two words\n")
    assert km(env, f"btree:{src}").returncode == 0
    r = km(env, "-s", f"btree:{src}")
    assert (r.returncode, r.stdout) == (0, "a 1\nb two words\nc 3\n")

    ino = (env / "t.db").stat().st_ino
    r = km(env, "-d", "B", f"btree:{src}")
    assert r.returncode == 0, r.stderr
    assert km(env, "-q", "b", f"btree:{src}").returncode == 1
    assert km(env, "-s", f"btree:{src}").stdout == "a 1\nc 3\n"
    assert (env / "t.db").stat().st_ino != ino          # replaced by rename

    ino = (env / "t.db").stat().st_ino
    r = km(env, "-d", "b", f"btree:{src}")
    assert r.returncode == 1
    assert (env / "t.db").stat().st_ino == ino          # untouched
    assert sorted(os.listdir(env)) == ["etc", "t", "t.db"]

    r = km(env, "-d", "a", f"hash:{env}/none")
    assert r.returncode == 2
    r = km(env, "-s", f"pcre:{src}")                    # not a pcre file: error
    assert r.returncode == 2


def test_alias_mode(env):
    src = env / "aliases"
    src.write_text("# system aliases\n"
                   "Postmaster: root\n"
                   "root: admin@Example.com,\n"
                   "  \"|/usr/bin/procmail -a x\",\n"
                   "  /var/mail/archive,\n"
                   "  :include:/etc/kite/staff\n"
                   "\"joe smith\": joe\n")
    r = km(env, "-A", src)
    assert r.returncode == 0, r.stderr
    r = km(env, "-q", "POSTMASTER", src)
    assert (r.returncode, r.stdout) == (0, "root\n")
    r = km(env, "-q", "root", src)
    assert r.stdout == ("admin@Example.com, \"|/usr/bin/procmail -a x\", /var/mail/archive, "
                        ":include:/etc/kite/staff\n")
    r = km(env, "-A", "-s", src)
    assert "postmaster: root\n" in r.stdout
    assert "joe smith: joe\n" in r.stdout

    # A line without "name:" is an error in alias syntax.
    (env / "plain").write_text("lonely\n")
    r = km(env, "-A", env / "plain")
    assert r.returncode != 0
    assert "plain:1:" in r.stderr


def test_newaliases_mode_uses_alias_database(env):
    (env / "aliases").write_text("abuse: root\n")
    (env / "more").write_text("webmaster: www\n")
    (env / "etc" / "main.cf").write_text(f"alias_database = hash:{env}/aliases, btree:{env}/more\n")
    r = km(env, "-A")
    assert r.returncode == 0, r.stderr
    assert km(env, "-q", "abuse", f"hash:{env}/aliases").stdout == "root\n"
    assert km(env, "-q", "webmaster", f"btree:{env}/more").stdout == "www\n"


@pytest.mark.parametrize("flags,good,bad,where", [
    ([], "k old\n", "k new\nok fine\nbroken\n", ":3: expected format: key whitespace value"),
    ([], "k old\n", "k new\n  \n\n  cont\n", None),
    (["-A"], "k: old\n", "k: new\nnocolon here\n", ":2: expected \"name: value\""),
    (["-A"], "k: old\n", "k: new\n\nx:\n", ":3: alias \"x\" has no value"),
    ([], "k old\n", "  k new\n", ":1: continuation line"),
    ([], "k old\n", "k new\nz \0nul\n", ":2: NUL byte"),
])
def test_bad_source_names_file_line_and_keeps_old_db(env, flags, good, bad, where):
    src = env / "src"
    src.write_text(good)
    assert km(env, *flags, src).returncode == 0
    db = env / "src.db"
    before = db.stat()
    src.write_text(bad)
    r = km(env, *flags, src)
    if where is None:
        # Blank lines inside a continuation are fine: the build succeeds.
        assert r.returncode == 0, r.stderr
        assert km(env, "-q", "k", src).stdout == "new cont\n"
        return
    assert r.returncode != 0
    assert f"{src}{where}" in r.stderr
    after = db.stat()
    assert (before.st_ino, before.st_mtime_ns, before.st_size) == (after.st_ino, after.st_mtime_ns, after.st_size)
    assert km(env, "-q", "k", src).stdout == "old\n"
    assert sorted(os.listdir(env)) == ["etc", "src", "src.db"]


def test_huge_line_is_refused(env):
    src = env / "big"
    src.write_text("k " + "x" * (2 * 1024 * 1024) + "\n")
    r = km(env, src)
    assert r.returncode != 0
    assert f"{src}:1: line too long" in r.stderr
    assert not (env / "big.db").exists()


def test_text_tables_through_query(env):
    (env / "checks.pcre").write_text("/^Subject: .*(viagra)/ REJECT no $1\nif /@example\\.com$/\n/^a@/ A\nendif\n")
    assert km(env, "-q", "Subject: cheap VIAGRA", f"pcre:{env}/checks.pcre").stdout == "REJECT no VIAGRA\n"
    assert km(env, "-q", "a@example.com", f"pcre:{env}/checks.pcre").stdout == "A\n"
    assert km(env, "-q", "a@example.org", f"pcre:{env}/checks.pcre").returncode == 1
    (env / "bad.pcre").write_text("/ok/ 1\n/unterminated REJECT\n")
    r = km(env, "-q", "x", f"pcre:{env}/bad.pcre")
    assert r.returncode == 2
    assert f"{env}/bad.pcre:2: no closing regexp delimiter" in r.stderr

    (env / "nets.cidr").write_text("192.0.2.0/24 REJECT\n2001:db8::/32 OK\n")
    assert km(env, "-q", "192.0.2.9", f"cidr:{env}/nets.cidr").stdout == "REJECT\n"
    assert km(env, "-q", "2001:db8::5", f"cidr:{env}/nets.cidr").stdout == "OK\n"
    assert km(env, "-q", "198.51.100.1", f"cidr:{env}/nets.cidr").returncode == 1
    (env / "bad.cidr").write_text("192.0.2.1/24 x\n")
    r = km(env, "-q", "x", f"cidr:{env}/bad.cidr")
    assert r.returncode == 2 and f"{env}/bad.cidr:1:" in r.stderr

    assert km(env, "-q", "B", "inline:{a=1, { b = two words }}").stdout == "two words\n"
    assert km(env, "-q", "anything", "static:{relay:[mx.example]}").stdout == "relay:[mx.example]\n"
    (env / "th").write_text("k v\n")
    assert km(env, "-q", "K", f"texthash:{env}/th").stdout == "v\n"
    assert km(env, "-s", f"texthash:{env}/th").stdout == "k v\n"


POSTMAP = shutil.which("postmap", path="/usr/sbin:/usr/bin")


@pytest.mark.skipif(POSTMAP is None, reason="Postfix's postmap is not installed")
def test_files_work_with_postfix_postmap_both_ways(env):
    pfconf = env / "pf"
    pfconf.mkdir()
    (pfconf / "main.cf").write_text("")
    penv = {"PATH": "/usr/sbin:/usr/bin:/bin", "MAIL_CONFIG": str(pfconf)}
    (env / "ours").write_text("Key value one\n")
    assert km(env, env / "ours").returncode == 0
    r = subprocess.run([POSTMAP, "-q", "key", f"hash:{env}/ours"], capture_output=True, text=True, env=penv)
    if r.returncode != 0 and "fatal" in r.stderr:
        pytest.skip(f"postmap not usable here: {r.stderr.strip()}")
    assert r.stdout == "value one\n"
    (env / "theirs").write_text("other value two\n")
    subprocess.run([POSTMAP, f"hash:{env}/theirs"], check=True, env=penv)
    assert km(env, "-q", "OTHER", env / "theirs").stdout == "value two\n"
