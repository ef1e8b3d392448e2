"""SQLite's wake-ups are datagrams to a socket per process under var/: a var/ deeper than a
socket's path may be (about 100 bytes) still wakes every process, through a directory of the
user's in the system's temporary directory."""

import os
from pathlib import Path

import pytest

from clientdesk.core import notify


@pytest.mark.parametrize("depth", [1, 12])
def test_a_poke_wakes_a_waiter_however_deep_var_is(settings, tmp_path, depth):
    var = tmp_path.joinpath(*["a-rather-long-directory-name"] * depth)
    settings.VAR_DIR = var
    waiter = notify._SocketWaiter()
    try:
        assert len(os.fsencode(waiter._path)) <= notify.SOCKET_PATH_MAX
        assert not waiter.wait(0.05)
        notify.datagram_poke(notify.socket_dir("workers"))
        assert waiter.wait(10)
    finally:
        waiter.close()


def test_processes_of_one_var_share_the_short_directory_and_others_do_not(settings, tmp_path):
    deep = [tmp_path.joinpath(name, *["d" * 40] * 4) for name in ("one", "two")]
    settings.VAR_DIR = deep[0]
    first = notify.socket_dir("events")
    settings.VAR_DIR = Path(str(deep[0]) + "/.")  # the same directory, written another way
    assert notify.socket_dir("events") == first
    settings.VAR_DIR = deep[1]
    assert notify.socket_dir("events") != first
    assert first.parent.stat().st_mode & 0o777 == 0o700
