"""The add-on's part without bpy: the engine's process (client, output reading), the engine jobs (training,
decoding, the compositing layer) on one base class, per-frame PLY sequences on disk and the conventions shared
with the engine. Plain Python, so the tests (and tools) import it without Blender."""
