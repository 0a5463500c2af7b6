"""The Gaussian proxy, built in code: a Geometry Nodes tree that loads frame t's PLY from the cache folder and
turns every Gaussian into a camera-facing quad, and the material that shades a quad as that Gaussian.

Nothing here runs while the timeline plays: the tree reads Scene Time, maps it to the stream frame (fps
ratio, start offset, hold outside the range), builds the file name with string nodes and imports that one
PLY ("Import PLY" node, Blender 4.5+). Renders and farms (scripts disabled) evaluate it like any modifier.

The quad of a Gaussian with covariance S lies in the plane through its mean facing the active camera
(orthonormal u1, u2 in that plane). The marginal of S on the plane is the 2x2 block [u1 u2]^T S [u1 u2]; its
Cholesky factor [[a, 0], [b, c]] maps the unit disc onto the Gaussian's 1-sigma ellipse, so the quad
mean + k*s*(a u1 + b u2) + k*t*(c u2), (s, t) in [-1, 1]^2, covers k sigmas and the shader's
r^2 = k^2 (s^2 + t^2) is the Gaussian's Mahalanobis distance: alpha = opacity * exp(-r^2 / 2).
"""

from __future__ import annotations

import bpy

from ..core.sequence_files import FRAME_EPSILON

TREE_NAME = "GIFStream Gaussian proxy"
MATERIAL_NAME = "GIFStream Gaussian"
SH_C0 = 0.28209479177387814  # colour = 0.5 + SH_C0 * f_dc (degree-0 spherical harmonic)
COVARIANCE_EPS = 1e-12
LOW_PASS_PX2 = 0.3  # the engine rasteriser's eps2d (render.api.render), as in 3DGS and gsplat
# attributes the tree writes for the material
ATTR_ST, ATTR_COLOR, ATTR_OPACITY = "gs_st", "gs_color", "gs_opacity"
PLY_ATTRIBUTES = ("f_*", "scale_*", "rot_*", "opacity")  # 3DGS PLY properties besides the position

# modifier inputs: (name, socket type, default, min, max, description)
INPUTS = (
    ("Directory", "NodeSocketString", "", None, None, "Cache folder with the per-frame PLYs ('//' = next to the .blend), ending in /"),
    ("Prefix", "NodeSocketString", "frame_", None, None, "File name before the frame number"),
    ("Digits", "NodeSocketInt", 5, 0, 9, "Zero padding of the frame number (0: none)"),
    ("First Number", "NodeSocketInt", 0, 0, 10**9, "Number in the file name of the stream's first frame"),
    ("Suffix", "NodeSocketString", ".ply", None, None, "File name after the frame number"),
    ("Frames", "NodeSocketInt", 1, 1, 10**9, "Frames in the stream"),
    ("Stream FPS", "NodeSocketFloat", 30.0, 0.001, 1000.0, "Frame rate of the capture"),
    ("Scene FPS", "NodeSocketFloat", 24.0, 0.001, 1000.0, "Frame rate of the scene (set at import)"),
    ("Start Frame", "NodeSocketInt", 1, -10**6, 10**6, "Scene frame that shows the stream's first frame"),
    ("Viewport Density", "NodeSocketFloat", 1.0, 0.0, 1.0, "Fraction of Gaussians drawn in the viewport (renders draw all)"),
    ("Extent", "NodeSocketFloat", 3.0, 0.5, 6.0, "Half size of a quad in standard deviations"),
    ("Pixel Angle", "NodeSocketFloat", 0.0, 0.0, 1.0,
     "Radians per pixel of the render camera (set at import): adds the rasteriser's 0.3 px^2 low-pass"),
    ("Material", "NodeSocketMaterial", None, None, None, "Material of the quads"),
)


