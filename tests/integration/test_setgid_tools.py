"""Set-gid kitequeue run by an ordinary user: which configuration it may use.

Like Postfix's postqueue, a set-gid kitequeue takes only the built-in
configuration directory, or one that directory's main.cf lists in
alternate_config_directories (or multi_instance_directories).
"""

import subprocess

import pytest

from test_smtpd import builtin_main_cf, setgid_copy  # noqa: F401  (builtin_main_cf is a fixture)


def setgid_kitequeue(kite):
    return setgid_copy(kite, "kitequeue")


def as_nobody(kite, argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/", env=kite.env(),
                          user=65534, group=65534, extra_groups=[])


@pytest.mark.parametrize("param", ["alternate_config_directories", "multi_instance_directories"])
def test_setgid_kitequeue_takes_a_listed_directory(kite, builtin_main_cf, param):  # noqa: F811
    builtin_main_cf.write_text(f"{param} = {kite.confdir}\n")
    kq = setgid_kitequeue(kite)
    kite.start()
    r = as_nobody(kite, [str(kq), "-c", str(kite.confdir), "-p"])
    assert r.returncode == 0 and r.stdout == "Mail queue is empty\n", (r.stdout, r.stderr)
    # The environment is a request like -c, and is held to the same list.
    env = dict(kite.env(), KITE_CONFIG_DIR=str(kite.confdir))
    r = subprocess.run([str(kq), "-p"], capture_output=True, text=True, timeout=30, cwd="/", env=env,
                       user=65534, group=65534, extra_groups=[])
    assert r.returncode == 0 and r.stdout == "Mail queue is empty\n", (r.stdout, r.stderr)


def test_setgid_kitequeue_refuses_an_unlisted_directory(kite, builtin_main_cf):  # noqa: F811
    builtin_main_cf.write_text(f"alternate_config_directories = {kite.confdir}/other, /elsewhere\n")
    kq = setgid_kitequeue(kite)
    kite.start()
    r = as_nobody(kite, [str(kq), "-c", str(kite.confdir), "-p"])
    assert r.returncode == 64, (r.stdout, r.stderr)
    assert f"{kite.confdir} is not the built-in configuration directory" in r.stderr
    # root is not held to the list.
    r = subprocess.run([str(kq), "-c", str(kite.confdir), "-p"], capture_output=True, text=True, timeout=30,
                       env=kite.env())
    assert r.returncode == 0, r.stderr
