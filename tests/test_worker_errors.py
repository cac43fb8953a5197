"""A stage's failure reaches the user as one sentence; its traceback goes to the
library's log file (beside the library), never to the terminal."""
import threading

from app.runner import Runner
from app.settings import Settings
from app.worker import _run_job
from indexer.intake import take
from indexer.store import Store
from tests.media_factory import make_media


def test_file_deleted_mid_batch_gives_the_sentence_and_logs_the_traceback(library, tmp_path,
                                                                          capfd):
    keep = make_media(tmp_path / "keep.wav", text="Keep this one, it stays right here.")
    gone = make_media(tmp_path / "gone.wav", text="This one will vanish before it is heard.")
    s = Store(library)
    ids = [take(s, p).media_id for p in (keep, gone)]
    s.close()

    def on_event(e):     # probes run first: delete the file once it is probed, before speech
        if e["type"] == "job_finished" and e["stage"] == "probe" and e["media_id"] == ids[1]:
            gone.unlink()

    Runner(library, Settings(whisper_model="tiny.en"), on_event=on_event).run()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "FileNotFoundError" not in err, err
    s = Store(library)
    assert s.media(ids[0])["status"] == "done"
    failed = s.media(ids[1])
    assert failed["status"] == "failed" and "disappeared" in failed["error"]
    s.close()
    from app.settings import log_file
    log = log_file(library).read_text()
    assert "Traceback" in log and str(gone) in log


class _Events(list):
    send = list.append


class _RaisesKeyError:
    name = "probe"

    def run(self, media, ctx):
        return {}["duration"]


def _claimed_probe_job(library, tmp_path):
    s = Store(library)
    take(s, make_media(tmp_path / "clip.wav", seconds=1))
    return s, s.claim_next_job()


def test_key_error_inside_a_stage_is_reported_as_itself(library, tmp_path):
    store, job = _claimed_probe_job(library, tmp_path)
    events = _Events()
    _run_job(store, {"probe": _RaisesKeyError()}, job["id"], events, threading.Event())
    error = store.job(job["id"])["error"]
    assert store.job(job["id"])["state"] == "failed"
    assert "newer avindex" not in error
    assert "KeyError" in error and "duration" in error
    assert events[-1]["error"] == error
    from app.settings import log_file
    assert "KeyError" in log_file(library).read_text()
    store.close()


def test_an_unknown_stage_name_means_a_newer_library(library, tmp_path):
    store, job = _claimed_probe_job(library, tmp_path)
    _run_job(store, {}, job["id"], _Events(), threading.Event())
    assert "newer avindex" in store.job(job["id"])["error"]
    store.close()
