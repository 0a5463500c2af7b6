"""The add-on's colour management check (scene/colour.py has no bpy: a stand-in scene is enough)."""

from types import SimpleNamespace

from conftest import addon_module


def _scene(view="AgX", look="None", exposure=0.0, gamma=1.0, curves=False, display="sRGB"):
    return SimpleNamespace(view_settings=SimpleNamespace(view_transform=view, look=look, exposure=exposure, gamma=gamma,
                                                         use_curve_mapping=curves),
                           display_settings=SimpleNamespace(display_device=display))


def test_what_alters_the_capture_is_named_and_set_back():
    colour = addon_module("scene.colour")
    assert colour.altered(_scene(view="Standard")) == []
    scene = _scene(look="AgX - Punchy", exposure=0.5, curves=True)
    assert colour.altered(scene) == ["view transform AgX", "look AgX - Punchy", "exposure 0.5", "curves on"]
    changed = colour.show_as_captured(scene)
    assert changed == ["view transform AgX", "look AgX - Punchy", "exposure 0.5", "curves on"]
    assert colour.altered(scene) == [] and colour.show_as_captured(scene) == []
    assert "was view transform AgX" in colour.report(changed) and colour.report([]) == ""
