"""The one typed settings definition: the GUI's editable list, the CLI's choices and
the JSON beside the library all come from app.settings.Settings."""
import json

import pytest

from app.cli import build_parser
from app.settings import Settings, settings_file


def test_editable_settings_and_cli_choices_come_from_the_definition():
    assert Settings.editable() == ("whisper_model", "asr_engine", "device", "threads",
                                   "frame_interval_s", "models_dir",
                                   "trust_existing_subtitles", "speaker_model", "cluster")
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["index", "x.mp4", "--model", "large"])
    assert parser.parse_args(["index", "x.mp4", "--model", "tiny.en"]).model == "tiny.en"
    with pytest.raises(SystemExit):
        parser.parse_args(["index", "x.mp4", "--speaker-model", "xvector"])
    assert parser.parse_args(["index", "x.mp4", "--speaker-model", "campplus"]
                             ).speaker_model == "campplus"


def test_a_settings_file_is_read_typed_and_old_extra_values_are_kept(tmp_path):
    library = tmp_path / "lib.db"
    settings_file(library).write_text(json.dumps({
        "whisper_model": "tiny.en", "threads": "2", "frame_interval_s": "2.5",
        "device": "tpu", "extra": {"motion_auto_train": False}, "unknown": 1}))
    s = Settings.load(library)
    assert (s.whisper_model, s.threads, s.frame_interval_s) == ("tiny.en", 2, 2.5)
    assert s.device == "auto"                   # not a choice: the default
    assert s.motion_auto_train is False         # from the old untyped "extra" bag
    s.save(library)
    assert "extra" not in json.loads(settings_file(library).read_text())
