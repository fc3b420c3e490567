"""A throwaway PostgreSQL cluster for tests: Debian's ``postgresql`` package, on loopback.

The cluster runs as an unprivileged user (PostgreSQL refuses to run as root): ``nobody`` when
the tests run as root, else the current user. It listens on 127.0.0.1 on a free port, with its
socket in its own directory, password authentication over TCP (the tests pass the password
through ``PGPASSWORD``, as users do), and is stopped and removed afterwards. When PostgreSQL is
not installed the tests that need it are skipped with the reason — unless
``WORKBENCH_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which makes that a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

PASSWORD = "wb-test-pw-0c9a"


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A running cluster: ``location(db)`` is a DuckLake location for a database in it."""

    def __init__(self, bindir: str, root: str, port: int, user: str) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.user = user
        self.data = os.path.join(root, "data")
        self.socket_dir = os.path.join(root, "sock")
        self.log = os.path.join(root, "log")
        self._n = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            cmd = ["setpriv", "--reuid", str(entry.pw_uid), "--regid", str(entry.pw_gid), "--clear-groups", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root,
                             env={**os.environ, "PGPASSWORD": PASSWORD})
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {res.stderr.strip() or res.stdout.strip()}")
        return res

    def start(self) -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-o",
                  f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)

    def running(self) -> bool:
        return self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def create_database(self, name: str | None = None) -> str:
        self._n += 1
        name = name or f"lake{self._n}"
        self._run(f"{self.bindir}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "wb", name)
        return name

    def location(self, db: str) -> str:
        return f"ducklake:postgres:dbname={db} host=127.0.0.1 port={self.port} user=wb"


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    bindir = _bindir()
    if bindir is None:
        import pytest

        reason = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("WORKBENCH_REQUIRE_POSTGRES"):
            pytest.fail(reason + " and WORKBENCH_REQUIRE_POSTGRES is set")
        pytest.skip(reason)
    user = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "")
    root = tempfile.mkdtemp(prefix="wb-pg-")
    os.chmod(root, 0o777)
    cluster = Cluster(bindir, root, _free_port(), user)
    os.makedirs(cluster.socket_dir)
    if os.geteuid() == 0:
        shutil.chown(root, user)
        shutil.chown(cluster.socket_dir, user)
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as fh:
        fh.write(PASSWORD)
    os.chmod(pwfile, 0o644)
    try:
        cluster._run(f"{bindir}/initdb", "-D", cluster.data, "-U", "wb", "--auth-local=trust",
                     "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8")
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
