"""The import graph flows one way (DESIGN.md): a package imports only from its own layer and the layers below.

capture < render < model < sequence < codec < eval < train < scale < (sources, demo, layer) < cli, over a base of small
modules every layer may use. `sequence` defines what every consumer reads (frame -> Gaussians) and sits below
the encoder that codes one and the evaluator that scores one; the trainer evaluates what it trained, so eval
sits below train. Every import statement counts, those inside functions included.
"""

import ast
import os

import gifstream_engine

PACKAGE = os.path.dirname(gifstream_engine.__file__)
ROOT = os.path.dirname(PACKAGE)
LAYERS = [
    {"__init__", "__main__", "errors", "validate", "fileio", "imageio", "plyio", "events", "frames", "conventions"},
    {"capture"},
    {"render"},
    {"model"},
    {"sequence"},
    {"codec"},
    {"eval"},
    {"train"},
    {"scale"},
    {"sources", "demo", "layer"},
    {"cli"},
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """'gifstream_engine.codec.header' -> 'codec'; 'gifstream_engine' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_module(name: str) -> bool:
    path = os.path.join(ROOT, *name.split("."))
    return os.path.isdir(path) or os.path.isfile(path + ".py")


def engine_imports(path: str, module: str):
    """(line, imported gifstream_engine module) of every import in the file at `path` (module name `module`)."""
    tree = ast.parse(open(path).read(), path)
    is_package = os.path.basename(path) == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gifstream_engine"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("gifstream_engine"):
                if target == "gifstream_engine" or (node.module is None and node.level):
                    for alias in node.names:  # `from . import validate`, `from .. import __version__`
                        name = f"{target}.{alias.name}"
                        yield node.lineno, name if is_module(name) else target
                else:
                    yield node.lineno, target


def engine_modules():
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__" and d != "blender_side"]  # blender_side runs inside Blender
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
                yield path, rel.removesuffix(".__init__") if name == "__init__.py" else rel


def test_every_unit_has_a_layer():
    units = {unit_of(module) for _, module in engine_modules()}
    assert units <= set(LAYER_OF), f"modules without a layer in LAYERS: {sorted(units - set(LAYER_OF))}"


def test_imports_never_point_up():
    upward = []
    for path, module in engine_modules():
        mine = LAYER_OF[unit_of(module)]
        for line, target in engine_imports(path, module):
            theirs = LAYER_OF.get(unit_of(target))
            if theirs is None or theirs > mine:
                upward.append(f"{module}:{line} imports {target} (layer {theirs} > {mine})")
    assert not upward, "imports against the flow:\n" + "\n".join(upward)


def test_the_import_walk_sees_relative_and_late_imports(tmp_path):
    """The checker itself: a relative import inside a function is found and resolved."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from ..train.trainer import Training\n    from .. import validate\n")
    found = [t for _, t in engine_imports(str(path), "gifstream_engine.codec.x")]
    assert found == ["gifstream_engine.train.trainer", "gifstream_engine.validate"]


def test_conventions_copies_are_identical():
    engine = open(os.path.join(PACKAGE, "conventions.py"), "rb").read()
    addon = open(os.path.join(ROOT, "blender_addon", "core", "conventions.py"), "rb").read()
    assert engine == addon, "gifstream_engine/conventions.py and blender_addon/core/conventions.py differ: copy one over the other"


def test_camera_conversion_round_trips():
    import numpy as np
    from scipy.spatial.transform import Rotation

    from gifstream_engine import conventions

    w2c = np.eye(4)
    w2c[:3, :3] = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    w2c[:3, 3] = [0.5, -2.0, 3.0]
    world = np.asarray(conventions.blender_camera_from_w2c(w2c.tolist()))
    # Blender cameras look down their -z axis, OpenCV cameras down +z: the same world direction
    assert np.allclose(world[:3, 2], -np.linalg.inv(w2c)[:3, 2])
    assert np.allclose(world[:3, 3], np.linalg.inv(w2c)[:3, 3])  # the same centre
    assert np.allclose(conventions.w2c_from_blender_camera(world.tolist()), w2c)
