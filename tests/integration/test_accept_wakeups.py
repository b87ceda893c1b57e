"""The skeleton's accept loop: idle processes of one service share the
listening socket, and a new connection wakes one of them, not every one
(the others would only fail to accept with EAGAIN). Observed through each
process's voluntary context switches in /proc: a process asleep in its wait
that is not woken does not switch at all."""

import re
import time

from test_master import cf_testd, echo, hello, wait_until


def switches(pid):
    """voluntary_ctxt_switches of a process."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M)
    return int(m.group(1))


def idle_processes(kite, n):
    """Make n single_server processes exist and go idle; their pids."""
    socks, pids = [], set()
    for _ in range(n):
        pid, _, s = hello(kite)
        socks.append(s)
        pids.add(pid)
    assert len(pids) == n
    for s in socks:
        assert echo(s, "ping") == "ping"
        s.sendall(b"quit\r\n")
        s.close()
    return sorted(pids)


def settled(pids, pause=0.3):
    """Switch counts once they stop moving (every process back in its wait)."""
    def stable():
        a = {p: switches(p) for p in pids}
        time.sleep(pause)
        b = {p: switches(p) for p in pids}
        return b if a == b else None
    return wait_until(stable, timeout=10, what="idle processes to settle")


def test_one_idle_single_server_process_wakes_per_connection(kite):
    kite.master_cf(cf_testd(kite))
    kite.start()
    pids = idle_processes(kite, 4)
    for round_ in range(3):
        before = settled(pids)
        pid, _, s = hello(kite)
        assert pid in pids
        assert echo(s, f"round {round_}") == f"round {round_}"
        s.sendall(b"quit\r\n")
        s.close()
        after = settled(pids)
        woken = sorted(p for p in pids if after[p] != before[p])
        assert woken == [pid], (round_, pid, before, after)
