"""The `microcred` command line, run as a real process (or through its entry point) against a real
SQLite file and, when configured, PostgreSQL: every command of issue 14, `verify` of baked PNG
and SVG badges, and the one-line errors (exit 2, no traceback) for what a user must fix.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from app.badges.bake import bake_png, unbake
from app.cli import cli
from app.core.config import Settings
from conftest import ADMIN, BASE_URL, PG_URL, World, bearer, check

MICROCRED = str(Path(sys.executable).parent / "microcred")


# --- running the CLI ----------------------------------------------------------------------------


def env_for(settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """A process environment without any MICROCRED_* of ours, plus the test's database and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROCRED_")}
    if settings is not None:
        env.update(
            MICROCRED_BASE_URL=settings.base_url,
            MICROCRED_DATABASE_URL=settings.database_url,
            MICROCRED_KEYS_DIR=str(settings.keys_dir),
        )
    env.update(extra)
    return env


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """`microcred ARGS` as a real process (stdin as bytes: a badge image may be piped in)."""
    done = subprocess.run(
        [MICROCRED, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def invoke(settings: Settings, *args: str) -> Result:
    """`microcred ARGS` through its entry point, in this process (faster than a process)."""
    return CliRunner().invoke(cli, list(args), env=env_for(settings))


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.output, result.stderr)
    return json.loads(result.stdout)


def assert_one_line(stderr: str, returncode: int, *fragments: str) -> str:
    """Exit 2 and one line on stderr carrying each fragment; never a traceback."""
    assert returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- every command, end to end ------------------------------------------------------------------


def test_issuers_api_keys_achievements_and_credentials_from_the_shell(
    settings: Settings, client: TestClient
) -> None:
    """The whole life of a credential with the CLI only, checked through the HTTP API."""
    created = ok_json(
        invoke(
            settings,
            "issuer",
            "create",
            "--name",
            "Northwind Data School",
            "--url",
            "https://northwind.example",
            "--suspension",
        )
    )
    slug = created["issuer"]["slug"]
    listed = invoke(settings, "issuer", "list")
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"^{slug}\s+Northwind Data School\s+ES256\s+did:web:", listed.stdout, re.M)
    assert [i["slug"] for i in ok_json(invoke(settings, "issuer", "list", "--json"))] == [slug]

    # API keys: a second key works at once; revoked, it stops.
    key = ok_json(invoke(settings, "api-key", "create", "--issuer", slug, "--name", "LMS"))
    assert key["name"] == "LMS"
    assert key["key"].startswith(key["prefix"])
    assert client.get("/api/v1/achievements", headers=bearer(key["key"])).status_code == 200
    keys = ok_json(invoke(settings, "api-key", "list", "--issuer", slug))
    assert {k["prefix"] for k in keys} == {created["api_key"][:12], key["prefix"]}
    assert all("key" not in k for k in keys)
    revoked = ok_json(invoke(settings, "api-key", "revoke", key["id"], "--issuer", slug))
    assert revoked["revoked_at"] is not None
    assert client.get("/api/v1/achievements", headers=bearer(key["key"])).status_code == 401
    again = invoke(settings, "api-key", "revoke", key["id"], "--issuer", slug)
    assert_one_line(again.stderr, again.exit_code, "already revoked")
    other = invoke(settings, "api-key", "revoke", str(uuid.uuid4()), "--issuer", slug)
    assert_one_line(other.stderr, other.exit_code, "has no API key")

    # Achievements.
    achievement = ok_json(
        invoke(
            settings,
            "achievement",
            "create",
            "--issuer",
            slug,
            "--name",
            "SQL for Analysts",
            "--description",
            "Writes correct, efficient SQL for reporting.",
            "--criteria",
            "Passed a proctored practical exam.",
            "--type",
            "MicroCredential",
            "--tag",
            "SQL",
            "--tag",
            "Data visualisation",
        )
    )
    assert achievement["id"] == f"{BASE_URL}/achievements/{achievement['uuid']}"
    assert achievement["tags"] == ["SQL", "Data visualisation"]
    api_key = created["api_key"]
    seen = client.get(f"/api/v1/achievements/{achievement['uuid']}", headers=bearer(api_key))
    assert seen.status_code == 200
    assert seen.json()["name"] == "SQL for Analysts"
    bad = invoke(settings, "achievement", "create", "--issuer", slug, "--name", "No criteria")
    assert_one_line(bad.stderr, bad.exit_code, "invalid achievement")
    table = invoke(settings, "achievement", "list", "--issuer", slug)
    assert table.exit_code == 0
    assert achievement["uuid"] in table.stdout
    assert achievement["id"] in table.stdout
    assert [
        a["uuid"]
        for a in ok_json(invoke(settings, "achievement", "list", "--issuer", slug, "--json"))
    ] == [achievement["uuid"]]

    # Issue, naming the achievement by the URL the API returned; the manage link is printed.
    issued = ok_json(
        invoke(
            settings,
            "issue",
            "--issuer",
            slug,
            "--achievement",
            achievement["id"],
            "--email",
            "amara@example.com",
            "--name",
            "Amara Okafor",
        )
    )
    assert issued["url"] == f"{BASE_URL}/credentials/{issued['id']}"
    assert issued["manage_url"].startswith(f"{BASE_URL}/manage/mcm_")
    managed = client.get(issued["manage_url"].removeprefix(BASE_URL))
    assert managed.status_code == 200
    assert "Amara Okafor" in managed.text
    assert World(client).verify(issued["jwt"])["verified"] is True

    rows = invoke(settings, "credential", "list", "--issuer", slug)
    assert re.search(
        rf"^{issued['id']}\s+active\s+.*Amara Okafor\s+SQL for Analysts$", rows.stdout, re.M
    ), rows.stdout
    by_achievement = ok_json(
        invoke(
            settings,
            "credential",
            "list",
            "--issuer",
            slug,
            "--achievement",
            achievement["uuid"],
            "--json",
        )
    )
    assert [c["id"] for c in by_achievement] == [issued["id"]]
    shown = ok_json(invoke(settings, "credential", "show", issued["url"], "--issuer", slug))
    assert shown["id"] == issued["id"]
    assert shown["status"] == "active"
    assert shown["jwt"] == issued["jwt"]
    assert "manage_url" not in shown or shown["manage_url"] is None  # shown once, at issuance

    # Suspend, unsuspend, revoke: the API and the verdict follow at once.
    suspended = ok_json(
        invoke(
            settings,
            "credential",
            "suspend",
            issued["id"],
            "--issuer",
            slug,
            "--reason",
            "Under review",
        )
    )
    assert suspended["status"] == "suspended"
    assert suspended["status_reason"] == "Under review"
    assert World(client).verify(issued["jwt"])["status"] == "suspended"
    unsuspended = ok_json(
        invoke(
            settings,
            "credential",
            "unsuspend",
            issued["id"],
            "--issuer",
            slug,
            "--reason",
            "Cleared",
        )
    )
    assert unsuspended["status"] == "active"
    assert World(client).verify(issued["jwt"])["verified"] is True
    revoked_credential = ok_json(
        invoke(
            settings,
            "credential",
            "revoke",
            issued["id"],
            "--issuer",
            slug,
            "--reason",
            "Exam voided",
        )
    )
    assert revoked_credential["status"] == "revoked"
    api_view = client.get(f"/api/v1/credentials/{issued['id']}", headers=bearer(api_key)).json()
    assert (api_view["status"], api_view["status_reason"]) == ("revoked", "Exam voided")
    assert World(client).verify(issued["jwt"])["status"] == "revoked"
    final = invoke(
        settings, "credential", "unsuspend", issued["id"], "--issuer", slug, "--reason", "x"
    )
    assert_one_line(final.stderr, final.exit_code, "not suspended")
    no_reason = invoke(
        settings, "credential", "revoke", issued["id"], "--issuer", slug, "--reason", "  "
    )
    assert_one_line(no_reason.stderr, no_reason.exit_code, "--reason")
    missing_reason = invoke(settings, "credential", "revoke", issued["id"], "--issuer", slug)
    assert missing_reason.exit_code == 2
    assert "--reason" in missing_reason.output


