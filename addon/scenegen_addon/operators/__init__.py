"""Thin operators: read their properties, call core and blender, report.

Importing this package imports bpy; only the add-on's register() does so.
"""
