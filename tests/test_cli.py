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


def test_generate_then_train_without_approved_samples_is_clear(home, capsys):
    assert main(["generate", "--count", "5", "--language", "en"]) == 0  # not approved: pending review
    assert main(["train", "--max-steps", "1"]) == 2
    assert "No approved samples" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [(["generate", "--count", "0"], "count must be > 0"),
                                          (["generate", "--provider", "gpt9"], "unknown provider")])
def test_bad_generate_settings(home, capsys, args, needle):
    assert main(args) == 2
    assert needle in capsys.readouterr().err
