"""The relighting preview: GLSL for Blender's gpu module and its numpy reference (relight.py)."""
