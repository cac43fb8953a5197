"""The cluster choice in the settings: the dialog edits it, the settings check it, the
runner follows it (no Ray is started here)."""
import pytest

from app.cluster_runner import ClusterRunner, make_runner
from app.runner import Runner
from app.settings import Settings


def test_dialog_edits_the_cluster(qtbot):
    from ui.settings_dialog import SettingsDialog
    dialog = SettingsDialog({"cluster": "ray"})
    qtbot.addWidget(dialog)
    assert dialog.cluster_edit.text() == "ray"
    dialog.cluster_edit.setText("  ray://head.example:10001 ")
    assert dialog.values()["cluster"] == "ray://head.example:10001"
    dialog.cluster_edit.clear()
    assert dialog.values()["cluster"] == ""


@pytest.mark.parametrize("value", ["", "local", "ray", "ray://10.0.0.5:10001"])
def test_cluster_values_accepted(value):
    assert Settings.coerce("cluster", value) == value


@pytest.mark.parametrize("value", ["ray://nohost", "http://head:10001", "spark"])
def test_bad_cluster_values_refused(value, library):
    with pytest.raises(ValueError):
        Settings.coerce("cluster", value)
    library.with_name("library.settings.json").parent.mkdir(parents=True, exist_ok=True)
    library.with_name("library.settings.json").write_text(f'{{"cluster": "{value}"}}')
    assert Settings.load(library).cluster == ""        # a bad saved value: the default


def test_runner_follows_the_setting(library):
    assert type(make_runner(library, Settings())) is Runner
    assert type(make_runner(library, Settings(cluster="local"))) is Runner
    runner = make_runner(library, Settings(cluster="ray://10.0.0.5:10001"))
    assert isinstance(runner, ClusterRunner) and runner.address == "ray://10.0.0.5:10001"
    assert runner.stream                  # a remote cluster without a path map: streamed
    assert not make_runner(library, Settings(cluster="ray")).stream