class _Graph:
    """Small helper: nodes with inputs given by index or name, values or output sockets."""

    def __init__(self, tree):
        self.tree = tree

    def node(self, kind, inputs=None, **props):
        n = self.tree.nodes.new(kind)
        for key, value in props.items():
            setattr(n, key, value)
        for key, value in (inputs or {}).items():
            socket = n.inputs[key]
            if isinstance(value, bpy.types.NodeSocket):
                self.tree.links.new(value, socket)
            else:
                socket.default_value = value
        return n

    def math(self, op, a, b=None):
        return self.node("ShaderNodeMath", {0: a} if b is None else {0: a, 1: b}, operation=op).outputs[0]

    def vmath(self, op, a, b=None, scale=None):
        inputs = {0: a}
        if b is not None:
            inputs[1] = b
        if scale is not None:
            inputs["Scale"] = scale
        n = self.node("ShaderNodeVectorMath", inputs, operation=op)
        return n.outputs["Value" if op in ("DOT_PRODUCT", "LENGTH", "DISTANCE") else "Vector"]

    def named(self, name, data_type="FLOAT"):
        return self.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type=data_type).outputs["Attribute"]


def _interface(tree) -> None:
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    for name, kind, default, low, high, description in INPUTS:
        socket = tree.interface.new_socket(name, in_out="INPUT", socket_type=kind)
        socket.description = description
        if default is not None:
            socket.default_value = default
        if low is not None:
            socket.min_value, socket.max_value = low, high


def _frame_path(g: _Graph, group_in):
    """Directory + Prefix + number + Suffix of the stream frame shown at the current scene frame."""
    frame = g.node("GeometryNodeInputSceneTime").outputs["Frame"]
    ratio = g.math("DIVIDE", group_in.outputs["Stream FPS"], group_in.outputs["Scene FPS"])
    elapsed = g.math("MULTIPLY", g.math("SUBTRACT", frame, group_in.outputs["Start Frame"]), ratio)
    t = g.math("FLOOR", g.math("ADD", elapsed, FRAME_EPSILON))
    last = g.math("SUBTRACT", group_in.outputs["Frames"], 1.0)
    t = g.math("MINIMUM", g.math("MAXIMUM", t, 0.0), last)  # hold the first/last frame outside the range
    number = g.math("ADD", t, group_in.outputs["First Number"])
    raw = g.node("FunctionNodeValueToString", {"Value": number}, data_type="INT").outputs["String"]
    digits = group_in.outputs["Digits"]
    offset = g.math("POWER", 10.0, digits)
    padded_long = g.node("FunctionNodeValueToString", {"Value": g.math("ADD", number, offset)}, data_type="INT")
    padded = g.node("FunctionNodeSliceString", {"String": padded_long.outputs["String"], "Position": 1, "Length": digits})
    use_padding = g.node("FunctionNodeCompare", {0: digits, 1: 0.0}, data_type="FLOAT", operation="GREATER_THAN")
    chosen = g.node("GeometryNodeSwitch", {"Switch": use_padding.outputs["Result"], "False": raw,
                                           "True": padded.outputs["String"]}, input_type="STRING")
    join = g.node("GeometryNodeStringJoin")
    # the multi-input lists its links newest first: link the last part first
    for part in (group_in.outputs["Suffix"], chosen.outputs["Output"], group_in.outputs["Prefix"], group_in.outputs["Directory"]):
        g.tree.links.new(part, join.inputs["Strings"])
    return join.outputs["String"]


def _viewport_thinning(g: _Graph, geometry, density):
    keep = g.node("FunctionNodeRandomValue", {"Probability": density, "Seed": 0}, data_type="BOOLEAN")
    drop = g.node("FunctionNodeBooleanMath", {0: keep.outputs[3]}, operation="NOT")
    viewport = g.node("GeometryNodeIsViewport").outputs[0]
    select = g.node("FunctionNodeBooleanMath", {0: viewport, 1: drop.outputs[0]}, operation="AND")
    return g.node("GeometryNodeDeleteGeometry", {"Geometry": geometry, "Selection": select.outputs[0]},
                  domain="POINT", mode="ALL").outputs[0]