def test_credentials_of_another_issuer_are_not_found(settings: Settings, world: World) -> None:
    issuer, credential = world.issued()
    other = world.issuer(name="Other School")
    for action in (["show"], ["revoke", "--reason", "r"], ["suspend", "--reason", "r"]):
        result = invoke(
            settings,
            "credential",
            action[0],
            credential["id"],
            "--issuer",
            other["issuer"]["slug"],
            *action[1:],
        )
        assert_one_line(result.stderr, result.exit_code, f"No credential {credential['id']}")
    assert world.verify(credential["jwt"])["verified"] is True
    for ref in ("not-a-uuid", "https://elsewhere.example/credentials/" + credential["id"]):
        result = invoke(settings, "credential", "show", ref, "--issuer", issuer["issuer"]["slug"])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_issue_names_the_achievement_by_uuid_or_url_and_refuses_others(
    settings: Settings, world: World
) -> None:
    issuer = world.issuer()
    slug, key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(key)
    base = ["issue", "--issuer", slug, "--email", "a@example.com", "--achievement"]
    for ref in (achievement["uuid"], achievement["id"], achievement["uuid"].upper()):
        assert ok_json(invoke(settings, *base, ref))["id"]
    foreign = achievement["id"].replace(BASE_URL, "https://evil.example")
    for ref, fragment in (
        (foreign, "not an achievement URL of this service"),
        ("not-a-uuid", "achievement_id"),
        (f"{BASE_URL}/credentials/{achievement['uuid']}", "not an achievement URL"),
        (str(uuid.uuid4()), "No achievement"),
    ):
        result = invoke(settings, *base, ref)
        assert_one_line(result.stderr, result.exit_code, fragment)


