"""The launcher: bpy-free code that plans a build, runs its workers and ends it.

It imports only `core`, the standard library and numpy, so it runs in any Python, the
user's or Blender's own, with no bpy installed.
"""
