"""The Gaussian proxy, built in code: a Geometry Nodes tree that loads frame t's PLY from the cache folder and
turns every Gaussian into a camera-facing quad, and the material that shades a quad as that Gaussian.

Nothing here runs while the timeline plays: the tree reads Scene Time, maps it to the stream frame (fps
ratio, start offset, hold outside the range), builds the file name with string nodes and imports that one
PLY ("Import PLY" node, Blender 4.5+). Renders and farms (scripts disabled) evaluate it like any modifier.
It also reads the next scene frame's PLY on a second thread (read-ahead): Blender's import cache then holds it
when playback gets there, and a frame change costs the quads' construction alone.

The quad of a Gaussian with covariance S lies in the plane through its mean facing the active camera
(orthonormal u1, u2 in that plane). The marginal of S on the plane is the 2x2 block [u1 u2]^T S [u1 u2]; its
Cholesky factor [[a, 0], [b, c]] maps the unit disc onto the Gaussian's 1-sigma ellipse, so the quad
mean + k*s*(a u1 + b u2) + k*t*(c u2), (s, t) in [-1, 1]^2, covers k sigmas and the shader's
r^2 = k^2 (s^2 + t^2) is the Gaussian's Mahalanobis distance: alpha = opacity * exp(-r^2 / 2).

Screen-space low-pass and pixel filter: the engine adds 0.3 px^2 to every projected covariance and samples each
pixel at its centre; Blender then filters the render with its pixel filter (variance F px^2, "Pixel Filter").
The quad gets max(0.3 - F, 0) px^2 instead, and its opacity the factor sqrt(det(M + 0.3) / det(M + 0.3 - F))
(M: the marginal in px^2), so that after Blender's filter an isolated Gaussian has the engine's footprint and peak.

Cost per frame change: the quads are built by extruding the PLY's vertices twice (vertices to edges to faces),
which copies whole attribute arrays at once, instead of instancing a quad on every point and realizing the
instances (per-instance work that cost four times as much); only what the material reads is kept. Leaving the
instances unrealised makes the frame change cheaper but Eevee's drawing of 500k instances dearer than of one mesh
(docs/blender.md, Cost and fidelity), so the quads are one realised mesh.
"""

from __future__ import annotations

import bpy

from ..core.sequence_files import FRAME_EPSILON

TREE_NAME = "GIFStream Gaussian proxy"
MATERIAL_NAME = "GIFStream Gaussian"
SH_C0 = 0.28209479177387814  # colour = 0.5 + SH_C0 * f_dc (degree-0 spherical harmonic)
COVARIANCE_EPS = 1e-12
LOW_PASS_PX2 = 0.3  # the engine rasteriser's eps2d (render.api.render), as in 3DGS and gsplat
ALPHA_MIN, ALPHA_MAX = 1.0 / 255.0, 0.999  # the engine skips alpha below 1/255 and clamps it at 0.999
EXTENT = 3.33  # the engine's widest screen box in sigmas (projection.MAX_EXTEND): alpha < 1/255 beyond it
# attributes the tree writes for the material (besides the PLY's f_dc_0..2, which it reads as they are)
ATTR_ST, ATTR_OPACITY = "gs_st", "gs_opacity"
# PLY properties the material does not read, dropped before the quads are built (fewer arrays to copy); "n*" are
# the normals (nx, ny, nz) other tools write
CONSUMED = ("scale_*", "rot_*", "opacity", "f_rest_*", "n*")

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
    ("Extent", "NodeSocketFloat", EXTENT, 0.5, 6.0, "Half size of a quad in standard deviations"),
    ("Pixel Angle", "NodeSocketFloat", 0.0, 0.0, 1.0,
     "Radians per pixel of the render camera (set at import): adds the rasteriser's 0.3 px^2 low-pass"),
    ("Pixel Filter", "NodeSocketFloat", 0.0, 0.0, 4.0,
     "Variance (px^2) of the render engine's pixel filter (set by Match Scene): taken out of the low-pass"),
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


def _stream_frame(g: _Graph, group_in, scene_frame):
    """The stream frame shown at `scene_frame`: fps ratio, start offset, held outside the range."""
    ratio = g.math("DIVIDE", group_in.outputs["Stream FPS"], group_in.outputs["Scene FPS"])
    elapsed = g.math("MULTIPLY", g.math("SUBTRACT", scene_frame, group_in.outputs["Start Frame"]), ratio)
    t = g.math("FLOOR", g.math("ADD", elapsed, FRAME_EPSILON))
    last = g.math("SUBTRACT", group_in.outputs["Frames"], 1.0)
    return g.math("MINIMUM", g.math("MAXIMUM", t, 0.0), last)  # hold the first/last frame outside the range