def _quad_transform(g: _Graph, extent, pixel_angle):
    """Per instance (= Gaussian): the matrix taking the unit quad to its covariance-sized, camera-facing quad."""
    center = g.node("GeometryNodeInputPosition").outputs[0]
    camera = g.node("GeometryNodeObjectInfo", {"Object": g.node("GeometryNodeInputActiveCamera").outputs[0]},
                    transform_space="RELATIVE")
    view = g.vmath("NORMALIZE", g.vmath("SUBTRACT", camera.outputs["Location"], center))
    up = g.node("FunctionNodeRotateVector", {"Vector": (0.0, 1.0, 0.0), "Rotation": camera.outputs["Rotation"]}).outputs[0]
    u1 = g.vmath("NORMALIZE", g.vmath("CROSS_PRODUCT", up, view))
    u2 = g.vmath("CROSS_PRODUCT", view, u1)
    quat = g.node("FunctionNodeQuaternionToRotation", {k: g.named(f"rot_{i}") for i, k in enumerate("WXYZ")})
    to_local = g.node("FunctionNodeInvertRotation", {"Rotation": quat.outputs[0]}).outputs[0]
    sigma = g.node("ShaderNodeCombineXYZ", {k: g.math("EXPONENT", g.named(f"scale_{i}")) for i, k in enumerate("XYZ")})
    w1, w2 = (g.vmath("MULTIPLY", g.node("FunctionNodeRotateVector", {"Vector": u, "Rotation": to_local}).outputs[0],
                      sigma.outputs[0]) for u in (u1, u2))
    # the rasteriser's screen-space low-pass (0.3 px^2) at this Gaussian's distance
    pixel = g.math("MULTIPLY", g.vmath("DISTANCE", camera.outputs["Location"], center), pixel_angle)
    low_pass = g.math("ADD", g.math("MULTIPLY", g.math("MULTIPLY", pixel, pixel), LOW_PASS_PX2), COVARIANCE_EPS)
    s11 = g.math("ADD", g.vmath("DOT_PRODUCT", w1, w1), low_pass)
    s12 = g.vmath("DOT_PRODUCT", w1, w2)
    s22 = g.math("ADD", g.vmath("DOT_PRODUCT", w2, w2), low_pass)
    a = g.math("SQRT", s11)
    b = g.math("DIVIDE", s12, a)
    c = g.math("SQRT", g.math("MAXIMUM", g.math("SUBTRACT", s22, g.math("MULTIPLY", b, b)), COVARIANCE_EPS))
    axis_x = g.vmath("SCALE", g.vmath("ADD", g.vmath("SCALE", u1, scale=a), g.vmath("SCALE", u2, scale=b)), scale=extent)
    axis_y = g.vmath("SCALE", u2, scale=g.math("MULTIPLY", c, extent))
    columns = [g.node("ShaderNodeSeparateXYZ", {0: v}) for v in (axis_x, axis_y, view, center)]
    matrix = g.node("FunctionNodeCombineMatrix")
    for col, sep in enumerate(columns):
        for row in range(3):
            g.tree.links.new(sep.outputs[row], matrix.inputs[col * 4 + row])
        matrix.inputs[col * 4 + 3].default_value = 1.0 if col == 3 else 0.0
    return matrix.outputs[0]


def _linear_color(g: _Graph):
    """Display colour 0.5 + SH_C0 * f_dc, clamped, to scene-linear (the sRGB curve's power segment)."""
    channels = []
    for i in range(3):
        c = g.math("ADD", g.math("MULTIPLY", g.named(f"f_dc_{i}"), SH_C0), 0.5)
        c = g.math("MINIMUM", g.math("MAXIMUM", c, 0.0), 1.0)
        channels.append(g.math("POWER", g.math("DIVIDE", g.math("ADD", c, 0.055), 1.055), 2.4))
    return g.node("ShaderNodeCombineXYZ", dict(zip("XYZ", channels))).outputs[0]


def _remove_attributes(g: _Graph, geometry, pattern: str):
    node = g.node("GeometryNodeRemoveAttribute", {"Geometry": geometry, "Name": pattern})
    if "Pattern Mode" in node.inputs:  # a menu socket since 5.0, a node property before
        node.inputs["Pattern Mode"].default_value = "Wildcard"
    else:
        node.pattern_mode = "WILDCARD"
    return node.outputs[0]


