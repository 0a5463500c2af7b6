"""Colour management that shows a capture as it was captured.

Captured footage is display-referred sRGB, and the engine fits its Gaussians to those values: the scene shows
footage, proxies and the compositing layer as captured only with the Standard view transform, no look, exposure 0,
gamma 1, no curves, on an sRGB display. Blender's default (AgX since 4.0) tone-maps them: lower contrast, milky
highlights (reported in issue 29: a trained proxy's Cycles render 24.7 dB from the footage under AgX, 31.9 dB
under Standard).
"""

from __future__ import annotations

# (setting, the value that shows the capture as captured, how the artist sees it named)
CAPTURED = (
    ("display_settings", "display_device", "sRGB", "display"),
    ("view_settings", "view_transform", "Standard", "view transform"),
    ("view_settings", "look", "None", "look"),
    ("view_settings", "exposure", 0.0, "exposure"),
    ("view_settings", "gamma", 1.0, "gamma"),
    ("view_settings", "use_curve_mapping", False, "curves"),
)


def altered(scene) -> list[str]:
    """What in the scene's colour management would alter the capture's colours, e.g. ["view transform AgX"]."""
    out = []
    for group, name, wanted, label in CAPTURED:
        value = getattr(getattr(scene, group), name)
        if value != wanted:
            out.append(f"{label} {value}" if name != "use_curve_mapping" else "curves on")
    return out


def show_as_captured(scene) -> list[str]:
    """Set the scene's colour management to show the capture as captured; returns what changed (`altered`'s
    words, empty when nothing did)."""
    changed = altered(scene)
    for group, name, wanted, _ in CAPTURED:
        if getattr(getattr(scene, group), name) != wanted:
            setattr(getattr(scene, group), name, wanted)
    return changed


def report(changed: list[str]) -> str:
    """The import operators' words for what `show_as_captured` changed."""
    return f"; colour management set to show the capture as captured (was {', '.join(changed)})" if changed else ""