def _frame_path(g: _Graph, group_in, t):
    """Directory + Prefix + number + Suffix of stream frame `t`."""
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


def _threading_hint(g: _Graph, value):
    """`value` plus 0 taken from an Ico Sphere of 3 subdivisions (642 vertices, well under a millisecond).

    Geometry Nodes evaluates a tree on one thread until a node hints that it takes a while (Blender's
    lazy_threading::send_hint: parallel loops send it, and so does the Ico Sphere node from 3 subdivisions on;
    reading a PLY does not). Both frames' paths depend on this, so the executor is already multi-threaded when the
    two reads become ready and runs them side by side."""
    sphere = g.node("GeometryNodeMeshIcoSphere", {"Subdivisions": 3})
    vertices = g.node("GeometryNodeAttributeDomainSize", {"Geometry": sphere.outputs["Mesh"]}, component="MESH")
    return g.math("ADD", value, g.math("MULTIPLY", vertices.outputs["Point Count"], 0.0))


def _read_ahead(g: _Graph, group_in, scene_frame, t, geometry):
    """`geometry` joined with nothing that depends on reading the stream frame of the next scene frame, when that
    is another frame: the read fills Blender's import cache on a second thread while this frame's quads are built,
    so playback finds the next frame read (a Switch: nothing is read when the next scene frame shows `t` again)."""
    following = _stream_frame(g, group_in, g.math("ADD", scene_frame, 1.0))
    imported = g.node("GeometryNodeImportPLY", {"Path": _frame_path(g, group_in, following)}).outputs[0]
    size = g.node("GeometryNodeAttributeDomainSize", {"Geometry": imported}, component="MESH")
    never = g.node("FunctionNodeCompare", {2: size.outputs["Point Count"], 3: 0}, data_type="INT",
                   operation="LESS_THAN").outputs[0]
    nothing = g.node("GeometryNodeSwitch", {"Switch": never, "True": imported}, input_type="GEOMETRY").outputs[0]
    same = g.node("FunctionNodeCompare", {0: following, 1: t}, data_type="FLOAT", operation="EQUAL").outputs[0]
    extra = g.node("GeometryNodeSwitch", {"Switch": same, "False": nothing}, input_type="GEOMETRY").outputs[0]
    join = g.node("GeometryNodeJoinGeometry")
    for part in (extra, geometry):  # newest first: the proxy stays the first geometry
        g.tree.links.new(part, join.inputs["Geometry"])
    return join.outputs["Geometry"]


def _viewport_thinning(g: _Graph, geometry, density):
    """In the viewport, a random Viewport Density fraction of the Gaussians; renders, and a density of 1, take the
    geometry as it is (a Switch: the random selection is not evaluated at all)."""
    keep = g.node("FunctionNodeRandomValue", {"Probability": density, "Seed": 0}, data_type="BOOLEAN")
    drop = g.node("FunctionNodeBooleanMath", {0: keep.outputs[3]}, operation="NOT")
    thinned = g.node("GeometryNodeDeleteGeometry", {"Geometry": geometry, "Selection": drop.outputs[0]},
                     domain="POINT", mode="ALL").outputs[0]
    partial = g.node("FunctionNodeCompare", {0: density, 1: 1.0}, data_type="FLOAT", operation="LESS_THAN").outputs[0]
    viewport = g.node("GeometryNodeIsViewport").outputs[0]
    use = g.node("FunctionNodeBooleanMath", {0: viewport, 1: partial}, operation="AND").outputs[0]
    return g.node("GeometryNodeSwitch", {"Switch": use, "False": geometry, "True": thinned}, input_type="GEOMETRY").outputs[0]