def build_proxy_tree(name: str = TREE_NAME):
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    _interface(tree)
    g = _Graph(tree)
    group_in = g.node("NodeGroupInput")
    group_out = g.node("NodeGroupOutput")
    points = g.node("GeometryNodeImportPLY", {"Path": _frame_path(g, group_in)}).outputs[0]
    points = _viewport_thinning(g, points, group_in.outputs["Viewport Density"])
    quad = g.node("GeometryNodeMeshGrid", {"Size X": 2.0, "Size Y": 2.0, "Vertices X": 2, "Vertices Y": 2})
    st = g.vmath("SCALE", g.node("GeometryNodeInputPosition").outputs[0], scale=group_in.outputs["Extent"])
    quad = g.node("GeometryNodeStoreNamedAttribute", {"Geometry": quad.outputs["Mesh"], "Name": ATTR_ST, "Value": st},
                  data_type="FLOAT_VECTOR", domain="POINT")
    instances = g.node("GeometryNodeInstanceOnPoints", {"Points": points, "Instance": quad.outputs[0]}).outputs[0]
    instances = g.node("GeometryNodeSetInstanceTransform", {"Instances": instances,
                                                             "Transform": _quad_transform(g, group_in.outputs["Extent"], group_in.outputs["Pixel Angle"])}).outputs[0]
    instances = g.node("GeometryNodeStoreNamedAttribute", {"Geometry": instances, "Name": ATTR_COLOR, "Value": _linear_color(g)},
                       data_type="FLOAT_VECTOR", domain="INSTANCE").outputs[0]
    opacity = g.math("DIVIDE", 1.0, g.math("ADD", 1.0, g.math("EXPONENT", g.math("MULTIPLY", g.named("opacity"), -1.0))))
    instances = g.node("GeometryNodeStoreNamedAttribute", {"Geometry": instances, "Name": ATTR_OPACITY, "Value": opacity},
                       data_type="FLOAT", domain="INSTANCE").outputs[0]
    for pattern in PLY_ATTRIBUTES:  # consumed: the realized quads carry only what the material reads
        instances = _remove_attributes(g, instances, pattern)
    mesh = g.node("GeometryNodeRealizeInstances", {"Geometry": instances}).outputs[0]
    mesh = g.node("GeometryNodeSetMaterial", {"Geometry": mesh, "Material": group_in.outputs["Material"]}).outputs[0]
    tree.links.new(mesh, group_out.inputs["Geometry"])
    return tree


def build_proxy_material(name: str = MATERIAL_NAME):
    """Emission in the Gaussian's colour over transparency, alpha = opacity * exp(-r^2 / 2)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    mat.surface_render_method = "DITHERED"  # order-independent in Eevee (BLENDED sorts per object only)
    mat.use_backface_culling = False
    tree = mat.node_tree
    tree.nodes.clear()
    g = _Graph(tree)
    attr = lambda name: g.node("ShaderNodeAttribute", attribute_name=name, attribute_type="GEOMETRY")  # noqa: E731
    st = attr(ATTR_ST).outputs["Vector"]
    r2 = g.vmath("DOT_PRODUCT", st, st)
    alpha = g.math("MULTIPLY", attr(ATTR_OPACITY).outputs["Fac"], g.math("EXPONENT", g.math("MULTIPLY", r2, -0.5)))
    emission = g.node("ShaderNodeEmission", {"Color": attr(ATTR_COLOR).outputs["Color"], "Strength": 1.0})
    transparent = g.node("ShaderNodeBsdfTransparent")
    mix = g.node("ShaderNodeMixShader", {0: alpha, 1: transparent.outputs[0], 2: emission.outputs[0]})
    out = g.node("ShaderNodeOutputMaterial")
    tree.links.new(mix.outputs[0], out.inputs["Surface"])
    return mat
