"""The pure core of scenegen: plain Python and numpy, never bpy.

Everything that decides what a scene holds and what its labels are lives here, so the
launcher and the validator run without Blender and tests run in milliseconds.
"""