def _quad_axes(g: _Graph, extent, pixel_angle, pixel_filter):
    """Per Gaussian (a PLY vertex): the quad's half axes (covariance-sized, camera-facing) and the opacity gain
    that makes up for the pixel filter's blur."""
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
    m11, m12, m22 = g.vmath("DOT_PRODUCT", w1, w1), g.vmath("DOT_PRODUCT", w1, w2), g.vmath("DOT_PRODUCT", w2, w2)
    # a pixel's size at this Gaussian's distance, squared: the engine's low-pass less the pixel filter's variance
    pixel = g.math("MULTIPLY", g.vmath("DISTANCE", camera.outputs["Location"], center), pixel_angle)
    pixel2 = g.math("MULTIPLY", pixel, pixel)
    low_pass = g.math("MAXIMUM", g.math("SUBTRACT", LOW_PASS_PX2, pixel_filter), 0.0)
    engine = g.math("ADD", g.math("MULTIPLY", pixel2, LOW_PASS_PX2), COVARIANCE_EPS)
    quad = g.math("ADD", g.math("MULTIPLY", pixel2, low_pass), COVARIANCE_EPS)

    def det(eps):
        return g.math("SUBTRACT", g.math("MULTIPLY", g.math("ADD", m11, eps), g.math("ADD", m22, eps)), g.math("MULTIPLY", m12, m12))

    gain = g.math("SQRT", g.math("DIVIDE", det(engine), g.math("MAXIMUM", det(quad), COVARIANCE_EPS)))
    s11, s22 = g.math("ADD", m11, quad), g.math("ADD", m22, quad)
    a = g.math("SQRT", s11)
    b = g.math("DIVIDE", m12, a)
    c = g.math("SQRT", g.math("MAXIMUM", g.math("SUBTRACT", s22, g.math("MULTIPLY", b, b)), COVARIANCE_EPS))
    axis_x = g.vmath("SCALE", g.vmath("ADD", g.vmath("SCALE", u1, scale=a), g.vmath("SCALE", u2, scale=b)), scale=extent)
    axis_y = g.vmath("SCALE", u2, scale=g.math("MULTIPLY", c, extent))
    return axis_x, axis_y, gain


def _opacity(g: _Graph, gain):
    """The PLY's logit opacity as alpha, times the filter's gain."""
    sigmoid = g.math("DIVIDE", 1.0, g.math("ADD", 1.0, g.math("EXPONENT", g.math("MULTIPLY", g.named("opacity"), -1.0))))
    return g.math("MULTIPLY", sigmoid, gain)


def _store(g: _Graph, geometry, name, value, data_type):
    return g.node("GeometryNodeStoreNamedAttribute", {"Geometry": geometry, "Name": name, "Value": value},
                  data_type=data_type, domain="POINT").outputs[0]


def _remove_attributes(g: _Graph, geometry, pattern: str):
    node = g.node("GeometryNodeRemoveAttribute", {"Geometry": geometry, "Name": pattern})
    if "Pattern Mode" in node.inputs:  # a menu socket since 5.0, a node property before
        node.inputs["Pattern Mode"].default_value = "Wildcard"
    else:
        node.pattern_mode = "WILDCARD"
    return node.outputs[0]


def _capture(g: _Graph, geometry, fields: dict):
    """One Capture Attribute node for several fields (evaluated together, so they share their common nodes);
    returns the geometry and the captured fields by name."""
    node = g.node("GeometryNodeCaptureAttribute", {"Geometry": geometry}, domain="POINT")
    for name, (kind, value) in fields.items():
        node.capture_items.new(kind, name)
        g.tree.links.new(value, node.inputs[name])
    return node.outputs["Geometry"], {name: node.outputs[name] for name in fields}


def _quads(g: _Graph, points, axis_x, axis_y, extent):
    """Each vertex (a Gaussian) becomes a quad: moved to its corner (-1, -1), extruded along 2 * axis_x into an
    edge, that edge along 2 * axis_y into a face; gs_st is the corner in sigmas (+-Extent).

    An extrusion appends one new vertex per extruded vertex, in their order, so of the 4N vertices vertex j is the
    corner s = +1 where j mod 2N >= N, t = +1 where j >= 2N: gs_st is stored once, from the index, instead of
    being carried through both extrusions."""
    corner = g.vmath("SUBTRACT", g.node("GeometryNodeInputPosition").outputs[0], g.vmath("ADD", axis_x, axis_y))
    mesh = g.node("GeometryNodeSetPosition", {"Geometry": points, "Position": corner}).outputs[0]
    mesh = g.node("GeometryNodeExtrudeMesh", {"Mesh": mesh, "Offset": g.vmath("SCALE", axis_x, scale=2.0)}, mode="VERTICES").outputs[0]
    mesh = g.node("GeometryNodeExtrudeMesh", {"Mesh": mesh, "Offset": g.vmath("SCALE", axis_y, scale=2.0)}, mode="EDGES").outputs[0]
    count = g.node("GeometryNodeAttributeDomainSize", {"Geometry": mesh}).outputs["Point Count"]
    half, quarter = (g.node("FunctionNodeIntegerMath", {0: count, 1: k}, operation="DIVIDE").outputs[0] for k in (2, 4))
    index = g.node("GeometryNodeInputIndex").outputs[0]
    within = g.node("FunctionNodeIntegerMath", {0: index, 1: half}, operation="MODULO").outputs[0]

    def side(value, threshold):  # -Extent or +Extent
        upper = g.node("FunctionNodeCompare", {2: value, 3: threshold}, data_type="INT", operation="GREATER_EQUAL").outputs[0]
        return g.math("MULTIPLY", g.node("ShaderNodeMath", {0: upper, 1: 2.0, 2: -1.0}, operation="MULTIPLY_ADD").outputs[0], extent)

    st = g.node("ShaderNodeCombineXYZ", {"X": side(within, quarter), "Y": side(index, half)})
    return _store(g, mesh, ATTR_ST, st.outputs[0], "FLOAT2")