def test_issue_csv_takes_the_achievement_url(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    issuer = world.issuer()
    slug, key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(key)
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "external_id,email,name,achievement_id\n"
        "r1,a@example.com,A,\n"
        f"r2,b@example.com,B,{achievement['id']}\n"
        f"r3,c@example.com,C,{achievement['id'].replace(BASE_URL, 'https://evil.example')}\n",
        "utf-8",
    )
    done = invoke(
        settings, "issue", "--issuer", slug, "--achievement", achievement["id"], "--csv", str(rows)
    )
    assert done.exit_code == 1, done.output  # one row refused
    report = json.loads(done.stdout)
    assert (report["issued"], report["failed"]) == (2, 1)
    (refused,) = report["rows"]
    assert refused["row"] == 3
    assert "not an achievement URL of this service" in refused["error"]
    foreign = invoke(
        settings,
        "issue",
        "--issuer",
        slug,
        "--achievement",
        "https://evil.example/achievements/" + achievement["uuid"],
        "--csv",
        str(rows),
    )
    assert_one_line(foreign.stderr, foreign.exit_code, "--achievement", "not an achievement URL")


# --- verify: baked badges like the web ----------------------------------------------------------


def test_verify_takes_baked_png_and_svg_badges(
    settings: Settings, world: World, client: TestClient, tmp_path: Path
) -> None:
    """A file downloaded from the credential's page verifies from the shell as on the web."""
    _issuer, credential = world.issued()
    env = env_for(settings)
    for kind in ("png", "svg"):
        image = client.get(f"/credentials/{credential['id']}/badge.{kind}")
        assert image.status_code == 200
        path = tmp_path / f"badge.{kind}"
        path.write_bytes(image.content)
        done = run(env, "verify", str(path))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("VALID  verified=true"), done.stdout
        assert "SQL for Analysts" in done.stdout
        as_json = json.loads(run(env, "verify", "--json", str(path)).stdout)
        web = client.post("/api/v1/verify", files={"file": (f"badge.{kind}", image.content)}).json()
        assert (as_json["status"], as_json["verified"]) == (web["status"], web["verified"])
        assert [c["check"] for c in as_json["checks"]] == [c["check"] for c in web["checks"]]
        # The name does not matter, the content does (as for the web upload) — also on stdin.
        renamed = tmp_path / f"badge-{kind}.txt"
        renamed.write_bytes(image.content)
        assert run(env, "verify", str(renamed)).returncode == 0
        assert run(env, "verify", "-", stdin=image.content).returncode == 0

    # A badge re-baked with a forged token says INVALID (exit 1), naming the signature.
    png = client.get(f"/credentials/{credential['id']}/badge.png").content
    head, payload, signature = str(unbake(png)).split(".")
    forged_signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    forged = tmp_path / "forged.png"
    forged.write_bytes(bake_png(png, f"{head}.{payload}.{forged_signature}"))
    done = run(env, "verify", "--json", str(forged))
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["verified"] is False
    assert check(result, "signature")["result"] == "fail"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG"),  # a PNG signature, then garbage
        (b"\x00\xff\xfe binary \x81", "neither a PNG or SVG badge image nor text"),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
            "entities",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "carries no credential"),
        (b"", "empty"),
    ],
)
def test_verify_of_an_unreadable_file_is_one_line(
    settings: Settings, tmp_path: Path, content: bytes, fragment: str
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("reading the file does not depend on the database")
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    done = run(env_for(settings), "verify", str(path))
    assert_one_line(done.stderr, done.returncode, fragment)


def test_verify_of_a_missing_file_is_one_line(settings: Settings, tmp_path: Path) -> None:
    done = run(env_for(settings), "verify", str(tmp_path / "nowhere.png"))
    assert_one_line(done.stderr, done.returncode, "nowhere.png", "neither a JWT")


# --- one-line errors ----------------------------------------------------------------------------


def _empty_postgres_schema() -> str:
    """A PostgreSQL schema with no tables (never migrated)."""
    assert PG_URL is not None
    schema = f"empty_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_not_migrated_is_one_line(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()  # a database file without any table
        url, shown = f"sqlite:///{path}", str(path)
    else:
        if not PG_URL:
            pytest.skip("PostgreSQL tests need MICROCRED_TEST_DATABASE_URL (set by .ci/run)")
        url = _empty_postgres_schema()
        shown = make_url(url).render_as_string(hide_password=True)
    env = env_for(MICROCRED_DATABASE_URL=url, MICROCRED_KEYS_DIR=str(tmp_path / "keys"))
    for args in (
        ["issuer", "list"],
        ["issuer", "create", "--name", "X", "--url", "https://x.example"],
        ["verify", "eyJhbGciOiJFUzI1NiJ9.e30.sig"],
        ["serve", "--port", "1"],
        ["demo"],
    ):
        done = run(env, *args)
        assert_one_line(
            done.stderr, done.returncode, "is not migrated", "microcred db upgrade", shown
        )
    assert not (tmp_path / "keys").exists()  # refused before a key was written
    assert run(env, "db", "upgrade").returncode == 0
    assert run(env, "issuer", "list").returncode == 0


def test_a_database_at_an_older_schema_is_one_line(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from app.core.migrate import alembic_config, upgrade

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    path = tmp_path / "old.db"
    upgrade(f"sqlite:///{path}", previous)
    env = env_for(MICROCRED_DATABASE_URL=f"sqlite:///{path}")
    done = run(env, "issuer", "list")
    assert_one_line(done.stderr, done.returncode, previous, head, "microcred db upgrade")


def test_outside_the_project_no_database_is_created(tmp_path: Path) -> None:
    """Without MICROCRED_DATABASE_URL, a command run in a folder without ./data/microcred.db
    says which database it would use and how to name another; it creates nothing."""
    env = env_for(MICROCRED_KEYS_DIR=str(tmp_path / "keys"))
    for args in (["issuer", "list"], ["verify", "eyJhbGciOiJFUzI1NiJ9.e30.sig"], ["demo"]):
        done = run(env, *args, cwd=tmp_path)
        assert_one_line(
            done.stderr,
            done.returncode,
            str(tmp_path / "data" / "microcred.db"),
            "MICROCRED_DATABASE_URL",
            "microcred db upgrade",
        )
    assert list(tmp_path.iterdir()) == []
    # Named explicitly, a missing file is refused the same way.
    named = env_for(MICROCRED_DATABASE_URL=f"sqlite:///{tmp_path}/other.db")
    done = run(named, "issuer", "list", cwd=tmp_path)
    assert_one_line(done.stderr, done.returncode, f"{tmp_path}/other.db", "MICROCRED_DATABASE_URL")
    # `db upgrade` is the one command that creates it, and says where.
    created = run(env, "db", "upgrade", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert str(tmp_path / "data" / "microcred.db") in created.stdout
    assert run(env, "issuer", "list", cwd=tmp_path).returncode == 0


def test_production_refusals_are_one_line(tmp_path: Path) -> None:
    env = env_for(MICROCRED_ENV="production", MICROCRED_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    for args in (["issuer", "list"], ["serve"], ["db", "upgrade"]):
        done = run(env, *args)
        assert_one_line(
            done.stderr,
            done.returncode,
            "configuration: insecure production settings",
            "MICROCRED_ADMIN_TOKEN",
            "MICROCRED_KEYS_PASSPHRASE",
            "https",
        )
    bad = run(env_for(MICROCRED_BASE_URL="ftp://x", MICROCRED_DB_POOL_SIZE="0"), "issuer", "list")
    assert_one_line(bad.stderr, bad.returncode, "MICROCRED_BASE_URL", "MICROCRED_DB_POOL_SIZE")
    assert not (tmp_path / "x.db").exists()


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://microcred:secret-password@127.0.0.1:1/microcred"
    done = run(env_for(MICROCRED_DATABASE_URL=url), "issuer", "list")
    line = assert_one_line(done.stderr, done.returncode, "cannot open the database", "127.0.0.1:1")
    assert "secret-password" not in line


def test_key_store_problems_are_one_line(settings: Settings, world: World, tmp_path: Path) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the key store is the same on both databases")
    # A keys "directory" that is a file: creating an issuer cannot store its key.
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory", "utf-8")
    env = env_for(settings, MICROCRED_KEYS_DIR=str(blocked))
    done = run(env, "issuer", "create", "--name", "Blocked", "--url", "https://blocked.example")
    assert_one_line(done.stderr, done.returncode, str(blocked))
    assert "Blocked" not in run(env_for(settings), "issuer", "list").stdout  # nothing half-written
    # A private key that went missing: issuing says which key and where.
    issuer = world.issuer()
    achievement = world.achievement(issuer["api_key"]["key"])
    for key_file in settings.keys_dir.iterdir():
        key_file.unlink()
    done = run(
        env_for(settings),
        "issue",
        "--issuer",
        issuer["issuer"]["slug"],
        "--achievement",
        achievement["uuid"],
        "--email",
        "a@example.com",
    )
    assert_one_line(done.stderr, done.returncode, "key", str(settings.keys_dir))


# --- help ---------------------------------------------------------------------------------------


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    from typer.main import get_command

    found = [path]
    click_group = get_command(group) if not path else group
    for name, command in getattr(click_group, "commands", {}).items():
        found += _commands(command, [*path, name])
    return found


def test_help_has_no_type_tags() -> None:
    """Every command's help shows TEXT, INTEGER, PATH, choices or nothing (flags), as click does,
    never typer's `<str>`/`<bool>`/`<int>`."""
    paths = _commands(cli, [])
    assert ["credential", "revoke"] in paths
    assert ["achievement", "create"] in paths
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        tags = re.findall(
            r"<(?:str|bool|int|float|path|file|datetime|list\[[a-z]+\])>", result.output
        )
        assert not tags, (path, tags, result.output)
    issue = CliRunner().invoke(cli, ["issue", "--help"], terminal_width=200).output
    assert re.search(r"--achievement\s+UUID_OR_URL", issue)
    assert re.search(r"--valid-until\s+TEXT", issue)
    rotate = CliRunner().invoke(cli, ["keys", "rotate", "--help"], terminal_width=200).output
    assert "[ES256|EdDSA|RS256]" in rotate
    verify = CliRunner().invoke(cli, ["verify", "--help"], terminal_width=200).output
    assert re.search(r"--json\s+Print", verify)  # a flag: no metavar at all


def test_the_admin_api_and_the_cli_list_the_same_issuers(
    settings: Settings, client: TestClient
) -> None:
    """One presenter (IssuerRead.from_record) for both."""
    invoke(settings, "issuer", "create", "--name", "A School", "--url", "https://a.example")
    invoke(settings, "issuer", "create", "--name", "B School", "--url", "https://b.example")
    over_http = client.get("/api/v1/issuers", headers=ADMIN).json()
    assert ok_json(invoke(settings, "issuer", "list", "--json")) == over_http


def test_a_table_missing_at_head_is_named_in_one_line(tmp_path: Path) -> None:
    """A database at the newest revision whose table was dropped by hand: the command that needs
    it fails on one line naming the table, not a traceback."""
    from app.core.migrate import upgrade

    path = tmp_path / "broken.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE trusted_issuers")
    done = run(env_for(MICROCRED_DATABASE_URL=f"sqlite:///{path}"), "trust", "list")
    assert_one_line(done.stderr, done.returncode, "trusted_issuers", "microcred db upgrade")


def test_a_postgresql_database_that_does_not_exist_is_one_line() -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL tests need MICROCRED_TEST_DATABASE_URL (set by .ci/run)")
    url = make_url(PG_URL).set(database=f"absent_{uuid.uuid4().hex[:8]}")
    env = env_for(MICROCRED_DATABASE_URL=url.render_as_string(hide_password=False))
    done = run(env, "issuer", "list")
    line = assert_one_line(
        done.stderr, done.returncode, "cannot open the database", "does not exist"
    )
    assert "not migrated" not in line


# --- the README and the Makefile ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_readmes_tampered_token_always_differs_in_its_signature() -> None:
    """The walk-through's tamper, run by a shell as written, on signatures of every first
    character: the decoded signature always changes (the old `${JWT%?}A` kept it one time in
    four, when the last character already was `A` or only its padding bits changed)."""
    import base64

    readme = (ROOT / "README.md").read_text("utf-8")
    snippet = "\n".join(
        line.split("  #")[0]
        for line in readme.splitlines()
        if line.startswith(("SIG=", "case $SIG", "TAMPERED="))
    )
    assert snippet.count("\n") == 2, snippet
    for first in "AQgwB_-9":
        signature = first + _b64url(bytes(range(64)))[1:]
        token = f"{_b64url(b'{}')}.{_b64url(b'{}')}.{signature}"
        done = subprocess.run(
            ["sh", "-c", f'{snippet}\nprintf %s "$TAMPERED"'],
            env={"JWT": token, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=True,
        )
        head, payload, forged = done.stdout.split(".")
        assert (head, payload) == tuple(token.split(".")[:2])

        def decoded(sig: str) -> bytes:
            return base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))

        assert decoded(forged) != decoded(signature), (first, forged)


def test_make_run_binds_loopback_unless_told_otherwise() -> None:
    def serve_line(*args: str, **env: str) -> str:
        done = subprocess.run(
            ["make", "-n", "run", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        (line,) = [x for x in done.stdout.splitlines() if " serve " in x]
        return line

    assert serve_line().endswith("serve --host 127.0.0.1 --port 8000")
    assert serve_line(HOST="my-laptop").endswith("serve --host 127.0.0.1 --port 8000")  # env
    assert serve_line("HOST=0.0.0.0", "PORT=8080").endswith("serve --host 0.0.0.0 --port 8080")
