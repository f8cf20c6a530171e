"""The `moodshelf` command: help for every subcommand and clean errors (exit 2, no traceback) on bad input."""
import socket
import subprocess
import sys

import pytest

from app.cli import main


def _run(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_help_lists_every_subcommand():
    out = _run("--help")
    assert out.returncode == 0
    for cmd in ("demo", "serve", "generate", "train", "catalog"):
        assert cmd in out.stdout
    for cmd in ("demo", "serve", "generate", "train", "catalog"):
        sub = _run(cmd, "--help")
        assert sub.returncode == 0 and "usage: moodshelf " + cmd in sub.stdout


def test_catalog_import_of_a_bad_file_exits_2_and_imports_nothing(home, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,author,language,year\n채식주의자,한강,ko,2007\n소년이 온다,한강,kr,20x4\n", encoding="utf-8")
    assert main(["catalog", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "nothing was imported" in err and "Traceback" not in err
    main(["catalog", "stats"])
    assert "books: none" in capsys.readouterr().out


def test_wrongly_encoded_catalog_suggests_cp949(home, tmp_path, capsys):
    f = tmp_path / "export.csv"
    f.write_bytes("title,author,language\n채식주의자,한강,ko\n".encode("cp949"))
    assert main(["catalog", "import", str(f)]) == 2
    assert "--encoding cp949" in capsys.readouterr().err
    assert main(["catalog", "import", str(f), "--encoding", "cp949"]) == 0


def test_port_in_use_is_a_clear_error(home, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err


def test_unwritable_home_is_a_clear_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = _run("catalog", "stats", env={"MOODSHELF_HOME": str(afile / "home")})
    assert out.returncode == 2
    assert "is not writable" in out.stderr and "MOODSHELF_HOME" in out.stderr and "Traceback" not in out.stderr


def test_invalid_train_flags_report_all_problems(home, capsys):
    assert main(["train", "--lora-r", "0", "--learning-rate", "-1"]) == 2
    err = capsys.readouterr().err
    assert "lora_r must be > 0" in err and "learning_rate must be > 0" in err


def test_bad_demo_evaluation_flags_are_refused_before_any_work(home, capsys):
    assert main(["demo", "--no-serve", "--eval-max-new-tokens", "0"]) == 2
    assert "--eval-max-new-tokens at least 1 (got 0)" in capsys.readouterr().err
    assert main(["demo", "--no-serve", "--batch-size", "0"]) == 2
    assert "batch_size must be > 0" in capsys.readouterr().err
    assert not (home / "moodshelf.db").exists()  # nothing was started: no catalog, no samples, no run


def test_generate_then_train_without_approved_samples_is_clear(home, capsys):
    assert main(["generate", "--count", "5", "--language", "en"]) == 0  # not approved: pending review
    assert main(["train", "--max-steps", "1"]) == 2
    assert "No approved samples" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [(["generate", "--count", "0"], "count must be > 0"),
                                          (["generate", "--provider", "gpt9"], "unknown provider")])
def test_bad_generate_settings(home, capsys, args, needle):
    assert main(args) == 2
    assert needle in capsys.readouterr().err


# -- inputs that used to end in a traceback: one line on stderr, exit 2, nothing written -------------------------
def _one_line_error(capsys) -> str:
    """The one error line on stderr (a progress bar may have been drawn before it)."""
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert err.rstrip("\n").endswith(errors[0]), err
    return errors[0]


def _nothing_written(home) -> bool:
    return not home.exists() or not any(home.rglob("*"))


def test_postgres_url_without_its_driver_names_the_extra(home, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if moodshelf[postgres] were not installed
    monkeypatch.setenv("DATABASE_URL", "postgresql://moodshelf:s3cret@db.example/moodshelf")
    assert main(["catalog", "stats"]) == 2
    err = _one_line_error(capsys)
    assert "pip install 'moodshelf[postgres]'" in err and "psycopg2" in err and "s3cret" not in err
    assert _nothing_written(home)


@pytest.mark.parametrize("url, needle", [("not a url at all", "is not a database URL"),
                                         ("nosuchdb://user:pw@host/x", "unknown kind of database 'nosuchdb'")])
def test_unparsable_database_url_is_one_line(home, monkeypatch, capsys, url, needle):
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["jobs"]) == 2
    err = _one_line_error(capsys)
    assert needle in err and "pw@" not in err
    assert _nothing_written(home)


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_on_an_impossible_port_is_one_line(home, capsys, port):
    assert main(["serve", "--port", port]) == 2
    assert f"--port must be between 1 and 65535 (got {port})" in _one_line_error(capsys)
    assert _nothing_written(home)


def test_malformed_moodshelf_auth_stops_serve_before_it_starts(home, monkeypatch, capsys, free_port):
    monkeypatch.setenv("MOODSHELF_AUTH", "admin-without-a-password")
    assert main(["serve", "--port", str(free_port)]) == 2
    assert "MOODSHELF_AUTH must look like user:password" in _one_line_error(capsys)
    assert _nothing_written(home)


@pytest.mark.parametrize("threshold", ["0.99", "1.5", "0"])
def test_impossible_near_dup_threshold_is_refused_before_a_job_exists(home, capsys, threshold):
    assert main(["generate", "--count", "5", "--near-dup-threshold", threshold]) == 2
    err = _one_line_error(capsys)
    assert "near_dup_threshold must be above 0 and at most 0.96" in err and f"got {float(threshold)}" in err
    assert _nothing_written(home)  # no database, so no pending job


def test_the_largest_accepted_near_dup_threshold_is_what_datasketch_accepts():
    from datasketch import MinHashLSH

    from datagen.dedup import MAX_THRESHOLD, NUM_PERM

    MinHashLSH(threshold=MAX_THRESHOLD, num_perm=NUM_PERM)
    with pytest.raises(ValueError):
        MinHashLSH(threshold=MAX_THRESHOLD + 0.005, num_perm=NUM_PERM)


BATCH_PATHS = {"openai": r"/v1/batches", "anthropic": r"/v1/messages/batches"}


@pytest.fixture(params=["openai", "anthropic"])
def vendor(request, monkeypatch):
    """The provider name and its fake server, with the key and base URL exported."""
    from fakes.anthropic_server import FakeAnthropicServer
    from fakes.openai_server import FakeOpenAIServer

    server = (FakeOpenAIServer if request.param == "openai" else FakeAnthropicServer)().start()
    prefix = request.param.upper()
    monkeypatch.setenv(f"{prefix}_API_KEY", "sk-test-0000000000")
    monkeypatch.setenv(f"{prefix}_BASE_URL", server.base_url)
    yield request.param, server
    server.stop()


def _jobs(home) -> list:
    from db.engine import open_db
    from db.models import GenerationJob

    db = open_db()
    try:
        with db.session() as s:
            return list(s.query(GenerationJob))
    finally:
        db.dispose()


def test_batch_on_a_server_without_a_batch_api_is_refused_before_a_job_exists(home, vendor, capsys):
    name, server = vendor
    for method in ("GET", "POST"):
        server.override(method, BATCH_PATHS[name], lambda req: server.error_reply(404, "Not found"))
    assert main(["generate", "--provider", name, "--language", "en", "--count", "3", "--batch"]) == 2
    err = _one_line_error(capsys)
    assert "has no batch API" in err and "404" in err and "without --batch" in err and "sk-test" not in err
    assert _jobs(home) == []


def test_a_refused_batch_ends_the_job_with_the_vendors_reason_in_one_line(home, vendor, capsys):
    name, server = vendor
    server.override("POST", BATCH_PATHS[name],
                    lambda req: server.error_reply(400, "This model is not available in the batch API."))
    assert main(["generate", "--provider", name, "--language", "en", "--count", "3", "--batch"]) == 2
    err = _one_line_error(capsys)
    assert "batch API refused" in err and "400" in err and "not available in the batch API" in err
    (job,) = _jobs(home)
    # Not left pending or half-submitted: failed with the reason, no batch recorded, resumable once fixed.
    assert job.status == "failed" and "not available in the batch API" in job.error
    assert not job.batch_state.get("batches") and job.pid is None