def build_proxy_tree(name: str = TREE_NAME):
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    _interface(tree)
    g = _Graph(tree)
    group_in = g.node("NodeGroupInput")
    group_out = g.node("NodeGroupOutput")
    extent = group_in.outputs["Extent"]
    scene_frame = _threading_hint(g, g.node("GeometryNodeInputSceneTime").outputs["Frame"])
    t = _stream_frame(g, group_in, scene_frame)
    points = g.node("GeometryNodeImportPLY", {"Path": _frame_path(g, group_in, t)}).outputs[0]
    points = _viewport_thinning(g, points, group_in.outputs["Viewport Density"])
    axis_x, axis_y, gain = _quad_axes(g, extent, group_in.outputs["Pixel Angle"], group_in.outputs["Pixel Filter"])
    points, fields = _capture(g, points, {"axis_x": ("VECTOR", axis_x), "axis_y": ("VECTOR", axis_y),
                                          "opacity": ("FLOAT", _opacity(g, gain))})
    points = _store(g, points, ATTR_OPACITY, fields["opacity"], "FLOAT")
    for pattern in CONSUMED:
        points = _remove_attributes(g, points, pattern)
    mesh = _quads(g, points, fields["axis_x"], fields["axis_y"], extent)
    mesh = g.node("GeometryNodeSetMaterial", {"Geometry": mesh, "Material": group_in.outputs["Material"]}).outputs[0]
    tree.links.new(_read_ahead(g, group_in, scene_frame, t, mesh), group_out.inputs["Geometry"])
    return tree


def _linear_colour(g: _Graph, attr):
    """Per channel: the display colour 0.5 + SH_C0 * f_dc, clamped to [0, 1], decoded with the sRGB curve
    (IEC 61966-2-1, as the Standard view transform encodes it again) to scene-linear."""
    channels = []
    for i in range(3):
        c = g.node("ShaderNodeMath", {0: attr(f"f_dc_{i}").outputs["Fac"], 1: SH_C0, 2: 0.5}, operation="MULTIPLY_ADD",
                   use_clamp=True).outputs[0]
        low = g.math("MULTIPLY", c, 1 / 12.92)
        high = g.math("POWER", g.node("ShaderNodeMath", {0: c, 1: 1 / 1.055, 2: 0.055 / 1.055}, operation="MULTIPLY_ADD").outputs[0], 2.4)
        is_low = g.math("LESS_THAN", c, 0.04045)
        channels.append(g.node("ShaderNodeMath", {0: is_low, 1: g.math("SUBTRACT", low, high), 2: high},
                               operation="MULTIPLY_ADD").outputs[0])
    return g.node("ShaderNodeCombineXYZ", dict(zip("XYZ", channels))).outputs[0]


def build_proxy_material(name: str = MATERIAL_NAME):
    """Emission in the Gaussian's colour over transparency, alpha = opacity * exp(-r^2 / 2) as the engine has it:
    0 below 1/255, at most 0.999."""
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
    alpha = g.math("MULTIPLY", g.math("MINIMUM", alpha, ALPHA_MAX), g.math("GREATER_THAN", alpha, ALPHA_MIN))
    emission = g.node("ShaderNodeEmission", {"Color": _linear_colour(g, attr), "Strength": 1.0})
    transparent = g.node("ShaderNodeBsdfTransparent")
    mix = g.node("ShaderNodeMixShader", {0: alpha, 1: transparent.outputs[0], 2: emission.outputs[0]})
    out = g.node("ShaderNodeOutputMaterial")
    tree.links.new(mix.outputs[0], out.inputs["Surface"])
    return mat
