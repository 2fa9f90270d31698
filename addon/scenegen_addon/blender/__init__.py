"""The Blender layer: build a SceneSpec as a bpy Scene, render it, read its masks back.

bpy lives here and only here (ARCHITECTURE); it decides nothing random.
"""
