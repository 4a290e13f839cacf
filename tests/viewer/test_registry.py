"""Panels are found through the registry (a panel registers its name, the kinds of files it reads
and its class); run directories through ``latent4d.runs.run_family``."""

from __future__ import annotations

import pytest
from latent4d.viewer import registry, ui
from latent4d.viewer.registry import FileKind, panel_name_for, read_input, register_panel

from latent4d.errors import InputError


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test are dropped afterwards."""
    registry.discover()
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))


def test_family_panels_register_themselves():
    names = [e.name for e in registry.entries()]
    assert names[:3] == ["hair", "objects", "motion"], "side-panel order"
    by_probe = [e.name for e in sorted(registry.entries(), key=lambda e: e.probe)]
    assert by_probe.index("hair") < by_probe.index("motion") < by_probe.index("objects")
    hair = registry.entry("hair")
    assert hair.cls.__name__ == "HairPanel" and hair.runs == ("hair",)
    assert ".data" in hair.kinds[0].extensions
    assert registry.entry("objects").runs == ("objects",)
    filters = dict((what, ext) for ext, what in registry.open_filters())
    assert ".hair" in filters["hair"] and ".obj" in filters["a mesh"]
    with pytest.raises(KeyError, match="no viewer panel named 'nope'"):
        registry.entry("nope")


class TextPanel(ui.Panel):
    """A panel for ``.txt`` notes (test only)."""

    @staticmethod
    def can_read(path) -> bool:
        return path.suffix == ".txt"

    @staticmethod
    def read(path):
        return path.read_text()


def test_a_new_panel_plugs_in_by_registering(tmp_path, scratch_registry):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with pytest.raises(InputError, match=r"cannot open this '\.txt' file: expected hair \(\.data"):
        panel_name_for(note)
    register_panel("notes", kinds=(FileKind("a note", (".txt",)),), order=5)(TextPanel)
    assert panel_name_for(note) == "notes" and read_input(note) == ("notes", "hello")
    assert ("'.txt'", "a note") in [(repr(ext), what) for ext, what in registry.open_filters()]
    with pytest.raises(ValueError, match="identifier"):
        register_panel("not a name", kinds=())


def test_runs_go_to_the_panel_of_their_family(tmp_path, scratch_registry):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("family: binary\nname: x\n")
    with pytest.raises(InputError, match=r"a 'binary' run; the viewer shows hair, objects and motion runs"):
        panel_name_for(run)

    class BinaryPanel(TextPanel):
        checked: list = []

        @classmethod
        def check_run(cls, path) -> None:
            cls.checked.append(path)

    register_panel("binary", kinds=(), runs=("binary",))(BinaryPanel)
    assert panel_name_for(run) == "binary" and BinaryPanel.checked == [run]
    motion = tmp_path / "motion_run"
    motion.mkdir()
    (motion / "config.yaml").write_text("family: motion\nname: shape_ae\n")
    with pytest.raises(InputError, match="a motion training run; reconstruct a sequence"):
        panel_name_for(motion)


def test_controller_builds_the_registered_panels(tmp_path, scratch_registry, monkeypatch):
    """The application holds one instance of each registered panel, in side-panel order, as an
    attribute of its name, and opens a file through it (headless: offscreen renderer, no window)."""
    from latent4d.viewer.controller import ViewerApp

    shown = []

    class NotesPanel(TextPanel):
        def show(self, data) -> None:
            shown.append(data)

    register_panel("notes", kinds=(FileKind("a note", (".txt",)),), order=-1)(NotesPanel)
    monkeypatch.delenv("DISPLAY", raising=False)
    app = ViewerApp(320, 240, headless=True, view_size=(64, 48))
    try:
        assert [type(p).__name__ for p in app.panels] == [
            "NotesPanel",
            "HairPanel",
            "ObjectsPanel",
            "MotionPanel",
        ]
        assert app.panel("hair") is app.hair and app.panel("notes") is app.panels[0]
        note = tmp_path / "n.txt"
        note.write_text("hi")
        assert app.load(note) and shown == ["hi"] and app.loaded == [note]
    finally:
        app.close()
