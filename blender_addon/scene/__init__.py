"""The add-on's scene part (bpy): what it builds in and reads from a scene. The camera rig of a capture, the
Gaussian proxy's node tree and material, sequence objects and their modifier settings, the compositing layer's
camera export and compositor wiring, the render-farm bundle. No operators or panels (the `ui` part has them)."""
