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
