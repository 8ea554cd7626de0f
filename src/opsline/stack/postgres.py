"""PostgreSQL 15 for the stack: one cluster, a database and role for MLflow, one for opsline.

``initdb`` and the server refuse to run as root, so as root they run as ``postgres.os_user``
(the ``postgres`` user the Debian package creates) through ``setpriv``, which execs in place:
the recorded pid is the postmaster itself. Only TCP is used (no Unix socket), so nothing is
written outside the data directory.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from opsline.errors import OpslineError
from opsline.stack import processes
from opsline.stack.settings import StackSettings

BIN = Path(os.environ.get("OPSLINE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def service(settings: StackSettings) -> processes.Service:
    return processes.Service("PostgreSQL", "postgres", settings.dir)


def _runner(settings: StackSettings) -> tuple[list[str], pwd.struct_passwd]:
    """The command prefix that runs a program as the cluster's owner, and that user."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid())
    try:
        user = pwd.getpwnam(settings.pg_os_user)
    except KeyError:
        raise OpslineError(
            f"PostgreSQL cannot run as root and the user "
            f"{settings.pg_os_user!r} (postgres.os_user) does not exist; create"
            f" it or install postgresql-15 (`make system-deps`)."
        ) from None
    return [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
        "--",
    ], user


def _prepare_dir(settings: StackSettings, user: pwd.struct_passwd, prefix: list[str]) -> Path:
    """Create the data directory's parent, owned by the cluster's user; refuse a foreign one."""
    root = settings.dir / "postgres"
    data = root / "data"
    for path in (root, data):
        if path.exists() and path.stat().st_uid != user.pw_uid:
            owner = _owner_name(path.stat().st_uid)
            raise OpslineError(
                f"PostgreSQL data dir {path} is owned by {owner}, not "
                f"{user.pw_name} who runs the server; choose another stack dir"
                f" or change its owner."
            )
    root.mkdir(parents=True, exist_ok=True)
    if prefix:
        os.chown(root, user.pw_uid, user.pw_gid)
        # The server user must reach the folder through every parent (e.g. a private $HOME).
        reach = subprocess.run([*prefix, "test", "-w", str(root)], capture_output=True, check=False)
        if reach.returncode != 0:
            raise OpslineError(
                f"PostgreSQL data dir {root} is not reachable by the user "
                f"{user.pw_name} (a parent folder is private); use a stack dir"
                f" it can reach (--dir or dir: in the stack config)."
            )
    root.chmod(0o700)
    return data


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def init_cluster(settings: StackSettings) -> None:
    """``initdb`` once: a superuser ``postgres`` with the configured password."""
    prefix, user = _runner(settings)
    data = _prepare_dir(settings, user, prefix)
    if (data / "PG_VERSION").is_file():
        return
    svc = service(settings)
    pwfile = data.parent / "superuser.pw"
    pwfile.write_text(settings.pg_superuser_password + "\n")
    if prefix:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    pwfile.chmod(0o600)
    svc.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with svc.log.open("ab") as log:
            done = subprocess.run(
                [
                    *prefix,
                    str(BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data.parent,
                check=False,
            )
    except FileNotFoundError:
        raise OpslineError(
            f"PostgreSQL 15 is not installed ({BIN / 'initdb'} is missing); run `make system-deps`."
        ) from None
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise OpslineError(
            f"PostgreSQL initdb failed (exit code {done.returncode}); see its log {svc.log}."
        )
    if settings.client_host != settings.host:  # bound to all interfaces: allow remote peers
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")


def start(settings: StackSettings) -> int:
    prefix, _ = _runner(settings)
    data = settings.dir / "postgres" / "data"
    cmd = [
        *prefix,
        str(BIN / "postgres"),
        "-D",
        str(data),
        "-p",
        str(settings.pg_port),
        "-c",
        f"listen_addresses={settings.host}",
        "-c",
        "unix_socket_directories=",
    ]
    return processes.start(service(settings), cmd, cwd=data.parent)


def healthy(settings: StackSettings) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host=settings.client_host,
            port=settings.pg_port,
            user="postgres",
            password=settings.pg_superuser_password,
            dbname="postgres",
            connect_timeout=2,
        ).close()
    except psycopg2.Error as error:
        # Refusing our password is an answer: it is up (provision then says what is wrong).
        return "authentication failed" in str(error)
    return True


def provision(settings: StackSettings) -> None:
    """Create the roles and databases that do not exist yet (idempotent)."""
    import psycopg2
    from psycopg2 import sql

    try:
        conn = psycopg2.connect(
            host=settings.client_host,
            port=settings.pg_port,
            user="postgres",
            password=settings.pg_superuser_password,
            dbname="postgres",
            connect_timeout=5,
        )
    except psycopg2.Error as error:
        # E.g. postgres.superuser_password changed after the cluster was initialised.
        first = str(error).strip().splitlines()[0]
        raise OpslineError(
            f"PostgreSQL refused the stack's superuser ({first}); see its log "
            f"{service(settings).log}."
        ) from None
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            for db in (settings.mlflow_db, settings.opsline_db):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (db.user,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                # ALTER keeps the password in step with the config when it changes.
                cur.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(db.user)),
                    (db.password,),
                )
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.database,))
                if not cur.fetchone():
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(db.database), sql.Identifier(db.user)
                        )
                    )
    finally:
        conn.close()
