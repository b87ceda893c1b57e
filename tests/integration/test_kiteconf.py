"""kiteconf end to end: the real binary against real main.cf / master.cf files.

Shows parameters (all, -n, -d, -h, -x, named), edits main.cf in place
(name=value, -X) keeping comments, honours -c and $KITE_CONFIG_DIR, and
prints master.cf entries with -M.
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KITE_BUILD", REPO / "build")).resolve()
KITECONF = BUILD / "bin" / "kiteconf"

MAIN_CF = """\
# Kite main.cf for the kiteconf tests
myhostname = mx.example.com
mydomain = example.com

# destinations, on two lines
mydestination = $myhostname,
    localhost.$mydomain
message_size_limit = 5000
maximal_queue_lifetime = 3d
custom_thing = hello
relay_domains = ${custom_thing?$custom_thing.example}
"""

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       n       -       -       smtpd
  -o smtpd_tls_security_level=may
    -o   smtpd_sasl_auth_enable=yes
pickup    unix  n       -       n       60      1       pickup
cleanup	unix	n	-	n	-	0	cleanup
#qmgr     unix  n       -       n       300     1       qmgr
"""


def run(*args, confdir=None, env_dir=None):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    if env_dir is not None:
        env["KITE_CONFIG_DIR"] = str(env_dir)
    argv = [str(KITECONF)]
    if confdir is not None:
        argv += ["-c", str(confdir)]
    argv += [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


@pytest.fixture
def confdir(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text(MAIN_CF)
    (d / "master.cf").write_text(MASTER_CF)
    return d


def as_dict(text):
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" =")
        assert sep, line
        out[name] = value[1:] if value.startswith(" ") else value
    return out


def test_all_parameters_printed_sorted_and_unexpanded(confdir):
    r = run(confdir=confdir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = [l.split(" =")[0] for l in lines]
    assert names == sorted(names)
    params = as_dict(r.stdout)
    # set in main.cf: raw text, continuation joined, $names kept
    assert params["mydestination"] == "$myhostname, localhost.$mydomain"
    assert params["message_size_limit"] == "5000"
    assert params["maximal_queue_lifetime"] == "3d"
    # defaults from the table, unexpanded
    assert params["myorigin"] == "$myhostname"
    assert params["config_directory"] == str(confdir)
    # every table parameter is there, user-defined ones are not
    assert "custom_thing" not in params
    assert len(params) > 50
    # the unused parameter would not be warned about: relay_domains uses it
    assert "custom_thing" not in r.stderr


def test_expand_with_x(confdir):
    r = run("-x", "mydestination", "myorigin", "relay_domains", confdir=confdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "mydestination = mx.example.com, localhost.example.com",
        "myorigin = mx.example.com",
        "relay_domains = hello.example",
    ]


def test_n_shows_only_main_cf_settings(confdir):
    r = run("-n", confdir=confdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "custom_thing = hello",
        "maximal_queue_lifetime = 3d",
        "message_size_limit = 5000",
        "mydestination = $myhostname, localhost.$mydomain",
        "mydomain = example.com",
        "myhostname = mx.example.com",
        "relay_domains = ${custom_thing?$custom_thing.example}",
    ]


def test_d_shows_defaults_and_h_values_only(confdir):
    r = run("-d", "message_size_limit", "maximal_queue_lifetime", "myorigin", confdir=confdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "message_size_limit = 10240000",
        "maximal_queue_lifetime = 5d",
        "myorigin = $myhostname",
    ]
    r = run("-h", "message_size_limit", "myhostname", confdir=confdir)
    assert r.stdout.splitlines() == ["5000", "mx.example.com"]
    r = run("-dh", "message_size_limit", confdir=confdir)
    assert r.stdout.splitlines() == ["10240000"]


def test_unknown_name_warns_and_fails(confdir):
    r = run("myhostname", "no_such_parameter", confdir=confdir)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["myhostname = mx.example.com"]
    assert "kiteconf: warning: unknown parameter: no_such_parameter" in r.stderr


def test_unused_parameter_in_main_cf_is_warned_with_file_line(confdir):
    with open(confdir / "main.cf", "a") as f:
        f.write("smtpd_bogus_knob = 1\n")
    r = run("myhostname", confdir=confdir)
    assert r.returncode == 0
    assert f"{confdir}/main.cf:12: unknown parameter \"smtpd_bogus_knob\"" in r.stderr


def test_config_dir_from_environment(confdir, tmp_path):
    r = run("-h", "myhostname", env_dir=confdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "mx.example.com\n"
    # -c wins over the environment
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.cf").write_text("myhostname = other.example\n")
    r = run("-h", "myhostname", confdir=other, env_dir=confdir)
    assert r.stdout == "other.example\n"


def test_edit_replaces_logical_line_keeps_comments_and_appends(confdir):
    before = (confdir / "main.cf").stat()
    r = run("mydestination=$myhostname", "message_size_limit = 20000", "new_parameter=with spaces",
            confdir=confdir)
    assert r.returncode == 0, r.stderr
    text = (confdir / "main.cf").read_text()
    assert text == (
        "# Kite main.cf for the kiteconf tests\n"
        "myhostname = mx.example.com\n"
        "mydomain = example.com\n"
        "\n"
        "# destinations, on two lines\n"
        "mydestination = $myhostname\n"
        "message_size_limit = 20000\n"
        "maximal_queue_lifetime = 3d\n"
        "custom_thing = hello\n"
        "relay_domains = ${custom_thing?$custom_thing.example}\n"
        "new_parameter = with spaces\n"
    )
    after = (confdir / "main.cf").stat()
    assert after.st_ino != before.st_ino          # replaced by rename, not rewritten
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)
    assert sorted(os.listdir(confdir)) == ["main.cf", "master.cf"]   # no temp file left
    r = run("-h", "message_size_limit", "new_parameter", confdir=confdir)
    assert r.stdout.splitlines() == ["20000", "with spaces"]


def test_edit_with_e_flag_and_duplicate_entries(confdir):
    with open(confdir / "main.cf", "a") as f:
        f.write("message_size_limit = 7000\n  \n")
    r = run("-e", "message_size_limit=9000", confdir=confdir)
    assert r.returncode == 0, r.stderr
    text = (confdir / "main.cf").read_text()
    assert text.count("message_size_limit") == 1
    assert "message_size_limit = 9000\n" in text
    assert run("-h", "message_size_limit", confdir=confdir).stdout == "9000\n"


def test_edit_creates_missing_main_cf(tmp_path):
    d = tmp_path / "fresh"
    d.mkdir()
    r = run("myhostname=new.example", confdir=d)
    assert r.returncode == 0, r.stderr
    assert (d / "main.cf").read_text() == "myhostname = new.example\n"


def test_edit_bad_name_is_refused_and_file_untouched(confdir):
    r = run("bad name=1", confdir=confdir)
    assert r.returncode != 0
    assert (confdir / "main.cf").read_text() == MAIN_CF
    r = run("=1", confdir=confdir)
    assert r.returncode != 0
    assert (confdir / "main.cf").read_text() == MAIN_CF


def test_edit_bad_typed_value_is_warned(confdir):
    r = run("message_size_limit=lots", confdir=confdir)
    assert "bad numerical value" in r.stderr


def test_remove_with_X_drops_continuation_lines(confdir):
    r = run("-X", "mydestination", "custom_thing", "not_there", confdir=confdir)
    assert r.returncode == 0, r.stderr
    text = (confdir / "main.cf").read_text()
    assert "mydestination" not in text
    assert "localhost.$mydomain" not in text
    assert "custom_thing = hello" not in text
    assert "# destinations, on two lines\n" in text
    assert "message_size_limit = 5000\n" in text
    r = run("-n", confdir=confdir)
    assert "mydestination" not in r.stdout


def test_edit_through_symlinked_main_cf_edits_target(confdir, tmp_path):
    real = tmp_path / "real-main.cf"
    real.write_text("myhostname = a.example\n")
    (confdir / "main.cf").unlink()
    (confdir / "main.cf").symlink_to(real)
    r = run("myhostname=b.example", confdir=confdir)
    assert r.returncode == 0, r.stderr
    assert (confdir / "main.cf").is_symlink()
    assert real.read_text() == "myhostname = b.example\n"


def test_master_cf_printed_normalized(confdir):
    r = run("-M", confdir=confdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "smtp      inet  n       -       n       -       -       smtpd -o smtpd_tls_security_level=may "
        "-o smtpd_sasl_auth_enable=yes",
        "pickup    unix  n       -       n       60      1       pickup",
        "cleanup   unix  n       -       n       -       0       cleanup",
    ]
    r = run("-M", "pickup/unix", "smtp", "cleanup/inet", confdir=confdir)
    assert [l.split()[0] for l in r.stdout.splitlines()] == ["smtp", "pickup"]


def test_master_cf_missing_is_an_error(tmp_path):
    r = run("-M", confdir=tmp_path)
    assert r.returncode == 1
    assert "master.cf" in r.stderr


def test_works_with_the_harness_instance(kite):
    r = kite.run("kiteconf", "-n")
    assert r.returncode == 0, r.stderr
    params = as_dict(r.stdout)
    assert params["myhostname"] == "kite.test"
    assert params["queue_directory"] == str(kite.queue_dir)
    r = kite.run("kiteconf", "-M")
    assert r.returncode == 0, r.stderr
    r = kite.run("kiteconf", "message_size_limit=123456")
    assert r.returncode == 0, r.stderr
    assert kite.run("kiteconf", "-h", "message_size_limit").stdout == "123456\n"


def test_edit_crlf_file_and_missing_final_newline(tmp_path):
    d = tmp_path / "crlf"
    d.mkdir()
    (d / "main.cf").write_bytes(b"# dos\r\nmyhostname = a.example\r\nmydomain = example\r\n  continued\r\nlast = x")
    r = run("mydomain=b.example", "added=1", confdir=d)
    assert r.returncode == 0, r.stderr
    assert (d / "main.cf").read_bytes() == (
        b"# dos\r\nmyhostname = a.example\r\nmydomain = b.example\nlast = x\nadded = 1\n")
    assert run("-h", "myhostname", "mydomain", confdir=d).stdout == "a.example\nb.example\n"


def test_edit_refuses_oversized_main_cf_and_leaves_it(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    big = b"# " + b"x" * (17 * 1024 * 1024) + b"\n"
    (d / "main.cf").write_bytes(big)
    r = run("myhostname=a.example", confdir=d)
    assert r.returncode == 1
    assert "too large" in r.stderr
    assert (d / "main.cf").stat().st_size == len(big)
    assert sorted(os.listdir(d)) == ["main.cf"]


def test_value_with_newline_is_refused(confdir):
    r = run("myhostname=a\nevil = 1", confdir=confdir)
    assert r.returncode == 1
    assert (confdir / "main.cf").read_text() == MAIN_CF
