"""Shared fixtures. bpy is imported lazily, inside fixtures, so pure-core tests never load it."""

import pytest


@pytest.fixture(scope="session")
def addon():
    """The add-on registered once from the source folder, the way the launcher loads it."""
    import scenegen_addon  # register() imports bpy

    scenegen_addon.register()
    yield scenegen_addon
    scenegen_addon.unregister()


@pytest.fixture
def empty_file():
    """A fresh empty file for a test that builds scenes (add-on classes stay registered)."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy
